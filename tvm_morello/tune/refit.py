"""Cost constants of the DP's model, refit on the measured run times of the task's DP programs, and those
measurements added to the stored calibration of the target's CPU when the task ends."""
from __future__ import annotations

import logging

from ..cost import fit_constants
from ..cost.store import Sample, refit
from ..errors import MorelloError
from ..target import resolve_target

logger = logging.getLogger(__name__)


class ConstantsRefit:
    """Collects (program, seconds) pairs and fits the core's CostConstants to them.

    Parameters
    ----------
    target : the tuning target (anything ``resolve_target`` accepts); its constants are the fit's prior.
    min_points : measurements needed before a fit is attempted.
    """

    def __init__(self, target, min_points: int = 3) -> None:
        self.target = resolve_target(target)
        self.min_points = min_points
        self.programs: list = []
        self.seconds: list[float] = []
        self._fitted_on = 0
        self._constants = None

    def add(self, program, seconds: float) -> None:
        self.programs.append(program)
        self.seconds.append(seconds)

    def constants(self):
        """The latest fit, refit when new points arrived; None until one succeeded."""
        if len(self.seconds) < self.min_points or len(self.seconds) == self._fitted_on:
            return self._constants
        self._fitted_on = len(self.seconds)
        try:
            self._constants = fit_constants(list(self.programs), list(self.seconds), self.target)
        except (MorelloError, ValueError, ArithmeticError) as err:  # too few or degenerate points
            logger.info("keeping the previous cost constants; refit on %d points failed: %s", self._fitted_on, err)
        except Exception:  # noqa: BLE001 - a broken refit must not stop the search, only weaken it
            logger.exception("keeping the previous cost constants; refit on %d points raised", self._fitted_on)
        return self._constants

    def store(self, source: str = "MorelloSearch") -> None:
        """Add the measurements to the stored calibration of the target's CPU and refit it (the next process
        uses it); nothing is stored below ``min_points``, and a failure only costs the refit. The samples are
        grouped under each program's root spec."""
        if len(self.seconds) < self.min_points:
            return
        try:
            samples = [Sample.of(str(p.spec), p, s, self.target, source) for p, s in zip(self.programs, self.seconds)]
            refit(self.target.identity, self.target.isa, samples, source)
        except Exception:  # noqa: BLE001 - the tune's results stand without it
            logger.exception("could not add %d measurements to the calibration of %s", len(self.seconds),
                             self.target.identity)
