"""From measurements to an operator's plan: the throughput model fills the gaps between them, greedy set cover
picks the kernels, the decision tree learns which shape runs which."""
from __future__ import annotations

from dataclasses import asdict
from typing import Mapping, Sequence

import numpy as np

from ..codegen.microkernel import MicroKernel
from ..measure.kernels import Measurement
from ..spec.symbolic import DynamicWorkload
from ..target import CpuTarget
from .branch_order import BRANCH_S
from .config import TuningConfig
from .cost_model import ThroughputModel
from .dispatch import DispatchTree
from .plan import OperatorPlan
from .set_cover import assign, assign_in_runs, greedy_set_cover

PLANNED_VALUES = 2048
"""With one variable, the plan ranks the kernels at up to this many of its values (every value of a model's
m = batch x seq range) rather than at the tuning shapes alone: the throughput model is cheap, and between sparse
tuning shapes the best register-tile height alternates with m mod MR. BERT-base's dense 768x3072 over
m = batch x seq = 1..2048, planned on its 64 tuning shapes (m = 9 and 26 between 8 and 43, where 2-row tiles pad
less than 4-row ones), ran m = 9..34 on its 2-row kernel: 6-11% behind the 4-row kernel at m = 12, 16, 24 and 32
(Zen 4); planned on every value it runs the 2-row kernel at m = 9, 10, 13 and 14 only."""


def planned_shapes(workload: DynamicWorkload, max_shapes: int) -> tuple[list[dict[str, int]], np.ndarray]:
    """The shapes (and weights) a plan ranks its kernels at: ``PLANNED_VALUES`` of a single variable, the
    ``max_shapes`` tuning shapes of several. A check of the library draws its points from them, so that a
    measured loss is one of the plan's shapes when it is planned again."""
    return workload.tuning_shapes(max(max_shapes, PLANNED_VALUES) if len(workload.var_names) == 1 else max_shapes)


def with_measured(cost: np.ndarray, shapes: Sequence[Mapping[str, int]], micros: Sequence[MicroKernel],
                  measurements: Sequence[Measurement]) -> np.ndarray:
    """The predicted cost matrix [shape, kernel] with every measured (shape, kernel) pair set to its
    measured time: the model only fills the gaps between measurements."""
    row = {tuple(sorted(env.items())): i for i, env in enumerate(shapes)}
    column = {micro: j for j, micro in enumerate(micros)}
    out = cost.copy()
    for meas in measurements:
        i, j = row.get(meas.env), column.get(meas.micro)
        if i is not None and j is not None:
            out[i, j] = meas.seconds
    return out


def plan_from_measurements(workload: DynamicWorkload, target: CpuTarget, panel: int, micros: Sequence[MicroKernel],
                           measurements: Sequence[Measurement], config: TuningConfig) -> OperatorPlan:
    """Fit the throughput model, predict every planned shape's cost per kernel, choose the kernel set by
    greedy set cover and fit the dispatch tree on the resulting labels."""
    shapes, weights = planned_shapes(workload, config.max_shapes)
    model = ThroughputModel(target.lanes(), target.cores, random_state=config.seed).fit(workload, panel, measurements)
    cost = with_measured(model.predict_seconds(workload, panel, micros, shapes), shapes, micros, measurements)
    chosen = greedy_set_cover(cost, weights, top_k=config.top_k, tolerance=config.tolerance, cap=config.cap)
    if len(workload.var_names) == 1:
        order = np.argsort([env[workload.var_names[0]] for env in shapes], kind="stable")
        labels = np.empty(len(shapes), dtype=int)
        labels[order] = assign_in_runs(cost[order], chosen, weights[order], slack_s=BRANCH_S,
                                       relative_slack=config.run_slack)
    else:
        labels = assign(cost, chosen)
    index = {column: i for i, column in enumerate(chosen)}
    x = np.array([[env[name] for name in workload.var_names] for env in shapes])
    y = np.array([index[c] for c in labels])
    tree = DispatchTree(workload.var_names, random_state=config.seed).fit(x, y, sample_weight=weights)
    predicted = cost[np.arange(len(shapes)), labels]
    flops = np.array([workload.flops(env) for env in shapes], dtype=float)
    provenance = {
        "candidates": [mk.key for mk in micros],
        "measurements": [{"kernel": m.micro.key, "shape": m.env_dict, "seconds": m.seconds, "gflops": m.gflops}
                         for m in measurements],
        "occupancy_alpha": model.alpha_,
        "tuning_shapes": len(shapes),
        "predicted_geomean_gflops": float(np.exp(np.average(np.log(flops / predicted / 1e9), weights=weights))),
        "predicted_best_single_geomean_gflops": float(max(
            np.exp(np.average(np.log(flops / cost[:, j] / 1e9), weights=weights)) for j in range(len(micros)))),
        "config": asdict(config),
    }
    return OperatorPlan(workload, panel, tuple(micros[c] for c in chosen), tree, provenance)
