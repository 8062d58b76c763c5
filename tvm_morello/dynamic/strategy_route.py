"""Meta-schedule route: schedules of the user's symbolic PrimFunc with concrete shapes to measure them at
(for a PySearchStrategy), and a dispatching library built from the records such a search left."""
from __future__ import annotations

import dataclasses

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from ..errors import MorelloError
from ..target import CpuTarget, resolve_target
from .measure import Measurement
from .microkernels import MicroKernel
from .shapes import DynamicWorkload, VarRange, from_prim_func
from .tuner import TuningConfig, measurement_shapes, plan_from_measurements, workload_candidates
from .workload_match import check_one_index_dtype

MICRO_ANNOTATION = "morello_microkernel"


@dataclass(frozen=True, eq=False)
class SymbolicCandidate:
    """A schedule of the symbolic PrimFunc and one concrete shape to measure it at."""

    micro: MicroKernel
    schedule: object  # tvm.s_tir.Schedule; its trace replays on the symbolic PrimFunc
    env: dict
    args_info: list

    def measure_candidate(self):
        from tvm.s_tir import meta_schedule as ms

        return ms.search_strategy.MeasureCandidate(self.schedule, self.args_info)


def _pad_block(sch, name: str):
    try:
        return sch.get_sblock(name)
    except Exception:  # get_sblock raises when pad_einsum added no such block
        return None


def _panel_map(nr: int, *, batched: bool, transpose_b: bool):
    """Index map from B's layout ([b?, n, k] or [b?, k, n]) to NR-wide panels [b?, n / NR, k, NR]."""
    if batched:
        if transpose_b:
            return lambda b, j, k: (b, j // nr, k, j % nr)
        return lambda b, k, j: (b, j // nr, k, j % nr)
    if transpose_b:
        return lambda j, k: (j // nr, k, j % nr)
    return lambda k, j: (j // nr, k, j % nr)


def schedule_symbolic(prim_func, workload: DynamicWorkload, micro: MicroKernel, target: CpuTarget):
    """The micro-kernel's schedule applied to the user's PrimFunc: pad_einsum to whole tiles (symbolic
    extents become ceil(m / MR) * MR), A's padding inlined, B packed into NR panels per parallel iteration,
    the padded output tile kept in registers and written back predicated."""
    from tvm.s_tir import Schedule

    a_name, b_name, out_name = (p.name for p in prim_func.params)
    sch = Schedule(prim_func)
    block = sch.get_child_blocks(sch.get_sblock("root"))[0]
    sch.annotate(block, MICRO_ANNOTATION, micro.key)
    n_static = workload.n if isinstance(workload.n, int) else None
    pad_cols = micro.nr if n_static is None or n_static % micro.nr else 1
    outer = len(sch.get_loops(block)) - 3
    sch.pad_einsum(block, [1] * outer + [micro.mr, pad_cols, 1])
    a_pad, b_pad, out_pad = (_pad_block(sch, f"{name}_pad") for name in (a_name, b_name, out_name))
    if a_pad is not None:
        sch.compute_inline(a_pad)
    if out_pad is not None:
        sch.set_scope(block, 0, "local")
    loops = sch.get_loops(block)
    i, j, kk = loops[-3:]
    io, ii = sch.split(i, [None, micro.mr])
    jo, ji = sch.split(j, [None, micro.nr])
    sch.reorder(*loops[:-3], jo, io, kk, ii, ji)
    par = sch.fuse(*loops[:-3], jo) if outer else jo
    if micro.parallel:
        sch.parallel(par)
    pack = b_pad if b_pad is not None else sch.cache_read(block, b_name, "global")
    packed_name = f"{b_name}_pad" if b_pad is not None else f"{b_name}_global"
    index_map = _panel_map(micro.nr, batched=outer > 0, transpose_b=workload.transpose_b)
    sch.transform_layout(block, packed_name, index_map)  # needs one index dtype: checked by _workload
    sch.compute_at(pack, par)
    if out_pad is not None:
        sch.reverse_compute_at(out_pad, io)
    else:
        sch.reverse_compute_at(sch.cache_write(block, 0, "local"), io)
    vec_outer, vec = sch.split(ji, [None, target.lanes()])
    sch.unroll(ii)
    sch.unroll(vec_outer)
    sch.vectorize(vec)
    sch.decompose_reduction(block, kk)
    return sch


def _args_info(workload: DynamicWorkload, env: Mapping[str, int]) -> list:
    from tvm.s_tir import meta_schedule as ms

    a_shape, b_shape = workload.input_shapes(env)
    return [ms.arg_info.TensorInfo(workload.dtype, shape) for shape in (a_shape, b_shape, workload.output_shape(env))]


def _workload(prim_func, shape_ranges) -> DynamicWorkload:
    check_one_index_dtype(prim_func)
    return from_prim_func(prim_func, shape_ranges, constant_b=False)


def propose_symbolic_candidates(prim_func, shape_ranges: Mapping[str, VarRange | tuple[int, int]], target=None, *,
                                config: TuningConfig | None = None) -> list[SymbolicCandidate]:
    """For each hardware micro-kernel: its schedule of ``prim_func`` (symbolic) and the concrete shapes to
    measure it at (DietCode's best-adapted shape first). Wrap each as ``.measure_candidate()``."""
    target = resolve_target(target)
    # the dot form is scheduled on our own kernel workload only, not on the user's PrimFunc
    config = dataclasses.replace(config or TuningConfig(), dot_kernels=False)
    workload = _workload(prim_func, shape_ranges)
    shapes, _ = workload.tuning_shapes(config.max_shapes)
    out = []
    for micro in workload_candidates(workload, target, config):
        sch = schedule_symbolic(prim_func, workload, micro, target)
        for env in measurement_shapes(workload, micro, micro.nr, shapes, target.cores, config.shapes_per_kernel):
            out.append(SymbolicCandidate(micro, sch, env, _args_info(workload, env)))
    return out


def _record_micro(record) -> MicroKernel | None:
    """The micro-kernel a record's trace scheduled, read from its annotate instruction."""
    found = re.search(rf'ann_key="{MICRO_ANNOTATION}", ann_val="([a-z0-9_]+)"', str(record.trace))
    return MicroKernel.from_key(found.group(1)) if found else None


def records_by_kernel(database, prim_func, workload: DynamicWorkload) -> tuple[list[Measurement], dict]:
    """Measurements from every annotated record of ``prim_func`` (the symbolic workload), and for each
    micro-kernel the trace of its first record."""
    import tvm
    from tvm_ffi import structural_equal

    mod = tvm.IRModule({"main": prim_func})
    measurements, traces = [], {}
    for record in database.get_all_tuning_records():
        micro = _record_micro(record)
        if micro is None or not record.run_secs or not structural_equal(record.workload.mod, mod):
            continue
        shapes = [[int(d) for d in info.shape] for info in record.args_info]
        env = _env_from_shapes(workload, shapes[0], shapes[2], shapes[1])
        seconds = min(float(s) for s in record.run_secs)
        measurements.append(Measurement(micro, tuple(sorted(env.items())), seconds, workload.flops(env) / seconds / 1e9))
        traces.setdefault(micro, record.trace)
    return measurements, traces


def _env_from_shapes(workload: DynamicWorkload, a_shape, out_shape, b_shape) -> dict[str, int]:
    env: dict[str, int] = {}
    k_pos = -1 if workload.transpose_b else -2
    for dim, value in ((workload.m, a_shape[-2]), (workload.k, a_shape[-1]), (workload.n, out_shape[-1]),
                       (workload.k, b_shape[k_pos])):
        if isinstance(dim, str):
            env[dim] = value
    return env


def build_library_from_database(database, prim_func, shape_ranges: Mapping[str, VarRange | tuple[int, int]],
                                out: str | Path, target=None, *, config: TuningConfig | None = None, name: str | None = None):
    """Dispatching library from meta-schedule records of ``prim_func``: the records' run times feed the
    throughput model and set cover, and the chosen records' traces (replayed on ``prim_func``) are the kernels."""
    from tvm.s_tir import Schedule

    from ..export import export_library

    target = resolve_target(target)
    config = config or TuningConfig()
    workload = _workload(prim_func, shape_ranges)
    if name:
        workload = DynamicWorkload(name, workload.batch, workload.m, workload.k, workload.n, workload.ranges,
                                   workload.transpose_b, workload.constant_b)
    measurements, traces = records_by_kernel(database, prim_func, workload)
    if not measurements:
        raise MorelloError(f"{workload.name}: the database holds no annotated records of this PrimFunc")
    micros = sorted({m.micro for m in measurements})
    plan = plan_from_measurements(workload, target, max(mk.nr for mk in micros), micros, measurements, config)
    kernel_funcs = {}
    for index, micro in enumerate(plan.kernels):
        sch = Schedule(prim_func)
        traces[micro].apply_to_schedule(sch, remove_postproc=False)
        kernel_funcs[(workload.name, index)] = sch.mod["main"]
    plan.provenance["source"] = "meta-schedule database"
    return export_library([plan], target, out, kernel_funcs=kernel_funcs)
