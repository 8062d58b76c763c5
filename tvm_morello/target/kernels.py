"""Micro-kernels of an x86 core: each says which spec it implements exactly and what it costs."""
from __future__ import annotations

from dataclasses import dataclass

from ..cost.affine import lines_touched
from ..cost.constants import CostConstants
from ..spec import Fill, Level, Matmul, Move, Spec
from .cpu import CpuTarget


@dataclass(frozen=True)
class Kernel:
    """Base of the leaf implementations; subclasses define ``applies`` and ``cost``."""

    name = "kernel"
    fallback = False  # a kernel for what no vector kernel implements

    def applies(self, spec: Spec, target: CpuTarget) -> bool:
        raise NotImplementedError

    def cost(self, spec: Spec, constants: CostConstants, target: CpuTarget) -> float:
        raise NotImplementedError

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class BroadcastFma(Kernel):
    """out[m, n] += lhs[m, 0] * rhs[0, n]: m broadcasts, n/lanes vector loads, m*n/lanes FMAs in registers."""

    name = "broadcast_fma"

    def applies(self, spec, target):
        return (
            isinstance(spec, Matmul)
            and spec.accumulate
            and spec.k == 1
            and spec.b == 1
            and spec.out.level == Level.VREG
            and spec.n % target.lanes() == 0
            and spec.lhs.level == Level.L1
            and spec.rhs.level == Level.L1
            and spec.rhs.layout.kind in ("row", "panel")
            and spec.limits.vregs >= spec.n // target.lanes() + 1
        )

    def cost(self, spec, constants, target):
        vectors = spec.n // target.lanes()
        return constants.fma_vector * spec.m * vectors + constants.vector_load * (spec.m + vectors) + constants.kernel_step


@dataclass(frozen=True)
class DotFma(Kernel):
    """out[m, n] += lhs[m, 0:lanes] . rhs[0:lanes, n] into a lanes tile: m + n vector loads along k (lhs rows,
    rhs columns as stored), m*n lane-wise FMAs; the lanes are summed when the tile is stored."""

    name = "dot"

    def applies(self, spec, target):
        return (
            isinstance(spec, Matmul)
            and spec.accumulate
            and spec.k == target.lanes()
            and spec.b == 1
            and spec.out.level == Level.VREG
            and spec.out.layout.kind == "lanes"
            and spec.lhs.level == Level.L1
            and spec.rhs.level == Level.L1
            and spec.lhs.layout.kind == "row"
            and spec.rhs.layout.kind == "col"
            and spec.limits.vregs >= spec.m + 1
        )

    def cost(self, spec, constants, target):
        return constants.dot_fma * spec.m * spec.n + constants.vector_load * (spec.m + spec.n) + constants.kernel_step


@dataclass(frozen=True)
class ScalarLoops(Kernel):
    """The fallback for any shape or layout: a scalar multiply-add loop nest accumulating in memory."""

    name = "scalar_loops"
    fallback = True

    def applies(self, spec, target):
        return isinstance(spec, Matmul) and spec.accumulate and spec.out.level == Level.GLOBAL

    def cost(self, spec, constants, target):
        return constants.scalar_mac * spec.volume


@dataclass(frozen=True)
class VectorZero(Kernel):
    """Zero a register-resident output tile."""

    name = "vector_zero"

    def applies(self, spec, target):
        return isinstance(spec, Fill) and spec.out.level == Level.VREG and (
            spec.out.layout.kind == "lanes" or spec.n % target.lanes() == 0)

    def cost(self, spec, constants, target):
        return constants.vector_op * register_vectors(spec.m, spec.n, spec.out, target)


@dataclass(frozen=True)
class MemoryZero(Kernel):
    """Zero an output tile in memory (scalar path), paying its lines."""

    name = "memory_zero"

    def applies(self, spec, target):
        return isinstance(spec, Fill) and spec.out.level == Level.GLOBAL

    def cost(self, spec, constants, target):
        lines, _ = lines_touched(spec.m, spec.n, spec.out.layout)
        return constants.store_line * lines


def register_vectors(rows: int, cols: int, operand, target: CpuTarget) -> int:
    """Vector registers a register tile occupies: one per element of a lanes tile, rows x cols / lanes else."""
    return rows * cols if operand.layout.kind == "lanes" else rows * cols // target.lanes()


def _is_register_store(spec: Spec, lanes: bool) -> bool:
    """A register tile (a lanes tile if ``lanes``) stored to its output."""
    return (
        isinstance(spec, Move)
        and spec.source.level == Level.VREG
        and spec.destination.level == Level.GLOBAL
        and (spec.source.layout.kind == "lanes") == lanes
    )


def _store_lines_cost(spec: Move, constants: CostConstants) -> float:
    lines, _ = lines_touched(spec.rows, spec.cols, spec.destination.layout)
    return constants.store_line * lines


@dataclass(frozen=True)
class VectorStore(Kernel):
    """Store a register tile to its output lines."""

    name = "vector_store"

    def applies(self, spec, target):
        return _is_register_store(spec, lanes=False) and spec.cols % target.lanes() == 0

    def cost(self, spec, constants, target):
        return constants.vector_op * spec.rows * spec.cols // target.lanes() + _store_lines_cost(spec, constants)


@dataclass(frozen=True)
class LaneSumStore(Kernel):
    """Sum each output's vector of partial sums across its lanes (a shuffle-and-add tree) and store the tile."""

    name = "lane_sum_store"

    def applies(self, spec, target):
        return _is_register_store(spec, lanes=True)

    def cost(self, spec, constants, target):
        return constants.lane_sum * spec.rows * spec.cols + _store_lines_cost(spec, constants)


def _pack_line_cost(spec: Move, constants: CostConstants) -> float:
    """Read the weight tile's lines (twice the price if strided) and write the panels' lines once each.

    The panels are written to a buffer the body re-reads at once, kept in L2 (the DP packs a weight larger than
    half of L2 one column chunk at a time): their lines cost ``l2_line``. Priced at ``store_line`` (an output's
    line to memory), a pack made the outer-product form look 10% dearer than the dot form on dense 128x768x768,
    where it ran 1.18x faster (Emerald Rapids)."""
    read, read_contiguous = lines_touched(spec.rows, spec.cols, spec.source.layout)
    written, _ = lines_touched(spec.rows, spec.cols, spec.destination.layout)
    return constants.global_line * read * (1 if read_contiguous else 2) + constants.l2_line * written


def _is_pack(spec: Spec) -> bool:
    return (
        isinstance(spec, Move)
        and spec.source.level == spec.destination.level == Level.GLOBAL
        and spec.destination.layout.kind == "panel"
        and spec.source.layout.kind != "panel"
    )


@dataclass(frozen=True)
class PackPanels(Kernel):
    """Copy a weight tile into panel layout element by element, in the source's order (any shape).

    Walking a column-major source along k writes one float per panel row, i.e. one store per element.
    """

    name = "pack_panels"

    def applies(self, spec, target):
        return _is_pack(spec)

    def cost(self, spec, constants, target):
        return _pack_line_cost(spec, constants) + constants.vector_op * spec.rows * spec.cols


@dataclass(frozen=True)
class VectorPackPanels(Kernel):
    """Copy a weight tile into panels a lanes x lanes block at a time, storing lane-wide panel rows.

    Each store fills one whole line of a panel and each block's source lines stay in L1 while it is
    transposed: on a 128x768x768 dense this pack ran the same kernel at ~200 GFLOP/s against ~172 with
    the element-wise pack. Needs rows and columns in whole blocks.
    """

    name = "pack_panels_vector"

    def applies(self, spec, target):
        lanes = target.lanes()
        return (
            _is_pack(spec)
            and spec.cols % lanes == 0
            and spec.rows % lanes == 0
            and spec.destination.layout.panel % lanes == 0
        )

    def cost(self, spec, constants, target):
        return _pack_line_cost(spec, constants) + constants.vector_op * spec.rows * spec.cols // target.lanes()


# On equal cost the earlier kernel wins: the vector pack comes before the element-wise one.
KERNELS: tuple[Kernel, ...] = (
    BroadcastFma(), DotFma(), ScalarLoops(), VectorZero(), MemoryZero(), VectorStore(), LaneSumStore(),
    VectorPackPanels(), PackPanels(),
)
