"""Lowering: synthesised programs become TVM schedules; candidate_schedules is the entry point tuners use."""
from .candidates import Candidate, candidate_schedules, lower_program
from .schedule import apply_program, plan_loops

__all__ = ["Candidate", "apply_program", "candidate_schedules", "lower_program", "plan_loops"]
