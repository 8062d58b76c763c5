"""Search: rewrites, the DP that composes them, and the memo table it fills."""
from .dp import SearchStats, Synthesizer, synthesize
from .program import Program

__all__ = ["Program", "SearchStats", "Synthesizer", "synthesize"]
