"""Which scheduled modules of a task were measured already: in this run, or in the database (resume)."""
from __future__ import annotations

import logging
from typing import NamedTuple

import tvm
from tvm.s_tir import meta_schedule as ms

from ..measure.records import module_key, records_of

logger = logging.getLogger(__name__)


class MeasuredCandidate(NamedTuple):
    """One measured candidate with its runner result and module key."""

    candidate: ms.search_strategy.MeasureCandidate
    result: ms.runner.RunnerResult
    key: int


def measurements_in_database(database: ms.database.Database | None, workload_mod: tvm.IRModule):
    """Replay every record of ``workload_mod`` in ``database`` and return them as MeasuredCandidates.

    Records whose trace no longer replays are skipped (logged), so a stale database never stops a tune.
    """
    past = []
    for record in records_of(database, workload_mod):
        try:
            candidate = record.as_measure_candidate()
        except Exception as err:  # a trace from another TVM version or schedule space
            logger.debug("skipping a database record whose trace does not replay: %s", err)
            continue
        result = ms.runner.RunnerResult(list(record.run_secs) if record.run_secs else None, None)
        past.append(MeasuredCandidate(candidate, result, module_key(candidate.sch.mod)))
    return past
