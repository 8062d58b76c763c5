"""The table a dynamic tune prints: one row per operator."""
from __future__ import annotations

import math
from typing import Sequence

from .plan import OperatorPlan


def summary_table(plans: Sequence[OperatorPlan]) -> str:
    """One row per operator: candidates, runs, chosen kernels, tree leaves, predicted speed, tuning time, and
    once the exported library was timed against numpy (``speed_check``), its geomean and worst point."""
    rows = ["| operator | candidates | runs | kernels | leaves | pred. GFLOP/s | best single | tuning s | "
            "vs numpy: geomean | worst (at) |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for plan in plans:
        prov = plan.provenance
        leaves = len(plan.tree.regions([plan.workload.range_of(n).lo for n in plan.workload.var_names],
                                       [plan.workload.range_of(n).hi for n in plan.workload.var_names]))
        rows.append(
            f"| {plan.workload.name} | {len(prov.get('candidates', []))} | {len(prov.get('measurements', []))} | "
            f"{', '.join(mk.key for mk in plan.kernels)} | {leaves} | {prov.get('predicted_geomean_gflops', math.nan):.1f} | "
            f"{prov.get('predicted_best_single_geomean_gflops', math.nan):.1f} | {prov.get('tuning_seconds', math.nan):.1f} | "
            f"{_speed_cells(prov.get('speed_check'), prov.get('speed_check_before_replan'))} |")
    return "\n".join(rows)


def point_speedup(point: dict) -> float:
    """numpy's time over the library's at one point of a ``speed_check`` (as stored in the provenance)."""
    return point["numpy_seconds"] / point["seconds"]


def _worst(check: dict) -> tuple[float, str]:
    worst = min(check["points"], key=point_speedup)
    return point_speedup(worst), ", ".join(f"{k}={v}" for k, v in worst["shape"].items())


def _speed_cells(check: dict | None, before_replan: dict | None) -> str:
    """Geomean and worst point against numpy; a re-planned operator also shows its worst point before."""
    if not check:
        return "- | -"
    speedup, at = _worst(check)
    cells = f"{check['geomean_vs_numpy']:.2f}x | {speedup:.2f}x ({at})"
    if before_replan:
        speedup, at = _worst(before_replan)
        cells += f", re-planned from {speedup:.2f}x ({at})"
    return cells
