"""Split the reduction: a serial loop over k chunks of an accumulating matmul."""
from __future__ import annotations

from dataclasses import dataclass, replace

from ...cost.affine import serial_loop_cost
from ...spec import Level, Matmul, canonicalize
from .base import Action, powers_of_two_below


@dataclass(frozen=True)
class SplitK(Action):
    """Loop over k in chunks of ``k`` (a divisor: padding a reduction would put a guard in the kernel)."""

    k: int

    def subspecs(self, spec, target):
        return (canonicalize(replace(spec, k=self.k)),)

    def combine(self, spec, child_costs, constants, target):
        return serial_loop_cost(child_costs[0], spec.k // self.k)

    def __str__(self) -> str:
        return f"split(k={self.k})"


def split_k_actions(spec, target):
    if isinstance(spec, Matmul) and spec.accumulate and spec.out.level == Level.VREG:
        for size in powers_of_two_below(spec.k):
            if spec.k % size == 0:
                yield SplitK(size)
