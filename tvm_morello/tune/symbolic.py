"""MorelloSearch on a symbolic PrimFunc: the shape-generic kernels, each measured at concrete shapes."""
from __future__ import annotations

from typing import Mapping

import tvm
from tvm.s_tir import meta_schedule as ms
from tvm.s_tir.meta_schedule.search_strategy import MeasureCandidate

from ..dynamic.strategy_route import SymbolicCandidate, propose_symbolic_candidates
from .measured import module_key, records_of


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


def no_op_space() -> ms.space_generator.ScheduleFn:
    """The design space to pass to ``ms.tune_tir`` for a symbolic PrimFunc: the default one schedules the
    symbolic loops and aborts, and MorelloSearch does not use it anyway."""
    return ms.space_generator.ScheduleFn(lambda sch: None)


def _key(mod, args_info) -> tuple:
    return module_key(mod), tuple(tuple(int(d) for d in info.shape) for info in args_info)


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
        self._pending: list[SymbolicCandidate] = [cand for _, _, cand in sorted(order, key=lambda t: t[:2])]
        self._seen: set[tuple] = set()

    @classmethod
    def empty(cls) -> "SymbolicCandidateSource":
        """A source with nothing to measure (for a task the shape-generic search cannot express)."""
        source = cls.__new__(cls)
        source._pending, source._seen = [], set()
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
