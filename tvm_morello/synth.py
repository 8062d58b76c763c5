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


def synthesize_workload(workload: Workload, target, top_k: int = 8, table: MemoTable | None = None,
                        constants: CostConstants | None = None) -> SynthesisReport:
    """Search and lower; the table is filled (or served from) in place."""
    table = table if table is not None else MemoTable()
    start = time.perf_counter()
    candidates = candidate_schedules(workload.func, target, top_k=top_k, constants=constants, table=table)
    return SynthesisReport(workload, candidates, time.perf_counter() - start, table.stats())


def check_built(workload: Workload, lib, program=None) -> None:
    """Run a built kernel once on random inputs; VerificationError (naming ``program``) unless it matches numpy.

    The reference runs on one BLAS thread: OpenBLAS's threads spin for a while after a call, and on 2 cores
    they slowed a timing that followed 10-60x."""
    import tvm
    from threadpoolctl import threadpool_limits

    arrays = workload.random_inputs()
    with threadpool_limits(1, user_api="blas"):
        expected = workload.reference(*arrays)
    dev = tvm.cpu()
    out = tvm.runtime.tensor(np.zeros(workload.output_shape, "float32"), dev)
    lib["main"](*[tvm.runtime.tensor(a, dev) for a in arrays], out)
    if not np.allclose(out.numpy(), expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max()):
        raise VerificationError(f"{workload.name}: program disagrees with numpy:\n{program.render() if program else ''}")


def time_programs(workload: Workload, schedules, target, programs=None, *, rounds: int = 3,
                  min_seconds: float = 0.2) -> list[float]:
    """Build ``schedules`` for ``target`` (a CpuTarget this host runs) in parallel, then ``time_built``."""
    from .measure import build_all

    return time_built(workload, build_all(schedules, target), programs, rounds=rounds, min_seconds=min_seconds)


def time_built(workload: Workload, libs, programs=None, *, rounds: int = 3, min_seconds: float = 0.2) -> list[float]:
    """Check each built kernel against numpy and return its seconds per call: the median of ``rounds`` timings
    taken in turn, so that a slow moment of the machine does not fall on one program alone."""
    from .measure import time_kernel

    for lib, program in zip(libs, programs or [None] * len(libs)):
        check_built(workload, lib, program)
    arrays = workload.random_inputs()
    samples = [[time_kernel(lib, arrays, workload.output_shape, min_seconds=min_seconds) for lib in libs]
               for _ in range(rounds)]
    return [float(np.median(column)) for column in zip(*samples)]


def measure_candidates(report: SynthesisReport, target, rounds: int = 3) -> None:
    """Build, check and time the report's candidates for ``target`` (``rounds`` timings each, in turn), recording
    their GFLOP/s."""
    seconds = time_programs(report.workload, [c.schedule for c in report.candidates], target,
                            [c.program for c in report.candidates], rounds=rounds)
    report.gflops.extend(report.workload.flops / s / 1e9 for s in seconds)


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


def report_synthesis(op: str, shape, top_k: int = 8, prepacked: int = 0, table_path=None, measure: bool = True,
                     target=None) -> SynthesisReport:
    """The CLI's job: print the best program, its cost, synthesis time, table statistics and speed.

    ``target`` is any description ``resolve_target`` accepts (None: this host); measuring needs the host."""
    from .measure import numpy_gflops
    from .target import require_host

    target = resolve_target(target)
    if measure:
        require_host(target, "measure")
    workload = make_workload(op, tuple(shape), prepacked)
    table = load_table(table_path)
    report = synthesize_workload(workload, target, top_k=top_k, table=table)
    if table_path:
        table.compact()
        table.save(table_path)
    best = report.candidates[0].program
    stats = report.table_stats
    print(f"# {workload.name} for {target.describe()}: best of {len(report.candidates)} programs")
    print(best.render())
    print(f"modelled cost: {best.cost:,.0f}")
    print(f"synthesis: {report.synthesis_seconds:.2f} s; memo table: {stats.points} specs in {stats.boxes} boxes "
          f"({stats.compression_ratio:.1f}x compression)")
    if measure:
        measure_candidates(report, target)
        report.numpy_gflops = numpy_gflops(*numpy_equivalent(op, tuple(shape)), workload.flops)
        print(f"measured: top-1 {report.gflops[0]:.1f} GFLOP/s, best of top-{len(report.gflops)} "
              f"{max(report.gflops):.1f} GFLOP/s; numpy {report.numpy_gflops:.1f} GFLOP/s "
              f"(ratio {max(report.gflops) / report.numpy_gflops:.2f}x)")
    return report
