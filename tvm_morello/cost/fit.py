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


def fit_features(features, seconds: Sequence[float], prior: CostConstants, prior_weight: float = 0.3) -> CostConstants:
    """Constants (in nanoseconds) that best explain measured ``seconds`` of programs with these ``features``.

    Relative error is what ranking needs, so each row is scaled by 1 / measured time. The features of
    a few dozen programs are nearly collinear and timings are noisy, so each constant is also pulled
    towards the prior (rescaled to nanoseconds) with relative weight ``prior_weight``: constants the
    measurements do not pin down stay where the prior put them.
    """
    from scipy.optimize import nnls

    features = np.asarray(features, dtype=float)
    if features.ndim != 2 or len(features) != len(seconds) or not len(seconds):
        raise ValueError(f"need one measured time per feature row, got {len(features)} rows and {len(seconds)} times")
    nanoseconds = np.asarray(seconds, dtype=float) * 1e9
    weights = 1.0 / nanoseconds
    prior_vector = np.array(prior.as_vector())
    scale = float(np.median(nanoseconds / np.maximum(features @ prior_vector, 1e-12)))
    anchor = prior_vector * scale
    # Rows prior_weight * (c_i / anchor_i - 1) = 0 keep each constant near the prior in relative terms.
    regular = np.diag(np.where(anchor > 0, prior_weight / np.maximum(anchor, 1e-12), 0.0))
    matrix = np.vstack([features * weights[:, None], regular])
    rhs = np.concatenate([np.ones_like(nanoseconds), np.where(anchor > 0, prior_weight, 0.0)])
    solution, _ = nnls(matrix, rhs)
    return CostConstants.from_vector(solution)


def fit_constants(programs: Sequence, seconds: Sequence[float], target, prior: CostConstants | None = None,
                  prior_weight: float = 0.3) -> CostConstants:
    """``fit_features`` on the features of ``programs`` on ``target`` (a CpuTarget); the prior defaults to
    the target's own constants."""
    if len(programs) != len(seconds) or not programs:
        raise ValueError(f"need one measured time per program, got {len(programs)} programs and {len(seconds)} times")
    features = np.stack([program_features(p, target) for p in programs])
    return fit_features(features, seconds, prior or target.constants, prior_weight)
