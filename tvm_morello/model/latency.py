"""The compiled model's latency measured at a few assignments of its dimensions, for the summary and the
manifest: what a user sizing a deployment asks first."""
from __future__ import annotations

from typing import Mapping

from ..spec.symbolic import VarRange
from .verify import input_arrays


def latency_points(ranges: Mapping[str, VarRange]) -> list[dict[str, int]]:
    """Every dimension at its low end, at its midpoint, at its high end."""
    points = []
    for pick in (lambda r: r.lo, lambda r: (r.lo + r.hi) // 2, lambda r: r.hi):
        point = {name: pick(r) for name, r in ranges.items()}
        if point not in points:
            points.append(point)
    return points


def measure_latency(executable, func, points, *, min_repeat_ms: int = 50) -> tuple[dict, ...]:
    """``{**point, "ms": milliseconds per call of main}`` at each point (the best of three repeats)."""
    import tvm
    from tvm import relax

    dev = tvm.cpu()
    vm = relax.VirtualMachine(executable, dev)
    out = []
    for point in points:
        inputs = [tvm.runtime.tensor(a, dev) for a in input_arrays(func, point)]
        timer = vm.time_evaluator("main", dev, number=1, repeat=3, min_repeat_ms=min_repeat_ms)
        out.append({**point, "ms": 1e3 * min(timer(*inputs).results)})
    return tuple(out)
