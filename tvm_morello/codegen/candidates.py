"""From a PrimFunc to ranked, ready-to-build schedules: recognise, synthesise, lower."""
from __future__ import annotations

import logging
from dataclasses import dataclass

from ..cost.constants import CostConstants
from ..search import Program, synthesize
from ..spec.recognize import recognize
from ..target import resolve_target
from .program_schedule import apply_program

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Candidate:
    """A synthesised program and its schedule of the PrimFunc it was synthesised for."""

    program: Program
    schedule: object  # tvm.s_tir.Schedule


def _as_prim_func(func_or_mod):
    import tvm

    if isinstance(func_or_mod, tvm.IRModule):
        funcs = [f for f in func_or_mod.functions.values() if isinstance(f, tvm.tirx.PrimFunc)]
        if len(funcs) != 1:
            from ..errors import UnsupportedOperatorError

            raise UnsupportedOperatorError(f"IRModule holds {len(funcs)} PrimFuncs; expected exactly one")
        return funcs[0]
    return func_or_mod


def lower_program(func, program: Program, target=None):
    """A tvm.s_tir.Schedule of ``func`` implementing ``program``."""
    from tvm.s_tir import Schedule

    func = _as_prim_func(func)
    target = resolve_target(target)
    sch = Schedule(func)
    apply_program(sch, recognize(func, target), program, target)
    return sch


def candidate_schedules(func, target=None, top_k: int = 8, constants: CostConstants | None = None, table=None):
    """The DP's ``top_k`` programs for ``func`` lowered to schedules, cheapest modelled cost first.

    Raises UnsupportedOperatorError for PrimFuncs that are not fp32 matmul-family operators. A program
    that TVM refuses to schedule is logged and skipped rather than failing the whole request.
    """
    from tvm.s_tir import Schedule

    func = _as_prim_func(func)
    target = resolve_target(target)
    recognized = recognize(func, target)
    candidates = []
    for program in synthesize(recognized.spec, target, top_k=top_k, constants=constants, table=table):
        sch = Schedule(func)
        try:
            apply_program(sch, recognized, program, target)
        except Exception as err:  # a TVM ScheduleError: keep the others
            logger.warning("program could not be lowered, skipped: %s\n%s", err, program.render())
            continue
        candidates.append(Candidate(program, sch))
    return candidates
