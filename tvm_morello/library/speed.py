"""The exported library against numpy at sampled shapes of each operator's range: the library timed in this
process, numpy in a persistent process of its own (their thread pools contend), so the worst point is measured
and reported, not predicted."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..dynamic.plan import OperatorPlan
from ..dynamic.planning import planned_shapes
from ..measure.kernels import streamed_copies, time_in_turn
from ..measure.numpy_timer import NumpyTimer
from ..spec.symbolic import spread_with_small_end


@dataclass(frozen=True)
class SpeedPoint:
    """One shape: the library's and numpy's seconds per call."""

    env: tuple[tuple[str, int], ...]
    seconds: float
    numpy_seconds: float

    @property
    def speedup(self) -> float:
        """numpy's time over ours: above 1 the library is faster."""
        return self.numpy_seconds / self.seconds


@dataclass(frozen=True)
class SpeedCheck:
    """An operator's sampled points, and the one where the library does worst against numpy."""

    operator: str
    points: tuple[SpeedPoint, ...]

    @property
    def worst(self) -> SpeedPoint:
        return min(self.points, key=lambda p: p.speedup)

    @property
    def geomean(self) -> float:
        return float(np.exp(np.mean([np.log(p.speedup) for p in self.points])))

    def to_json(self) -> dict:
        return {"operator": self.operator, "geomean_vs_numpy": self.geomean,
                "points": [{"shape": dict(p.env), "seconds": p.seconds, "numpy_seconds": p.numpy_seconds}
                           for p in self.points]}


def check_points(plan: OperatorPlan, count: int = 12) -> list[dict[str, int]]:
    """Shapes to time, among the shapes the plan was planned on (so a measured loss can correct it): the
    smallest each, then an even spread up to the largest."""
    wl = plan.workload
    shapes, _ = planned_shapes(wl, plan.provenance.get("config", {}).get("max_shapes", 64))
    shapes = sorted(shapes, key=wl.flops)
    return [shapes[i] for i in spread_with_small_end(len(shapes), count)]


def check_speed(vm, plans: Sequence[OperatorPlan], count: int = 12, *, min_repeat_ms: int = 20,
                retime_losses: int = 1, streamed_bytes: int = 0) -> list[SpeedCheck]:
    """Time each operator's entry of a loaded library (``vm``) and numpy (one process of its own for the whole
    check) at ``check_points``. A constant weight is made and packed once per operator, as a model does; with
    ``streamed_bytes`` (a model's weights) both sides read it from copies spanning that many bytes in turn, as
    the tuner measured it (``measure.kernels.streamed_arguments``): a weight kept hot in the core's caches
    would favour kernels the model does not want.

    A point where the library is slower is timed again on both sides (``retime_losses`` times), each keeping its
    fastest: a loss sends the operator back to tuning, and on this 2-core VM a single reading of a DRAM-bound
    call (Llama-2's FFN down at m = 1: 180 MB per call, both sides near the same bandwidth) strays by 10-20%."""
    import tvm

    dev = tvm.cpu()
    rng = np.random.default_rng(0)
    checks = []
    with NumpyTimer() as numpy_timer:
        for plan in plans:
            wl = plan.workload
            points, weights = [], None
            for env in check_points(plan, count):
                a_shape, b_shape = wl.input_shapes(env)
                copies = streamed_copies(b_shape, 4, streamed_bytes) if wl.constant_b and streamed_bytes else 1
                a = tvm.runtime.tensor(rng.standard_normal(a_shape, dtype=np.float32), dev)
                if weights is None or not wl.constant_b:
                    weights = None  # the old copies go before the new ones are made
                    b = tvm.runtime.tensor(rng.standard_normal(b_shape, dtype=np.float32), dev)
                    weights = [vm[plan.pack_entry](b) for _ in range(copies)] if wl.constant_b else [b]
                seconds = reference = np.inf
                for _ in range(1 + retime_losses):
                    seconds = min(seconds, _library_seconds(vm, plan.entry, a, weights, min_repeat_ms))
                    reference = min(reference, numpy_timer.time_workload(wl, env, copies))
                    if reference >= seconds:
                        break
                points.append(SpeedPoint(tuple(sorted(env.items())), seconds, reference))
            checks.append(SpeedCheck(wl.name, tuple(points)))
    return checks


def _library_seconds(vm, entry: str, a, weights: list, min_repeat_ms: int) -> float:
    """Fastest seconds per call of the library's ``entry`` on ``a`` and each of ``weights`` in turn: TVM's
    time evaluator for one weight; for copies a Python loop (``time_in_turn``), whose call costs a few
    microseconds that numpy's timing loop pays alike."""
    import tvm

    if len(weights) == 1:
        timer = vm.time_evaluator(entry, tvm.cpu(), number=1, repeat=5, min_repeat_ms=min_repeat_ms)
        return float(np.min(timer(a, weights[0]).results))
    return min(time_in_turn(vm[entry], [(a, w) for w in weights], 5, min_repeat_ms))
