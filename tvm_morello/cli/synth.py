"""``tvm-morello synth``: synthesise one operator, print its best program, and time it beside numpy."""
from __future__ import annotations

from ..measure.timing import numpy_gflops
from ..spec.operators import make_workload
from ..synth import SynthesisReport, load_table, measure_candidates, synthesize_workload
from ..target import require_host, resolve_target


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
