"""Synthesise one static operator: recognise, search (with the memo table), lower; then measure the candidates."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from .codegen import candidate_schedules
from .cost.constants import CostConstants
from .measure.timing import time_programs
from .search.table import MemoTable
from .spec.operators import Workload


@dataclass
class SynthesisReport:
    """What one synthesis produced and how fast it runs."""

    workload: Workload
    candidates: list
    synthesis_seconds: float
    table_stats: object
    gflops: list[float] = field(default_factory=list)  # per candidate, in DP order
    numpy_gflops: float | None = None


def load_table(path: str | Path | None) -> MemoTable:
    return MemoTable.load(path) if path and Path(path).exists() else MemoTable()


def synthesize_workload(workload: Workload, target, top_k: int = 8, table: MemoTable | None = None,
                        constants: CostConstants | None = None) -> SynthesisReport:
    """Search and lower; the table is filled (or served from) in place."""
    table = table if table is not None else MemoTable()
    start = time.perf_counter()
    candidates = candidate_schedules(workload.func, target, top_k=top_k, constants=constants, table=table)
    return SynthesisReport(workload, candidates, time.perf_counter() - start, table.stats())


def measure_candidates(report: SynthesisReport, target, rounds: int = 3) -> None:
    """Build, check and time the report's candidates for ``target`` (``rounds`` timings each, in turn), recording
    their GFLOP/s."""
    seconds = time_programs(report.workload, [c.schedule for c in report.candidates], target,
                            [c.program for c in report.candidates], rounds=rounds)
    report.gflops.extend(report.workload.flops / s / 1e9 for s in seconds)
