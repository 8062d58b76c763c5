"""The design space to tune with MorelloSearch: meta-schedule's own for static tasks, a generic schedule valid for
every shape for symbolic ones."""
from __future__ import annotations

import logging

from tvm.ir.utils import derived_object
from tvm.s_tir import Schedule
from tvm.s_tir import meta_schedule as ms
from tvm.s_tir.meta_schedule.space_generator import PySpaceGenerator

from ..codegen.operators import generic_rules
from .symbolic import symbolic_prim_func

logger = logging.getLogger(__name__)


def generic_schedule(func, target) -> Schedule:
    """``func`` scheduled by the first of ``generic_rules`` that applies to it (unscheduled if none does)."""
    for rule in generic_rules():
        try:
            scheduled = rule.apply(func, target, False)
        except Exception:  # noqa: BLE001 - a rule that fails on a PrimFunc it does not expect is a rule that declines
            logger.debug("%s failed on a symbolic task", type(rule).__name__, exc_info=True)
            continue
        if isinstance(scheduled, list):
            scheduled = scheduled[0] if scheduled else None
        if scheduled is not None:
            return scheduled
    return Schedule(func)


@derived_object
class MorelloSpace(PySpaceGenerator):
    """``space=MorelloSpace()`` for ``ms.tune_tir`` / ``tune_relax`` with ``MorelloSearch``.

    Static tasks get meta-schedule's post-order-apply space (what MorelloSearch hands to EvolutionarySearch for a
    task the DP cannot express). A symbolic task gets one design space, ``generic_schedule`` (parallel rows,
    vectors): meta-schedule's default rules abort on symbolic loops ("The random variable has been produced
    once"), and MorelloSearch measures this schedule, at one shape in range, for a task it has no kernels for,
    so that ``compile_relax`` finds a record and applies it.
    """

    def __init__(self) -> None:
        # the defaults of the target, filled in by meta-schedule: EvolutionarySearch reads the postprocs
        self.sch_rules = self.postprocs = self.mutator_probs = "from-target"
        self._default = ms.space_generator.PostOrderApply()
        self._target = None

    def _initialize_with_tune_context(self, context: ms.TuneContext) -> None:
        self._target = context.target
        self._default._initialize_with_tune_context(context)  # pylint: disable=protected-access

    def generate_design_space(self, mod) -> list[Schedule]:
        func = symbolic_prim_func(mod)
        if func is None:
            return list(self._default.generate_design_space(mod))
        return [generic_schedule(func, self._target)]

    def clone(self) -> "MorelloSpace":
        return MorelloSpace()
