"""DietCode-style cost: learned micro-kernel throughput (XGBoost) x shape adaptation (padding, occupancy)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from ..codegen.kernel_funcs import dot_parallel_over_batch
from ..codegen.microkernel import MicroKernel
from ..measure.kernels import Measurement
from ..spec.symbolic import DynamicWorkload


@dataclass(frozen=True)
class Adaptation:
    """How well a micro-kernel fits one shape: useful fraction of the padded tiles, and of the cores."""

    padding: float
    occupancy: float

    def factor(self, alpha: float) -> float:
        return self.padding * self.occupancy**alpha


def adaptation(workload: DynamicWorkload, micro: MicroKernel, panel: int, env: Mapping[str, int], cores: int) -> Adaptation:
    """Padding ratio (real / computed elements of the padded tiles) and parallel efficiency (work units over
    rounded-up waves of ``cores``) of ``micro`` at shape ``env``; units are (batch, column tile) pairs, or
    for the dot form what ``kernels.dot_parallel_over_batch`` says."""
    b, m, _, n = workload.dims(env)
    rows = -(-m // micro.mr) * micro.mr
    if micro.dot:  # B read unpacked; work units are matrices, or (batch, row tile) pairs for a small batch
        cols = -(-n // micro.nr) * micro.nr
        units = b if dot_parallel_over_batch(workload, cores) else b * rows // micro.mr
    else:
        width = panel if workload.constant_b else micro.nr
        cols = -(-n // width) * width if workload.packs_b() else n
        units = b * -(-cols // micro.nr)
    if not micro.parallel:
        return Adaptation((m * n) / (rows * cols), 1.0 / cores)
    return Adaptation((m * n) / (rows * cols), units / (-(-units // cores) * cores))


def features(micro: MicroKernel, lanes: int) -> list[float]:
    """Micro-kernel features the throughput model learns from: tile, register use, parallel or serial, form."""
    return [micro.mr, micro.nr, float(micro.parallel), micro.accumulators(lanes), float(micro.dot)]


MIN_THROUGHPUT_SECONDS = 1e-4
"""Runs shorter than this time a kernel's fixed overheads (thread-pool wake-up, set-up) more than its throughput."""


def runs_by_kernel(workload: DynamicWorkload, measurements: Sequence[Measurement], pick=max
                   ) -> dict[MicroKernel, Measurement]:
    """Each kernel's largest run by flops (``pick=min``: its smallest); the first such on ties."""
    runs: dict[MicroKernel, list[Measurement]] = {}
    for meas in measurements:
        runs.setdefault(meas.micro, []).append(meas)
    return {micro: pick(group, key=lambda m: workload.flops(m.env_dict)) for micro, group in runs.items()}


def calibrate_alpha(workload: DynamicWorkload, measurements: Sequence[Measurement], panel: int, cores: int,
                    min_seconds: float = MIN_THROUGHPUT_SECONDS) -> float:
    """Exponent of occupancy in the adaptation factor, fitted by least squares on pairs of runs of the same
    micro-kernel at shapes of different occupancy, both long enough (``min_seconds``) for fixed overheads not
    to dominate; 1.0, the analytic value, when no such pair exists."""
    xs, ys = [], []
    by_micro: dict[MicroKernel, list[Measurement]] = {}
    for meas in measurements:
        if meas.seconds >= min_seconds:
            by_micro.setdefault(meas.micro, []).append(meas)
    for micro, runs in by_micro.items():
        for i, first in enumerate(runs):
            for second in runs[i + 1:]:
                a1 = adaptation(workload, micro, panel, first.env_dict, cores)
                a2 = adaptation(workload, micro, panel, second.env_dict, cores)
                x = math.log(a1.occupancy / a2.occupancy)
                if abs(x) > 1e-6:
                    xs.append(x)
                    ys.append(math.log(first.gflops / second.gflops) - math.log(a1.padding / a2.padding))
    if not xs:
        return 1.0
    x, y = np.asarray(xs), np.asarray(ys)
    return float(np.clip((x @ y) / (x @ x), 0.0, 2.0))


class ThroughputModel:
    """Cost of a micro-kernel at a shape: a fixed per-call overhead plus flops / (throughput x adaptation).

    The throughput (adaptation-normalised GFLOP/s at the kernel's best-adapted, largest run) is learned by
    an XGBoost regressor over micro-kernel features, as in DietCode; the overhead (thread-pool wake-up,
    packing, loop set-up) is what remains of the kernel's smaller runs. sklearn-style ``fit`` / ``predict``.

    Parameters
    ----------
    lanes : vector lanes of the target (for the register-use feature).
    cores : cores the kernels run on (occupancy).
    alpha : occupancy exponent; None calibrates it from the measurements in ``fit``.
    random_state : seed of the booster.
    """

    def __init__(self, lanes: int, cores: int, alpha: float | None = None, random_state: int = 0):
        self.lanes = lanes
        self.cores = cores
        self.alpha = alpha
        self.random_state = random_state

    def fit(self, workload: DynamicWorkload, panel: int, measurements: Sequence[Measurement]) -> "ThroughputModel":
        import xgboost

        self.alpha_ = self.alpha if self.alpha is not None else calibrate_alpha(workload, measurements, panel, self.cores)
        largest = runs_by_kernel(workload, measurements)
        micros = sorted(largest)
        x = np.array([features(mk, self.lanes) for mk in micros])
        y = np.array([math.log(largest[mk].gflops / self._factor(workload, mk, panel, largest[mk].env_dict))
                      for mk in micros])
        self.booster_ = xgboost.XGBRegressor(n_estimators=60, max_depth=3, learning_rate=0.3, min_child_weight=0.0,
                                             random_state=self.random_state, n_jobs=1)
        self.booster_.fit(x, y)
        self.throughput_ = dict(zip(micros, np.exp(self.booster_.predict(x))))
        smallest = runs_by_kernel(workload, measurements, pick=min)
        self.overhead_ = {mk: max(0.0, m.seconds - self._compute_seconds(workload, mk, panel, m.env_dict))
                          for mk, m in smallest.items() if m is not largest[mk]}
        return self

    def _factor(self, workload, micro, panel, env) -> float:
        return adaptation(workload, micro, panel, env, self.cores).factor(self.alpha_)

    def _compute_seconds(self, workload, micro, panel, env) -> float:
        throughput = self.throughput_.get(micro)
        if throughput is None:
            throughput = float(np.exp(self.booster_.predict(np.array([features(micro, self.lanes)]))[0]))
        return workload.flops(env) / (throughput * self._factor(workload, micro, panel, env) * 1e9)

    def predict_seconds(self, workload: DynamicWorkload, panel: int, micros: Sequence[MicroKernel],
                        envs: Sequence[Mapping[str, int]]) -> np.ndarray:
        """Predicted seconds, shape [len(envs), len(micros)]."""
        def overhead(micro: MicroKernel) -> float:
            if micro in self.overhead_:
                return self.overhead_[micro]
            alike = [v for mk, v in self.overhead_.items() if mk.parallel == micro.parallel]
            return float(np.median(alike)) if alike else 0.0

        return np.array([[overhead(mk) + self._compute_seconds(workload, mk, panel, env)
                          for mk in micros] for env in envs])
