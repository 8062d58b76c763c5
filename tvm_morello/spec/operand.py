"""How one operand of a spec is stored: memory level, layout and dtype."""
from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class Level(IntEnum):
    """Memory levels from slowest to fastest; caches are views (cost only), registers are real buffers.

    ``GLOBAL`` is memory beyond the per-core L2 (L3, DRAM). A tile viewed in ``L2`` is paid once from there;
    the L1 views below it then cost L2 lines: how a packed weight panel re-read for every row tile is cheap
    when it fits L2 and is not when it does not."""

    GLOBAL = 0
    L2 = 1
    L1 = 2
    VREG = 3


@dataclass(frozen=True, order=True)
class Layout:
    """A 2-D operand layout relative to its logical [rows, cols] shape.

    ``row`` is row-major, ``col`` is column-major (e.g. dense's weight W[n, k] is the logical
    [k, n] operand in ``col``), ``panel`` stores column panels of ``panel`` columns as
    [cols / panel, rows, panel] (BLIS packing; contiguous along rows within a panel), ``lanes`` is a register
    tile that holds a vector of partial sums per element (the dot form: summed across its lanes when stored).
    """

    kind: str = "row"
    panel: int = 0

    def __post_init__(self) -> None:
        if self.kind not in ("row", "col", "panel", "lanes"):
            raise ValueError(f"layout kind {self.kind!r}: expected 'row', 'col', 'panel' or 'lanes'")
        if (self.kind == "panel") != (self.panel > 0):
            raise ValueError(f"layout {self.kind!r} with panel={self.panel}: only 'panel' takes a width")

    def __str__(self) -> str:
        return f"panel{self.panel}" if self.kind == "panel" else self.kind


ROW = Layout("row")
COL = Layout("col")
LANES = Layout("lanes")


def panel(width: int) -> Layout:
    """The packed-panel layout of ``width`` columns."""
    return Layout("panel", width)


@dataclass(frozen=True, order=True)
class Operand:
    """One tensor of a spec: where it lives and how it is laid out."""

    level: Level = Level.GLOBAL
    layout: Layout = ROW
    dtype: str = "float32"

    def __str__(self) -> str:
        return f"{self.level.name}:{self.layout}"
