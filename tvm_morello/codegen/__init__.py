"""Code generation: one register-tile schedule (``register_tile``) and one panel layout (``panels``), driven by a
synthesised program (static shapes) or by a micro-kernel (symbolic shapes); ``candidate_schedules`` is the
entry point tuners use."""
from .candidates import Candidate, candidate_schedules, lower_program
from .loop_plan import LoopPlan, microkernel_plan, plan_loops
from .microkernel import MicroKernel
from .program_schedule import apply_program

__all__ = ["Candidate", "LoopPlan", "MicroKernel", "apply_program", "candidate_schedules", "lower_program",
           "microkernel_plan", "plan_loops"]
