"""From measurements to an operator's plan: the throughput model fills the gaps between them, greedy set cover
picks the kernels, the decision tree learns which shape runs which."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable, Mapping, Sequence

import numpy as np

from ..codegen.microkernel import MicroKernel
from ..measure.kernels import Measurement
from ..spec.symbolic import SMALL_END, DynamicWorkload
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


def fastest_runs(measurements: Sequence[Measurement]) -> list[Measurement]:
    """One measurement per (kernel, shape): the fastest, in the order of first appearance."""
    fastest: dict[tuple, Measurement] = {}
    for meas in measurements:
        key = (meas.micro, meas.env)
        if key not in fastest or meas.seconds < fastest[key].seconds:
            fastest[key] = meas
    return list(fastest.values())


def calibrated(cost: np.ndarray, shapes: Sequence[Mapping[str, int]], micros: Sequence[MicroKernel],
               measurements: Sequence[Measurement], flops: Callable[[Mapping[str, int]], float],
               predict: Callable[[MicroKernel, list[dict[str, int]]], np.ndarray]) -> np.ndarray:
    """The predicted cost matrix [shape, kernel] made to agree with the measurements: each kernel's column
    scaled by its measured / predicted ratio, interpolated on log flops between the kernel's runs (held beyond
    them), so a measured pair costs its fastest run and a shape between two runs takes the kernel's
    efficiency there rather than that of its largest run alone.

    BERT-base's dense 768x3072 (Zen 4, one tuning run): the 4 x 16 tile was 3.5% faster than the 4 x 64 at
    m = 2048, which set both throughputs, and 11% slower at m = 1 and at m = 43; with the runs deciding only their
    own shapes, m = 16..22 and 64..100 ran the 4 x 16 tile."""
    out = cost.copy()
    runs = fastest_runs(measurements)
    log_flops = np.log([flops(env) for env in shapes])
    for j, micro in enumerate(micros):
        own = [meas for meas in runs if meas.micro == micro]
        if not own:
            continue
        envs = [meas.env_dict for meas in own]
        x = np.log([flops(env) for env in envs])
        y = np.log([meas.seconds for meas in own]) - np.log(predict(micro, envs))
        xs, group = np.unique(x, return_inverse=True)
        ys = np.bincount(group, weights=y) / np.bincount(group)
        out[:, j] *= np.exp(np.interp(log_flops, xs, ys))
    row = {tuple(sorted(env.items())): i for i, env in enumerate(shapes)}
    column = {micro: j for j, micro in enumerate(micros)}
    for meas in runs:  # exact where two shapes of equal flops were both run
        i, j = row.get(meas.env), column.get(meas.micro)
        if i is not None and j is not None:
            out[i, j] = meas.seconds
    return out


@dataclass(frozen=True)
class Ranking:
    """Every planned shape's predicted cost per candidate, the kernels set cover chose and each shape's kernel."""

    shapes: list
    weights: np.ndarray
    cost: np.ndarray  # [shape, candidate] seconds
    chosen: list
    labels: np.ndarray  # candidate column per shape
    alpha: float

    def contested(self, micros: Sequence[MicroKernel], margin: float, count: int,
                  flops: Callable[[Mapping[str, int]], float]) -> list[tuple[MicroKernel, dict[str, int]]]:
        """Runs that settle the closest calls: shapes whose kernel and the best other candidate are within
        ``margin`` of each other, grouped by that pair; in each of the ``count`` heaviest groups, both kernels at
        the group's weighted-median shape (by flops). And both at the smallest shape when its call is close: its
        calls are the cheapest, so a wrong kernel costs them the largest share (a sweep's worst point), and
        little weight leaves its group out of the heaviest. And, close or not, both at the small end's largest
        shape (the ``SMALL_END``-th smallest): every parallel kernel runs there once (``jobs.measurement_shapes``),
        and the rest of the small end's choice rests on it, so one slow run must not decide it. BERT-base's FFN
        down at m = 8, its weight read among 340 MB (before that run): predicted for the 8 x 16 tile, which ran
        1.32x slower than the 4 x 64 (A/B, Zen 4)."""
        rows = np.arange(len(self.shapes))
        own = self.cost[rows, self.labels]
        others = self.cost.copy()
        others[rows, self.labels] = np.inf
        rival = others.argmin(axis=1)
        close = np.abs(others[rows, rival] / own - 1) < margin
        groups: dict[tuple[int, int], list[int]] = {}
        for i in np.flatnonzero(close):
            groups.setdefault((int(self.labels[i]), int(rival[i])), []).append(int(i))
        heaviest = sorted(groups.items(), key=lambda item: -self.weights[item[1]].sum())[:count]
        jobs = []
        for (kernel, other), members in heaviest:
            members.sort(key=lambda i: flops(self.shapes[i]))
            share = np.cumsum(self.weights[members])
            median = dict(self.shapes[members[int(np.searchsorted(share, share[-1] / 2))]])
            jobs += [(micros[kernel], median), (micros[other], median)]
        if count:
            by_flops = sorted(rows, key=lambda i: flops(self.shapes[i]))
            small_end = by_flops[min(SMALL_END, len(by_flops)) - 1]
            for i, needed in ((by_flops[0], close[by_flops[0]]), (small_end, small_end != by_flops[0])):
                shape = dict(self.shapes[i])
                pair = [(micros[int(self.labels[i])], shape), (micros[int(rival[i])], shape)]
                if needed and np.isfinite(others[i, rival[i]]) and pair[0] not in jobs:
                    jobs += pair
        return jobs


def rank_kernels(workload: DynamicWorkload, target: CpuTarget, panel: int, micros: Sequence[MicroKernel],
                 measurements: Sequence[Measurement], config: TuningConfig) -> Ranking:
    """Fit the throughput model, predict every planned shape's cost per kernel (calibrated to the runs),
    choose the kernel set by greedy set cover and each shape's kernel."""
    shapes, weights = planned_shapes(workload, config.max_shapes)
    model = ThroughputModel(target.lanes(), target.cores, random_state=config.seed).fit(workload, panel, measurements)
    cost = calibrated(model.predict_seconds(workload, panel, micros, shapes), shapes, micros, measurements,
                      workload.flops, lambda micro, envs: model.predict_seconds(workload, panel, [micro], envs)[:, 0])
    chosen = greedy_set_cover(cost, weights, top_k=config.top_k, tolerance=config.tolerance, cap=config.cap)
    if len(workload.var_names) == 1:
        order = np.argsort([env[workload.var_names[0]] for env in shapes], kind="stable")
        labels = np.empty(len(shapes), dtype=int)
        labels[order] = assign_in_runs(cost[order], chosen, weights[order], slack_s=BRANCH_S,
                                       relative_slack=config.run_slack)
    else:
        labels = assign(cost, chosen)
    return Ranking(shapes, weights, cost, chosen, labels, model.alpha_)


def plan_from_measurements(workload: DynamicWorkload, target: CpuTarget, panel: int, micros: Sequence[MicroKernel],
                           measurements: Sequence[Measurement], config: TuningConfig) -> OperatorPlan:
    """Rank the kernels (``rank_kernels``) and plan from the ranking (``plan_from_ranking``)."""
    ranked = rank_kernels(workload, target, panel, micros, measurements, config)
    return plan_from_ranking(workload, panel, micros, measurements, ranked, config)


def plan_from_ranking(workload: DynamicWorkload, panel: int, micros: Sequence[MicroKernel],
                      measurements: Sequence[Measurement], ranked: Ranking, config: TuningConfig) -> OperatorPlan:
    """The plan of the kernels ``ranked`` chose (from ``measurements``): the dispatch tree fitted on each shape's
    kernel, the measurements and predictions kept as provenance."""
    shapes, weights, cost, labels = ranked.shapes, ranked.weights, ranked.cost, ranked.labels
    index = {column: i for i, column in enumerate(ranked.chosen)}
    x = np.array([[env[name] for name in workload.var_names] for env in shapes])
    y = np.array([index[c] for c in labels])
    tree = DispatchTree(workload.var_names, random_state=config.seed).fit(x, y, sample_weight=weights)
    predicted = cost[np.arange(len(shapes)), labels]
    flops = np.array([workload.flops(env) for env in shapes], dtype=float)
    provenance = {
        "candidates": [mk.key for mk in micros],
        "measurements": [{"kernel": m.micro.key, "shape": m.env_dict, "seconds": m.seconds, "gflops": m.gflops}
                         for m in fastest_runs(measurements)],
        "occupancy_alpha": ranked.alpha,
        "tuning_shapes": len(shapes),
        "predicted_geomean_gflops": float(np.exp(np.average(np.log(flops / predicted / 1e9), weights=weights))),
        "predicted_best_single_geomean_gflops": float(max(
            np.exp(np.average(np.log(flops / cost[:, j] / 1e9), weights=weights)) for j in range(len(micros)))),
        "config": asdict(config),
    }
    return OperatorPlan(workload, panel, tuple(micros[c] for c in ranked.chosen), tree, provenance)
