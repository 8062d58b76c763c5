"""Turn out = lhs x rhs into (out = 0; out += lhs x rhs), which is what lets k be split."""
from __future__ import annotations

from dataclasses import dataclass, replace

from ...spec import Fill, Matmul, canonicalize
from .base import Action


@dataclass(frozen=True)
class ToAccum(Action):
    body_index = 1

    def subspecs(self, spec, target):
        return (Fill(spec.b * spec.m, spec.n, spec.out), canonicalize(replace(spec, accumulate=True)))

    def combine(self, spec, child_costs, constants, target):
        return child_costs[0] + child_costs[1]

    def __str__(self) -> str:
        return "to_accum"


def to_accum_actions(spec, target):
    if isinstance(spec, Matmul) and not spec.accumulate:
        yield ToAccum()
