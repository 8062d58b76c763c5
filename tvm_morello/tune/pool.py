"""The core DP's ranked candidate programs for one task, deduplicated by scheduled module."""
from __future__ import annotations

import logging

import tvm

from ..codegen import candidate_schedules
from ..measure.records import module_key

logger = logging.getLogger(__name__)


class CandidatePool:
    """Every distinct candidate the DP has offered for a task, plus its latest ranking.

    Parameters
    ----------
    workload_mod : the task's IRModule (``context.mod``); candidates are scheduled on its ``main`` so their
        traces replay onto the database workload.
    target : the tuning target, handed to the core as is.
    top_k : how many ranked programs to ask the DP for at first; ``grow`` doubles it.
    """

    def __init__(self, workload_mod: tvm.IRModule, target, top_k: int) -> None:
        self.workload_mod = workload_mod
        self.target = target
        self.top_k = top_k
        self.constants = None
        self.ranking: list[int] = []
        self._candidates: dict = {}

    def __len__(self) -> int:
        return len(self._candidates)

    def __contains__(self, key: int) -> bool:
        return key in self._candidates

    def __getitem__(self, key: int):
        return self._candidates[key]

    def keys(self) -> list[int]:
        return list(self._candidates)

    def rerank(self, constants=None) -> None:
        """Ask the DP for its top programs under ``constants`` (None: the core's defaults).

        Raises UnsupportedOperatorError (from the core) when the task is not a spec the DP can express.
        """
        self.constants = constants
        ranked = candidate_schedules(
            self.workload_mod["main"], target=self.target, top_k=self.top_k, constants=constants
        )
        self.ranking = []
        for candidate in ranked:
            key = module_key(candidate.schedule.mod)
            if key not in self._candidates:
                if not self._replays_onto_workload(candidate.schedule, key):
                    continue
                self._candidates[key] = candidate
            if key not in self.ranking:
                self.ranking.append(key)

    def grow(self) -> bool:
        """Ask for twice as many programs; False when that brought no new candidate."""
        before = len(self._candidates)
        self.top_k *= 2
        self.rerank(self.constants)
        return len(self._candidates) > before

    def _replays_onto_workload(self, schedule, key: int) -> bool:
        """The database stores traces: a candidate is only useful if its trace rebuilds the same module."""
        try:
            replayed = tvm.s_tir.Schedule(self.workload_mod)
            schedule.trace.apply_to_schedule(replayed, remove_postproc=False)
            ok = module_key(replayed.mod) == key
        except Exception as err:  # noqa: BLE001 - any replay failure disqualifies the candidate
            logger.warning("dropping a DP candidate whose trace does not replay: %s", err)
            return False
        if not ok:
            logger.warning("dropping a DP candidate whose trace replays to a different module")
        return ok
