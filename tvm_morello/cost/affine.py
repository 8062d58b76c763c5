"""Morello's affine cost terms: loops, parallel loops, and moves priced by cache lines touched."""
from __future__ import annotations

import math

from ..spec import Layout
from .constants import CostConstants

LINE_FLOATS = 16  # float32 elements per 64-byte line


def lines_touched(rows: int, cols: int, layout: Layout) -> tuple[int, bool]:
    """Cache lines a [rows, cols] tile of a larger buffer touches, and whether they are contiguous.

    Lines = (number of non-contiguous runs) x ceil(run length / line); a tile is contiguous when it
    is a single run.
    """
    if layout.kind == "row":
        runs, run = rows, cols
    elif layout.kind == "col":
        runs, run = cols, rows
    else:  # panel: whole panels are one run each, a narrower tile is strided by the panel width
        if cols % layout.panel == 0:
            runs, run = cols // layout.panel, rows * layout.panel
        else:
            runs, run = rows * math.ceil(cols / layout.panel), min(cols, layout.panel)
    if runs == 1:
        return math.ceil(run / LINE_FLOATS), True
    return runs * math.ceil(run / LINE_FLOATS), False


def move_cost(rows: int, cols: int, layout: Layout, line_cost: float) -> float:
    """Per-level line cost x lines touched, doubled when the tile is not one contiguous run."""
    lines, contiguous = lines_touched(rows, cols, layout)
    return line_cost * lines * (1 if contiguous else 2)


def serial_loop_cost(body: float, iterations: int) -> float:
    """A serial loop adds nothing to its body's cost (padding: the partial tile costs a full one)."""
    return body * iterations


def parallel_loop_cost(body: float, iterations: int, cores: int, constants: CostConstants) -> float:
    """Iterations are spread over the cores (the slowest core sets the time) plus launch overheads."""
    rounds = math.ceil(iterations / cores)
    return body * rounds + constants.parallel_setup + constants.parallel_iteration * rounds
