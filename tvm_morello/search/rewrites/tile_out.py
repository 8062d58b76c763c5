"""Tile the output: a loop over (b, m, n) tiles, serial or parallel over at most two dimensions."""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from itertools import combinations, product

from ...cost.affine import parallel_loop_cost, serial_loop_cost
from ...spec import Level, Matmul, canonicalize
from .base import Action, powers_of_two_below

DIMS = ("b", "m", "n")


@dataclass(frozen=True)
class TileOut(Action):
    """Loop over output tiles of size (b, m, n); a tile that does not divide its extent is padded."""

    b: int
    m: int
    n: int
    parallel: bool = False

    def distinguishes(self, spec):
        return ("parallel", self.b, self.m, self.n) if self.parallel else None

    def iterations(self, spec: Matmul) -> int:
        return math.ceil(spec.b / self.b) * math.ceil(spec.m / self.m) * math.ceil(spec.n / self.n)

    def subspecs(self, spec, target):
        body = replace(spec, b=self.b, m=self.m, n=self.n, serial_only=spec.serial_only or self.parallel)
        return (canonicalize(body),)

    def combine(self, spec, child_costs, constants, target):
        if self.parallel:
            return parallel_loop_cost(child_costs[0], self.iterations(spec), target.cores, constants)
        return serial_loop_cost(child_costs[0], self.iterations(spec))

    def __str__(self) -> str:
        kind = "tile_parallel" if self.parallel else "tile"
        return f"{kind}(b={self.b}, m={self.m}, n={self.n})"


def tile_out_actions(spec, target):
    """Serial tiles of one dimension at a time (sequences express any loop order); parallel tiles of <= 2."""
    if not isinstance(spec, Matmul) or spec.out.level == Level.VREG or spec.accumulate:
        return  # tiles are chosen before the reduction is split; register tiles are the kernel's
    extents = {d: getattr(spec, d) for d in DIMS}
    for dim in DIMS:
        for size in powers_of_two_below(extents[dim]):
            yield TileOut(**{**extents, dim: size})
    if spec.serial_only or target.cores == 1:
        return
    for count in (1, 2):
        for dims in combinations(DIMS, count):
            for sizes in product(*(powers_of_two_below(extents[d]) for d in dims)):
                yield TileOut(**{**extents, **dict(zip(dims, sizes))}, parallel=True)
