"""Search: rewrites, the DP that composes them, and the memo table it fills."""
from .dp import SearchStats, Synthesizer, synthesize
from .program import Program
from .table import Box, InvalidPointError, MemoTable, MemoTableError, TableFileError, TableStats

__all__ = [
    "Box", "InvalidPointError", "MemoTable", "MemoTableError", "Program", "SearchStats", "Synthesizer",
    "TableFileError", "TableStats", "synthesize",
]
