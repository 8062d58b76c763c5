"""Reading meta-schedule records: a scheduled module's key, a run's median time, a workload's records."""
from __future__ import annotations

import tvm
import tvm_ffi
from tvm.s_tir import meta_schedule as ms

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


def records_of(database: ms.database.Database | None, workload_mod: tvm.IRModule) -> list:
    """Every record ``database`` holds for ``workload_mod``, failed runs included (none if it never saw it)."""
    if database is None or not database.has_workload(workload_mod):
        return []
    workload = database.commit_workload(workload_mod)  # returns the stored workload, writes nothing new
    return [record for record in database.get_all_tuning_records() if record.workload.same_as(workload)]


def shapes_of(args_info) -> tuple[tuple[int, ...], ...]:
    """The concrete argument shapes of a record's or a candidate's ``args_info``."""
    return tuple(tuple(int(d) for d in info.shape) for info in args_info)
