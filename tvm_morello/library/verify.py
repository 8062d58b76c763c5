"""Check a compiled dispatching library against numpy in every dispatch region before it is written."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..dynamic.plan import OperatorPlan
from ..errors import VerificationError


@dataclass(frozen=True)
class VerificationReport:
    """Shapes checked per operator (variable values), and the worst relative error seen."""

    checked: dict
    max_rel_error: float

    def to_json(self) -> dict:
        return {"checked": self.checked, "max_rel_error": self.max_rel_error}


def region_points(plan: OperatorPlan, random_per_region: int = 2, seed: int = 0) -> list[tuple[int, ...]]:
    """Each leaf box's corners, the values just inside its bounds, and random interior points."""
    wl = plan.workload
    lo = [wl.range_of(n).lo for n in wl.var_names]
    hi = [wl.range_of(n).hi for n in wl.var_names]
    rng = np.random.default_rng(seed)
    points: set[tuple[int, ...]] = {tuple(lo), tuple(hi)}
    for region in plan.tree.regions(lo, hi):
        for pick in range(2 ** len(lo)):
            corner = [region.hi[i] if pick >> i & 1 else region.lo[i] for i in range(len(lo))]
            points.add(tuple(corner))
            points.add(tuple(min(max(v + (-1 if pick >> i & 1 else 1), region.lo[i]), region.hi[i])
                             for i, v in enumerate(corner)))
        for _ in range(random_per_region):
            points.add(tuple(int(rng.integers(a, b + 1)) for a, b in zip(region.lo, region.hi)))
    return sorted(points)


def checked_columns(n: int, panel: int, rng: np.random.Generator):
    """Output columns compared with numpy: every column of the first and the last weight panel (the full and the
    ragged ends of a row tile's sweep) and two random columns of every other panel, so each panel's code path is
    checked while the reference costs a fraction of the product (Llama-2's 4096-wide FFN down: 1/16)."""
    panel = max(panel, 1)
    panels = -(-n // panel)
    if panels <= 4:
        return slice(None)
    inner = [p * panel + rng.choice(panel, size=2, replace=False) for p in range(1, panels - 1)]
    return np.concatenate([np.arange(panel), *inner, np.arange((panels - 1) * panel, n)])


def check_out_of_range(vm, plan: OperatorPlan, packed_b) -> None:
    """A shape beyond the declared range must raise an error that names the operator."""
    import tvm

    wl = plan.workload
    env = {name: wl.range_of(name).hi for name in wl.var_names}
    env[wl.var_names[0]] += 1
    a_shape, b_shape = wl.input_shapes(env)
    b = packed_b if wl.constant_b else tvm.runtime.tensor(np.zeros(b_shape, "float32"))
    try:
        vm[plan.entry](tvm.runtime.tensor(np.zeros(a_shape, "float32")), b)
    except Exception as err:  # the VM raises TVM's error types
        if wl.name not in str(err):
            raise VerificationError(f"{wl.name}: out-of-range shape {env} raised an unclear error: {err}") from err
        return
    raise VerificationError(f"{wl.name}: out-of-range shape {env} was accepted instead of rejected")


def verify_library(executable, plans: Sequence[OperatorPlan], *, rtol: float = 1e-4, random_per_region: int = 2,
                   seed: int = 0) -> VerificationReport:
    """Run every plan's entry on region boundary and random shapes and compare its ``checked_columns`` with numpy;
    raise VerificationError on a mismatch."""
    import tvm
    from tvm import relax

    vm = relax.VirtualMachine(executable, tvm.cpu())
    rng = np.random.default_rng(seed)
    checked, worst = {}, 0.0
    for plan in plans:
        wl = plan.workload
        points = region_points(plan, random_per_region, seed)
        weight = None
        for values in points:
            env = dict(zip(wl.var_names, values))
            a_shape, b_shape = wl.input_shapes(env)
            a = rng.standard_normal(a_shape, dtype=np.float32)
            if weight is None or not wl.constant_b:
                weight = rng.standard_normal(b_shape, dtype=np.float32)
                b_arg = vm[plan.pack_entry](tvm.runtime.tensor(weight)) if wl.constant_b else tvm.runtime.tensor(weight)
            columns = checked_columns(wl.dims(env)[3], plan.panel, rng)
            expected = wl.reference(a, weight, columns)
            got = vm[plan.entry](tvm.runtime.tensor(a), b_arg).numpy()
            kernel = plan.kernels[plan.tree.predict_one(values)].key
            if got.shape != wl.output_shape(env):
                raise VerificationError(f"{wl.name} at {env} (kernel {kernel}): shape {got.shape}, expected "
                                        f"{wl.output_shape(env)}")
            got = got[..., columns]
            err = float(np.abs(got - expected).max() / (np.abs(expected).max() + 1e-30))
            worst = max(worst, err)
            if not np.isfinite(err) or err > rtol:
                raise VerificationError(
                    f"{wl.name} at {env} (kernel {kernel}): relative error {err:.3g} exceeds {rtol:g}; library not written")
        check_out_of_range(vm, plan, b_arg)
        checked[wl.name] = [list(p) for p in points]
    return VerificationReport(checked, worst)
