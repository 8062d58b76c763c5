"""Arrange a one-variable dispatcher's branches so the calls that feel them least pay for them.

Each branch of the TIR dispatcher is a compare and, at worst, a mispredicted jump (``BRANCH_S``): noise on a
large call, up to a percent of the smallest. For one symbolic variable the fitted tree is a sorted list of
intervals, so any binary search over the interval bounds dispatches the same. This picks the one (optimal
alphabetic tree, by the interval dynamic program) that minimises the expected branches relative to each call's
own run time. sklearn's tree instead balances impurity, which can put the smallest shapes three branches deep.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from .dispatch import DispatchTree, Node

BRANCH_S = 1e-8  # one branch of the TIR dispatcher, a mispredict at worst (a Relax ``If`` was 0.1-0.17 us)
NOMINAL_CALL_S = 1e-6  # a call's fixed cost (VM entry, output allocation)
NOMINAL_FLOPS_PER_S = 1e11  # the order of a micro-kernel's throughput on this class of CPU


def relative_branch_weight(flops: float) -> float:
    """How much one extra branch matters to a call of ``flops``: inversely to its expected run time."""
    return 1.0 / (NOMINAL_CALL_S + flops / NOMINAL_FLOPS_PER_S)


def intervals(tree: DispatchTree, lo: int, hi: int) -> list[tuple[int, int, int]]:
    """The one-variable tree as sorted (first, last, kernel) intervals covering lo..hi, neighbours with the same
    kernel merged."""
    if len(tree.feature_names) != 1:
        raise ValueError(f"branch ordering needs one variable, the tree has {len(tree.feature_names)}")
    merged: list[tuple[int, int, int]] = []
    for region in sorted(tree.regions([lo], [hi]), key=lambda r: r.lo[0]):
        first, last = region.lo[0], region.hi[0]
        if merged and merged[-1][2] == region.kernel and merged[-1][1] + 1 == first:
            merged[-1] = (merged[-1][0], last, region.kernel)
        else:
            merged.append((first, last, region.kernel))
    return merged


def cheapest_search_tree(tree: DispatchTree, lo: int, hi: int, value_weight: Callable[[int], float],
                         values: Sequence[int] | None = None) -> Node:
    """A tree that dispatches every value in lo..hi as ``tree`` does, with the least expected number of
    branches (each value weighted by ``value_weight``; over ``values``, default lo..hi)."""
    inner = intervals(tree, lo, hi)
    weights = np.zeros(len(inner))
    starts = [first for first, _, _ in inner]
    for v in (range(lo, hi + 1) if values is None else values):
        weights[int(np.searchsorted(starts, v, side="right")) - 1] += value_weight(v)
    return _optimal_alphabetic_tree([(last, kernel) for _, last, kernel in inner], weights)


def _optimal_alphabetic_tree(leaves: list[tuple[int, int]], weights: np.ndarray) -> Node:
    """Leaves in order, each (its last value, kernel); cost = sum of weight x depth, minimised by the
    O(n^3) interval dynamic program (n is a few dozen at most)."""
    n = len(leaves)
    prefix = np.concatenate([[0.0], np.cumsum(weights)])
    cost = np.zeros((n, n))
    split = np.zeros((n, n), dtype=int)
    for width in range(2, n + 1):
        for i in range(0, n - width + 1):
            j = i + width - 1
            best = min(range(i, j), key=lambda s: cost[i, s] + cost[s + 1, j])
            cost[i, j] = cost[i, best] + cost[best + 1, j] + prefix[j + 1] - prefix[i]
            split[i, j] = best

    def build(i: int, j: int) -> Node:
        if i == j:
            return Node(kernel=leaves[i][1])
        s = split[i, j]
        return Node(0, leaves[s][0], build(i, s), build(s + 1, j))

    return build(0, n - 1)
