"""Fit the affine model's constants to measured run times by non-negative least squares."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .constants import CostConstants


def program_cost(program, constants: CostConstants, target) -> float:
    """Fold a program tree with ``constants``: the same composition rules the DP used."""
    child_costs = [program_cost(child, constants, target) for child in program.children]
    return program.action.combine(program.spec, child_costs, constants, target)


def program_features(program, target) -> np.ndarray:
    """How often each constant is paid: the cost is linear in the constants, so cost = features . constants."""
    return np.array([program_cost(program, CostConstants.unit(name), target) for name in CostConstants.names()])


GLOBAL_OVER_L2 = 2.0
"""A line from beyond L2 costs at least this many lines from L2 (an L3 feeds a core at about half its L2's
bandwidth or less). Measurements alone cannot tell the two apart: a weight panel the program does not view in
L2 is still served from L2 when it fits there, so free fits made memory lines as cheap as L2 lines and the DP
then streamed 2 MB panels from L3 (dense 64x2048x512: top-1 117 GFLOP/s; 226 with this floor)."""


def fit_features(features, seconds: Sequence[float], prior: CostConstants, prior_weight: float = 0.1,
                 groups: Sequence | None = None) -> CostConstants:
    """Constants (in nanoseconds) that best explain measured ``seconds`` of programs with these ``features``.

    Relative error is what ranking needs, so each row is scaled by 1 / measured time, and by (fastest time of
    its group / its time)^2: the DP picks among a workload's fast programs, so the fit must be accurate there
    more than on programs several times slower (``groups`` names each row's workload; None: one group). The
    features of a few dozen programs are nearly collinear and timings are noisy, so each constant is also
    pulled towards the prior (rescaled to nanoseconds) with relative weight ``prior_weight``: constants the
    measurements do not pin down stay where the prior put them. ``global_line`` is fitted as
    ``GLOBAL_OVER_L2 * l2_line`` plus a non-negative excess.
    """
    from scipy.optimize import nnls

    features = np.asarray(features, dtype=float)
    if features.ndim != 2 or len(features) != len(seconds) or not len(seconds):
        raise ValueError(f"need one measured time per feature row, got {len(features)} rows and {len(seconds)} times")
    to_excess, from_excess = _global_line_as_excess(len(prior.as_vector()))
    features = features @ from_excess  # cost = f . c = f . (from_excess @ e) for the excess-form constants e
    nanoseconds = np.asarray(seconds, dtype=float) * 1e9
    weights = (_fastest_of_group(nanoseconds, groups) / nanoseconds) ** 2 / nanoseconds
    prior_vector = np.maximum(to_excess @ np.array(prior.as_vector()), 0.0)
    scale = float(np.median(nanoseconds / np.maximum(features @ prior_vector, 1e-12)))
    anchor = prior_vector * scale
    # Rows prior_weight * (c_i / anchor_i - 1) = 0 keep each constant near the prior in relative terms.
    regular = np.diag(np.where(anchor > 0, prior_weight / np.maximum(anchor, 1e-12), 0.0))
    matrix = np.vstack([features * weights[:, None], regular])
    rhs = np.concatenate([nanoseconds * weights, np.where(anchor > 0, prior_weight, 0.0)])
    solution, _ = nnls(matrix, rhs)
    return CostConstants.from_vector(from_excess @ solution)


def _fastest_of_group(nanoseconds: np.ndarray, groups: Sequence | None) -> np.ndarray:
    if groups is None:
        return np.full_like(nanoseconds, nanoseconds.min())
    fastest: dict = {}
    for group, time in zip(groups, nanoseconds):
        fastest[group] = min(fastest.get(group, time), time)
    return np.array([fastest[group] for group in groups])


def _global_line_as_excess(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Linear maps between the constants and their excess form, where ``global_line`` is replaced by its
    excess over ``GLOBAL_OVER_L2 * l2_line`` (so non-negative least squares keeps the floor)."""
    names = CostConstants.names()
    g, l2 = names.index("global_line"), names.index("l2_line")
    from_excess = np.eye(size)
    from_excess[g, l2] = GLOBAL_OVER_L2
    return np.linalg.inv(from_excess), from_excess


def fit_constants(programs: Sequence, seconds: Sequence[float], target, prior: CostConstants | None = None,
                  prior_weight: float = 0.1) -> CostConstants:
    """``fit_features`` on the features of ``programs`` on ``target`` (a CpuTarget); the prior defaults to
    the target's own constants."""
    if len(programs) != len(seconds) or not programs:
        raise ValueError(f"need one measured time per program, got {len(programs)} programs and {len(seconds)} times")
    features = np.stack([program_features(p, target) for p in programs])
    return fit_features(features, seconds, prior or target.constants, prior_weight)
