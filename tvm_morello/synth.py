"""Synthesise one static operator end to end: recognise, search (with the memo table), lower, measure."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .cost.constants import CostConstants
from .errors import VerificationError
from .lower import candidate_schedules
from .ops import Workload, make_workload
from .search.table import MemoTable
from .target import resolve_target


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


def synthesize_workload(workload: Workload, target=None, top_k: int = 8, table: MemoTable | None = None,
                        constants: CostConstants | None = None) -> SynthesisReport:
    """Search and lower; the table is filled (or served from) in place."""
    table = table if table is not None else MemoTable()
    start = time.perf_counter()
    candidates = candidate_schedules(workload.func, target, top_k=top_k, constants=constants, table=table)
    return SynthesisReport(workload, candidates, time.perf_counter() - start, table.stats())


def measure_candidates(report: SynthesisReport, target=None, check: bool = True) -> None:
    """Build each candidate, check it against numpy, and record its GFLOP/s."""
    import tvm

    from .measure import time_kernel

    tvm_target = resolve_target(target).tvm_target()
    arrays = report.workload.random_inputs()
    expected = report.workload.reference(*arrays)
    for candidate in report.candidates:
        lib = tvm.compile(candidate.schedule.mod, target=tvm_target).jit()
        if check:
            dev = tvm.cpu()
            out = tvm.runtime.tensor(np.zeros(report.workload.output_shape, "float32"), dev)
            lib["main"](*[tvm.runtime.tensor(a, dev) for a in arrays], out)
            if not np.allclose(out.numpy(), expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max()):
                raise VerificationError(f"{report.workload.name}: program disagrees with numpy:\n{candidate.program.render()}")
        seconds = time_kernel(lib, arrays, report.workload.output_shape)
        report.gflops.append(report.workload.flops / seconds / 1e9)


def numpy_equivalent(op: str, shape: tuple[int, ...]):
    """Input shapes and transpose flag of the numpy matmul computing the same operator (unpacked weights)."""
    if op == "dense":
        m, k, n = shape
        return ((m, k), (n, k)), True
    if op == "matmul":
        m, k, n = shape
        return ((m, k), (k, n)), False
    b, m, k, n = shape
    return ((b, m, k), (b, n, k)), True


def report_synthesis(op: str, shape, top_k: int = 8, prepacked: int = 0, table_path=None, measure: bool = True) -> SynthesisReport:
    """The CLI's job: print the best program, its cost, synthesis time, table statistics and speed."""
    from .measure import numpy_gflops

    workload = make_workload(op, tuple(shape), prepacked)
    table = load_table(table_path)
    report = synthesize_workload(workload, top_k=top_k, table=table)
    if table_path:
        table.compact()
        table.save(table_path)
    best = report.candidates[0].program
    stats = report.table_stats
    print(f"# {workload.name} on {resolve_target(None).mcpu}: best of {len(report.candidates)} programs")
    print(best.render())
    print(f"modelled cost: {best.cost:,.0f}")
    print(f"synthesis: {report.synthesis_seconds:.2f} s; memo table: {stats.points} specs in {stats.boxes} boxes "
          f"({stats.compression_ratio:.1f}x compression)")
    if measure:
        measure_candidates(report)
        report.numpy_gflops = numpy_gflops(*numpy_equivalent(op, tuple(shape)), workload.flops)
        print(f"measured: top-1 {report.gflops[0]:.1f} GFLOP/s, best of top-{len(report.gflops)} "
              f"{max(report.gflops):.1f} GFLOP/s; numpy {report.numpy_gflops:.1f} GFLOP/s "
              f"(ratio {max(report.gflops) / report.numpy_gflops:.2f}x)")
    return report
