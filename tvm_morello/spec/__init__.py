"""The spec language: matmul-family problems with operand levels, layouts and memory limits."""
from .operand import COL, LANES, ROW, Layout, Level, Operand, panel
from .spec import NO_MEMORY, Fill, Matmul, MemoryLimits, Move, Spec, canonicalize, dense_spec, matmul_spec

__all__ = [
    "COL", "LANES", "NO_MEMORY", "ROW", "Fill", "Layout", "Level", "Matmul", "MemoryLimits", "Move", "Operand", "Spec",
    "canonicalize", "dense_spec", "matmul_spec", "panel",
]
