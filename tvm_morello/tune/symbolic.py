"""MorelloSearch on a symbolic PrimFunc: the shape-generic kernels, each measured at concrete shapes."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Mapping

import tvm
from tvm.s_tir import meta_schedule as ms
from tvm.s_tir.meta_schedule.search_strategy import MeasureCandidate

from ..codegen.microkernel import MicroKernel
from ..codegen.symbolic import check_one_index_dtype, schedule_symbolic
from ..dynamic.config import TuningConfig
from ..dynamic.jobs import measurement_shapes, workload_candidates
from ..errors import InvalidShapeError, UnsupportedOperatorError
from ..measure.kernels import arg_shapes
from ..measure.records import module_key, records_of, shapes_of
from ..spec.recognize import from_prim_func
from ..spec.symbolic import DynamicWorkload, VarRange, ranges_of
from ..target import resolve_target


@dataclass(frozen=True, eq=False)
class SymbolicCandidate:
    """A schedule of the symbolic PrimFunc and one concrete shape to measure it at."""

    micro: MicroKernel
    schedule: object  # tvm.s_tir.Schedule; its trace replays on the symbolic PrimFunc
    env: dict
    args_info: list

    def measure_candidate(self) -> MeasureCandidate:
        return MeasureCandidate(self.schedule, self.args_info)


def _args_info(workload: DynamicWorkload, env: Mapping[str, int]) -> list:
    return [ms.arg_info.TensorInfo(workload.dtype, shape) for shape in arg_shapes(workload, env)]


def symbolic_workload(prim_func, shape_ranges) -> DynamicWorkload:
    check_one_index_dtype(prim_func)
    return from_prim_func(prim_func, shape_ranges, constant_b=False)


def propose_symbolic_candidates(prim_func, shape_ranges: Mapping[str, VarRange | tuple[int, int]], target=None, *,
                                config: TuningConfig | None = None) -> list[SymbolicCandidate]:
    """For each hardware micro-kernel: its schedule of ``prim_func`` (symbolic) and the concrete shapes to
    measure it at (DietCode's best-adapted shape first). Wrap each as ``.measure_candidate()``."""
    target = resolve_target(target)
    # the dot form is scheduled on our own kernel workload only, not on the user's PrimFunc
    config = dataclasses.replace(config or TuningConfig(), dot_kernels=False)
    workload = symbolic_workload(prim_func, shape_ranges)
    shapes, _ = workload.tuning_shapes(config.max_shapes)
    out = []
    for micro in workload_candidates(workload, target, config):
        sch = schedule_symbolic(prim_func, workload, micro, target)
        for env in measurement_shapes(workload, micro, micro.nr, shapes, target.cores, config.shapes_per_kernel):
            out.append(SymbolicCandidate(micro, sch, env, _args_info(workload, env)))
    return out


def symbolic_prim_func(mod) -> tvm.tirx.PrimFunc | None:
    """The PrimFunc of a task's module if one of its buffers has a non-constant dimension, else None."""
    funcs = list(mod.functions.values()) if isinstance(mod, tvm.IRModule) else [mod]
    if len(funcs) != 1 or not isinstance(funcs[0], tvm.tirx.PrimFunc):
        return None
    func = funcs[0]
    for param in func.params:  # in TVM 0.27 a PrimFunc's buffer params are the buffers themselves
        if any(not isinstance(dim, tvm.tirx.IntImm) for dim in getattr(param, "shape", None) or ()):
            return func
    return None


def shape_vars(func) -> dict[str, list]:
    """The symbolic variables of ``func``'s buffer shapes by name (in order of appearance)."""
    found: dict[str, list] = {}
    for param in func.params:
        for dim in getattr(param, "shape", None) or ():
            if not isinstance(dim, tvm.tirx.IntImm):
                for var in tvm.tirx.analysis.undefined_vars(dim):
                    same_name = found.setdefault(var.name, [])
                    if not any(var.same_as(other) for other in same_name):
                        same_name.append(var)
    return found


def midpoint_env(func, shape_ranges: Mapping[str, VarRange | tuple[int, int]]) -> dict[str, int]:
    """Each of ``func``'s symbolic variables at the middle of its range; raises naming one without a range."""
    ranges = dict(ranges_of(shape_ranges))
    env = {}
    for name in shape_vars(func):
        if name not in ranges:
            raise InvalidShapeError(f"symbolic variable {name!r} has no range in shape_ranges {sorted(ranges)}")
        env[name] = (ranges[name].lo + ranges[name].hi) // 2
    return env


def concrete_args_info(func, env: Mapping[str, int]) -> list:
    """The TensorInfo of each of ``func``'s buffers with its symbolic variables at the values ``env``."""
    from tvm.sym import Analyzer

    analyzer = Analyzer()
    for name, variables in shape_vars(func).items():
        for var in variables:
            analyzer.bind(var, env[name])
    infos = []
    for param in func.params:
        if not hasattr(param, "shape"):
            raise UnsupportedOperatorError(f"parameter {param} is not a buffer: a task with scalar parameters "
                                           "cannot be measured at a concrete shape")
        shape = [analyzer.simplify(dim) for dim in param.shape]
        if not all(isinstance(dim, tvm.tirx.IntImm) for dim in shape):
            raise InvalidShapeError(f"buffer {param.name} has shape {shape} at {env}")
        infos.append(ms.arg_info.TensorInfo(str(param.dtype), [int(dim) for dim in shape]))
    return infos


@dataclass(frozen=True, eq=False)
class _Measured:
    """A schedule and the concrete shapes to measure it at."""

    schedule: object
    args_info: list

    def measure_candidate(self) -> MeasureCandidate:
        return MeasureCandidate(self.schedule, self.args_info)


def _key(mod, args_info) -> tuple:
    return module_key(mod), shapes_of(args_info)


class SymbolicCandidateSource:
    """The proposals of ``propose_symbolic_candidates``, handed out in batches, each at most once.

    Order: every kernel at its best-adapted shape first, then every kernel at its next shape, so a small
    budget covers as many kernels as possible. Candidates already in the database are skipped.
    """

    def __init__(self, prim_func, shape_ranges: Mapping[str, tuple[int, int]], target) -> None:
        proposals = propose_symbolic_candidates(prim_func, shape_ranges, target)
        rank: dict = {}
        order = []
        for index, cand in enumerate(proposals):
            nth = rank[cand.micro] = rank.get(cand.micro, -1) + 1
            order.append((nth, index, cand))
        self._pending: list[SymbolicCandidate | _Measured] = [cand for _, _, cand in sorted(order, key=lambda t: t[:2])]
        self._seen: set[tuple] = set()

    @classmethod
    def empty(cls) -> "SymbolicCandidateSource":
        """A source with nothing to measure (for a task the shape-generic search cannot express)."""
        source = cls.__new__(cls)
        source._pending, source._seen = [], set()
        return source

    @classmethod
    def of_design_spaces(cls, func, design_spaces, shape_ranges) -> "SymbolicCandidateSource":
        """The task's scheduled design spaces (``MorelloSpace``'s generic schedule), each to be measured once at
        the middle of the ranges: a task with no kernels of ours still gets a record for ``compile_relax``."""
        source = cls.empty()
        args_info = concrete_args_info(func, midpoint_env(func, shape_ranges))
        source._pending = [_Measured(sch, args_info) for sch in design_spaces if len(sch.trace.insts)]
        return source

    def skip_database_records(self, database, workload_mod) -> None:
        """Never hand out a candidate that ``database`` holds a record of (a resumed tune).

        ``TuningRecord.as_measure_candidate`` fails on a symbolic workload (it wants constant shapes), so the
        traces are replayed here; a trace that no longer replays is ignored.
        """
        for record in records_of(database, workload_mod):
            try:
                sch = tvm.s_tir.Schedule(workload_mod)
                record.trace.apply_to_schedule(sch, remove_postproc=False)
            except Exception:  # noqa: BLE001 - a trace from another version or schedule space
                continue
            self._seen.add(_key(sch.mod, record.args_info))

    def __len__(self) -> int:
        return len(self._pending)

    def next_batch(self, budget: int) -> list[MeasureCandidate]:
        batch = []
        while self._pending and len(batch) < budget:
            cand = self._pending.pop(0)
            key = _key(cand.schedule.mod, cand.args_info)
            if key not in self._seen:
                self._seen.add(key)
                batch.append(cand.measure_candidate())
        return batch
