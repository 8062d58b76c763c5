"""Select a micro-kernel: the leaf of every program, valid only where the kernel's preconditions hold."""
from __future__ import annotations

from dataclasses import dataclass

from ...target.kernels import Kernel
from .base import Action


@dataclass(frozen=True)
class Select(Action):
    kernel: Kernel

    def distinguishes(self, spec):
        return str(self.kernel)

    def combine(self, spec, child_costs, constants, target):
        return self.kernel.cost(spec, constants, target)

    def __str__(self) -> str:
        return str(self.kernel)


def select_actions(spec, target):
    for kernel in target.kernels:
        if kernel.applies(spec, target):
            yield Select(kernel)
