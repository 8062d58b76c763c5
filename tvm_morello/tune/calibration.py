"""Cost constants of the DP's model, refit on the measured run times of the task's DP programs."""
from __future__ import annotations

import logging

from ..errors import MorelloError

logger = logging.getLogger(__name__)


class Calibration:
    """Collects (program, seconds) pairs and fits the core's CostConstants to them.

    Parameters
    ----------
    target : the tuning target, handed to ``fit_constants``.
    min_points : measurements needed before a fit is attempted.
    """

    def __init__(self, target, min_points: int = 3) -> None:
        self.target = target
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
            from ..cost import fit_constants

            self._constants = fit_constants(list(self.programs), list(self.seconds), self.target)
        except (MorelloError, ValueError, ArithmeticError) as err:  # too few or degenerate points
            logger.info("keeping the previous cost constants; refit on %d points failed: %s", self._fitted_on, err)
        except Exception:  # noqa: BLE001 - a broken refit must not stop the search, only weaken it
            logger.exception("keeping the previous cost constants; refit on %d points raised", self._fitted_on)
        return self._constants
