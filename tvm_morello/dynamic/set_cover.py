"""Pick a small kernel set: greedy weighted set cover of the shapes by their near-best kernels."""
from __future__ import annotations

import numpy as np

from ..errors import MorelloError


def greedy_set_cover(cost: np.ndarray, weights: np.ndarray, *, top_k: int = 1, tolerance: float = 0.1,
                     cap: int = 4) -> list[int]:
    """Columns of ``cost`` [shapes, kernels] chosen so every shape has one of its good kernels.

    A kernel is good for a shape if it is among the shape's ``top_k`` cheapest or within ``tolerance`` of
    its best. Each step takes the kernel covering the most uncovered weight (ties: lower weighted cost);
    at most ``cap`` kernels. Shapes left uncovered at the cap run on the cheapest chosen kernel.
    """
    if cost.ndim != 2 or cost.shape[0] != len(weights) or cost.size == 0:
        raise MorelloError(f"cost matrix {cost.shape} does not match {len(weights)} shape weights")
    if cap < 1:
        raise MorelloError(f"kernel cap {cap}: need at least one kernel")
    ranks = np.argsort(np.argsort(cost, axis=1), axis=1)
    good = (ranks < top_k) | (cost <= cost.min(axis=1, keepdims=True) * (1 + tolerance))
    weighted_cost = (cost / cost.min(axis=1, keepdims=True) * weights[:, None]).sum(axis=0)
    uncovered = np.ones(len(weights), dtype=bool)
    chosen: list[int] = []
    while uncovered.any() and len(chosen) < cap:
        gain = (good & uncovered[:, None]).T @ weights
        gain[chosen] = -1.0
        best = max(range(cost.shape[1]), key=lambda j: (gain[j], -weighted_cost[j]))
        if gain[best] <= 0:
            break
        chosen.append(best)
        uncovered &= ~good[:, best]
    return sorted(chosen)


def assign(cost: np.ndarray, chosen: list[int]) -> np.ndarray:
    """For each shape, the chosen kernel (column index) of lowest cost."""
    sub = cost[:, chosen]
    return np.asarray(chosen)[sub.argmin(axis=1)]


def assign_in_runs(cost: np.ndarray, chosen: list[int], weights: np.ndarray, *, slack_s: float,
                   relative_slack: float) -> np.ndarray:
    """For shapes ordered along one variable: a chosen kernel per shape, in as few runs of equal kernels as
    possible, each shape's kernel within ``relative_slack`` plus ``slack_s`` seconds of its best.

    Every run boundary is one more branch in the dispatcher, and kernels alternating between neighbouring
    shapes by less than the cost model's error follow its noise, not the hardware. Growing each run
    while one kernel stays acceptable for all its shapes gives the fewest runs (the acceptable sets only
    shrink as a run grows); a run takes its acceptable kernel of least weighted cost.
    """
    best = cost[:, chosen].min(axis=1)
    acceptable = cost[:, chosen] <= best[:, None] * (1 + relative_slack) + slack_s
    labels = np.empty(len(cost), dtype=int)
    start = 0
    while start < len(cost):
        keep, end = acceptable[start].copy(), start + 1
        while end < len(cost) and (keep & acceptable[end]).any():
            keep &= acceptable[end]
            end += 1
        run_cost = weights[start:end] @ cost[start:end][:, chosen]
        labels[start:end] = chosen[int(np.argmin(np.where(keep, run_cost, np.inf)))]
        start = end
    return labels
