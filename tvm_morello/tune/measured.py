"""Which scheduled modules of a task were measured already: in this run, or in the database (resume)."""
from __future__ import annotations

import logging
from typing import NamedTuple

import tvm
import tvm_ffi
from tvm.s_tir import meta_schedule as ms

logger = logging.getLogger(__name__)

FAILED_RUN_SECONDS = 1e9
"""meta-schedule commits a failed build or run with run_secs = [1e10]; anything above this is a failure."""


def module_key(mod: tvm.IRModule) -> int:
    """Structural hash of a scheduled module: equal schedules get equal keys whatever trace made them."""
    return int(tvm_ffi.structural_hash(mod))


def median_seconds(result: ms.runner.RunnerResult) -> float | None:
    """The median run time of a successful measurement, None for a failed one."""
    if result.error_msg is not None or not result.run_secs:
        return None
    secs = sorted(float(s) for s in result.run_secs)
    median = secs[len(secs) // 2]
    return None if median >= FAILED_RUN_SECONDS else median


class Measurement(NamedTuple):
    """One measured candidate with its runner result and module key."""

    candidate: ms.search_strategy.MeasureCandidate
    result: ms.runner.RunnerResult
    key: int


def records_of(database: ms.database.Database | None, workload_mod: tvm.IRModule) -> list:
    """Every record ``database`` holds for ``workload_mod``, failed runs included (none if it never saw it)."""
    if database is None or not database.has_workload(workload_mod):
        return []
    workload = database.commit_workload(workload_mod)  # returns the stored workload, writes nothing new
    return [record for record in database.get_all_tuning_records() if record.workload.same_as(workload)]


def measurements_in_database(database: ms.database.Database | None, workload_mod: tvm.IRModule):
    """Replay every record of ``workload_mod`` in ``database`` and return them as Measurements.

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
        past.append(Measurement(candidate, result, module_key(candidate.sch.mod)))
    return past
