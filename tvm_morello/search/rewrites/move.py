"""Move an operand to a faster level or another layout: cache views, packed weight panels, register tiles."""
from __future__ import annotations

from dataclasses import dataclass, replace

from ...cost.affine import lines_touched, move_cost
from ...spec import LANES, Level, Matmul, MemoryLimits, Move, Operand, canonicalize, panel
from ...target.cpu import LINE_BYTES
from ...target.kernels import register_vectors
from .base import Action

PANEL_VECTORS = (1, 2, 4)  # panel widths in vector registers (16, 32, 64 floats with AVX-512)


def _footprint_lines(spec: Matmul, role: str) -> int:
    lines, _ = lines_touched(*spec.operand_shape(role), getattr(spec, role).layout)
    return lines * spec.b


@dataclass(frozen=True)
class CacheView(Action):
    """Bring lhs or rhs into a cache level: no buffer, only the lines it touches are paid (Morello's views).

    A view allocates nothing (the hardware manages the cache); its precondition is that the tile fits
    the level's capacity (L1: the spec's limit; L2: half of one core's L2), so data moved once is reused by every
    iteration below it. Lines come from L2 at ``l2_line`` if the tile is already viewed there, else from
    memory at ``global_line``.
    """

    role: str
    level: Level

    def fits(self, spec: Matmul, target) -> bool:
        return _footprint_lines(spec, self.role) <= self.capacity_lines(spec, target)

    def capacity_lines(self, spec: Matmul, target) -> int:
        """L1: the spec's limit. L2: half of one core's L2, the rest left to the A rows and output lines that
        stream through it (a 1 MB panel in a 1 MB L2 ran 20% slower than a 512 KB one on 1024^3)."""
        return spec.limits.l1_lines if self.level == Level.L1 else target.l2_bytes // 2 // LINE_BYTES

    def subspecs(self, spec, target):
        moved = replace(getattr(spec, self.role), level=self.level)
        return (canonicalize(replace(spec, **{self.role: moved})),)

    def combine(self, spec, child_costs, constants, target):
        rows, cols = spec.operand_shape(self.role)
        operand = getattr(spec, self.role)
        line_cost = constants.l2_line if operand.level == Level.L2 else constants.global_line
        return child_costs[0] + spec.b * move_cost(rows, cols, operand.layout, line_cost)

    def __str__(self) -> str:
        return f"view({self.role} -> {self.level.name})"


@dataclass(frozen=True)
class PackRhs(Action):
    """Copy the rhs tile into panels of ``width`` columns (a real buffer), then run the body on it."""

    width: int
    body_index = 1

    def distinguishes(self, spec):
        return ("pack", self.width)

    def packed(self, spec: Matmul) -> Operand:
        return replace(spec.rhs, layout=panel(self.width))

    def subspecs(self, spec, target):
        prologue = canonicalize(Move(spec.b * spec.k, spec.n, spec.rhs, self.packed(spec)))
        return (prologue, canonicalize(replace(spec, rhs=self.packed(spec))))

    def combine(self, spec, child_costs, constants, target):
        return child_costs[0] + child_costs[1]

    def __str__(self) -> str:
        return f"pack(rhs -> panel{self.width})"


@dataclass(frozen=True)
class RegisterOut(Action):
    """Keep the output tile in vector registers; store it once after the reduction.

    The outer-product form holds the tile's rows as lane-wide vectors. The ``dot`` form holds one vector of
    partial sums per output (a ``lanes`` tile) and sums its lanes when storing: it reads lhs rows and rhs
    columns contiguous along k as they are stored (dense's W[n, k], attention's Kᵀ), so it needs no panel pack
    and no padding of n to whole vectors (decode GEMVs, short attention scores).
    """

    dot: bool = False

    def distinguishes(self, spec):
        return ("registers", spec.m, spec.n, self.dot)

    def in_registers(self, spec: Matmul) -> Operand:
        return Operand(Level.VREG, LANES if self.dot else spec.out.layout, spec.out.dtype)

    def vectors(self, spec: Matmul, target) -> int:
        return register_vectors(spec.m, spec.n, self.in_registers(spec), target)

    def subspecs(self, spec, target):
        limits = spec.limits.minus(self.allocation(spec, target))
        in_registers = self.in_registers(spec)
        body = canonicalize(replace(spec, out=in_registers, limits=limits))
        return (body, Move(spec.m, spec.n, in_registers, spec.out))

    def allocation(self, spec, target):
        return MemoryLimits(self.vectors(spec, target), 0)

    def combine(self, spec, child_costs, constants, target):
        return child_costs[0] + child_costs[1]

    def __str__(self) -> str:
        return "registers(out, dot)" if self.dot else "registers(out)"


# Rows of A a dot-form register tile holds at most: each row costs a whole vector load per k-vector, so taller
# tiles trade B reuse for A loads; 4-row tiles ran no faster than 2-row ones (dense 128x768x768 on Emerald
# Rapids: 4 x 4 at 225 GFLOP/s, 2 x 8 at 237) and widened the search. The dynamic route's dot kernels hold 1 or 2.
DOT_ROWS = 2


def _dot_form_applies(spec: Matmul, target) -> bool:
    """k whole vectors, lhs rows and rhs columns contiguous along k, at most ``DOT_ROWS`` rows."""
    return (
        spec.m <= DOT_ROWS
        and spec.k % target.lanes() == 0
        and spec.lhs.layout.kind == "row"
        and spec.rhs.layout.kind == "col"
    )


def move_actions(spec, target):
    if not isinstance(spec, Matmul):
        return
    for role in ("lhs", "rhs"):
        level = getattr(spec, role).level
        if level in (Level.GLOBAL, Level.L2):
            to_l1 = CacheView(role, Level.L1)
            if to_l1.fits(spec, target):
                yield to_l1
            elif role == "rhs" and level == Level.GLOBAL and CacheView(role, Level.L2).fits(spec, target):
                # B (a weight panel) is what a row-tile loop re-reads: L2 views of it alone, to keep the
                # search small; a tile that fits L1 gains nothing from an L2 view first
                yield CacheView(role, Level.L2)
    lanes = target.lanes()
    if spec.rhs.level == Level.GLOBAL and spec.rhs.layout.kind != "panel" and spec.k > 1:
        for vectors in PANEL_VECTORS:
            width = vectors * lanes
            if spec.n % width == 0:
                yield PackRhs(width)
    if spec.out.level != Level.GLOBAL or spec.accumulate or spec.b != 1:
        return
    for register_out in (RegisterOut(), RegisterOut(dot=True)):
        if register_out.dot and not _dot_form_applies(spec, target):
            continue
        if not register_out.dot and spec.n % lanes:
            continue
        if spec.limits.covers(register_out.allocation(spec, target)):
            yield register_out
