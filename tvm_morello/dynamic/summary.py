"""The table a dynamic tune prints: one row per operator."""
from __future__ import annotations

import math
from typing import Sequence

from .plan import OperatorPlan


def summary_table(plans: Sequence[OperatorPlan]) -> str:
    """One row per operator: candidates, runs, chosen kernels, tree leaves, predicted speed, tuning time."""
    rows = ["| operator | candidates | runs | kernels | leaves | pred. GFLOP/s | best single | tuning s |",
            "|---|---|---|---|---|---|---|---|"]
    for plan in plans:
        prov = plan.provenance
        leaves = len(plan.tree.regions([plan.workload.range_of(n).lo for n in plan.workload.var_names],
                                       [plan.workload.range_of(n).hi for n in plan.workload.var_names]))
        rows.append(
            f"| {plan.workload.name} | {len(prov.get('candidates', []))} | {len(prov.get('measurements', []))} | "
            f"{', '.join(mk.key for mk in plan.kernels)} | {leaves} | {prov.get('predicted_geomean_gflops', math.nan):.1f} | "
            f"{prov.get('predicted_best_single_geomean_gflops', math.nan):.1f} | {prov.get('tuning_seconds', math.nan):.1f} |")
    return "\n".join(rows)
