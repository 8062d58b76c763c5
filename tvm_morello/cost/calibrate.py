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


def fit_constants(programs: Sequence, seconds: Sequence[float], target, prior: CostConstants | None = None) -> CostConstants:
    """Constants (in nanoseconds) that best explain measured ``seconds`` of ``programs``.

    Relative error is what ranking needs, so each row is scaled by 1 / measured time. Constants that
    no measured program exercises keep the prior's value, rescaled to the fitted units.
    """
    from scipy.optimize import nnls

    from ..target import resolve_target

    target = resolve_target(target)
    if len(programs) != len(seconds) or not programs:
        raise ValueError(f"need one measured time per program, got {len(programs)} programs and {len(seconds)} times")
    prior = prior or CostConstants.default()
    features = np.stack([program_features(p, target) for p in programs])
    nanoseconds = np.asarray(seconds, dtype=float) * 1e9
    weights = 1.0 / nanoseconds
    solution, _ = nnls(features * weights[:, None], nanoseconds * weights)
    used = features.any(axis=0)
    prior_vector = np.array(prior.as_vector())
    predicted_with_prior = features @ prior_vector
    scale = float(np.median(nanoseconds / np.maximum(predicted_with_prior, 1e-12)))
    fitted = np.where(used, solution, prior_vector * scale)
    return CostConstants.from_vector(fitted)
