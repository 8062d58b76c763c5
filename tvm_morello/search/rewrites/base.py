"""What every rewrite provides: its sub-specs, the memory it allocates, and how their costs compose."""
from __future__ import annotations

from typing import Sequence

from ...cost.constants import CostConstants
from ...spec import NO_MEMORY, MemoryLimits, Spec
from ...target.cpu import CpuTarget


class Action:
    """A rewrite applied to one spec. ``body_index`` names the child whose alternatives top-k explores."""

    body_index: int = 0

    def subspecs(self, spec: Spec, target: CpuTarget) -> tuple[Spec, ...]:
        return ()

    def allocation(self, spec: Spec, target: CpuTarget) -> MemoryLimits:
        """Memory this rewrite holds while its children run (added to their peak)."""
        return NO_MEMORY

    def distinguishes(self, spec: Spec) -> object:
        """What this rewrite contributes to a program's configuration (None: nothing worth measuring apart).

        Programs with equal configurations differ only in serial loop levels or cache views; top-k keeps
        the cheapest of each, so k candidates are k different ideas.
        """
        return None

    def combine(self, spec: Spec, child_costs: Sequence[float], constants: CostConstants, target: CpuTarget) -> float:
        raise NotImplementedError


def powers_of_two_below(extent: int) -> list[int]:
    """Tile sizes Morello considers for a dimension: powers of two strictly smaller than it."""
    sizes, size = [], 1
    while size < extent:
        sizes.append(size)
        size *= 2
    return sizes
