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
