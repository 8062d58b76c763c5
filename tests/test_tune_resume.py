"""Reliability: a tune killed with SIGKILL resumes from its work_dir; a failing candidate is recorded and skipped."""
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import tvm_morello  # noqa: F401  (sets TVM_NUM_THREADS before tvm loads)

from tvm.ir.utils import derived_object
from tvm.s_tir import meta_schedule as ms
from tvm.s_tir.meta_schedule.builder import BuilderResult, PyBuilder

from tvm_morello.testing import (
    assert_best_matmul_correct,
    host_tvm_target,
    matmul,
    record_failed,
    record_key,
    task_records,
)
from tvm_morello.tune import fast_builder, repair_work_dir, tune
from tvm_morello.measure.records import module_key

TARGET = host_tvm_target()

REPO = Path(__file__).resolve().parents[1]
RECORDS = "database_tuning_record.json"

TUNE_SCRIPT = textwrap.dedent(
    """
    import sys
    import tvm_morello
    from tvm import te
    from tvm_morello.tune import tune

    a = te.placeholder((64, 64), name="A")
    b = te.placeholder((64, 64), name="B")
    r = te.reduce_axis((0, 64), name="k")
    c = te.compute((64, 64), lambda i, j: te.sum(a[i, r] * b[r, j], axis=r), name="C")
    tune(te.create_prim_func([a, b, c]), None, sys.argv[1], max_trials=64, num_trials_per_iter=2, num_tuning_cores=1)
    """
)


def _complete_lines(path):
    return path.read_bytes().count(b"\n") if path.exists() else 0


def _wait_for_records(proc, records, count, output):
    """Poll until ``records`` holds ``count`` complete lines; fail with the tune's output if it exits first.

    No time limit of our own: however slow the machine, the tune either commits records or exits.
    """
    while _complete_lines(records) < count:
        if proc.poll() is not None and _complete_lines(records) < count:
            raise AssertionError(
                f"the tune to be killed exited with {proc.returncode} after committing "
                f"{_complete_lines(records)} of {count} records:\n{output.read_text()[-3000:]}"
            )
        time.sleep(0.1)


def test_repair_drops_a_half_written_record_and_keeps_complete_ones(tmp_path):
    (tmp_path / RECORDS).write_bytes(b'[0, ["a"]]\n[1, ["b"]]\n[2, ["c", {"x": ')
    (tmp_path / "database_workload.json").write_bytes(b'["hash", "mod"]')  # complete, only the newline lost
    assert repair_work_dir(tmp_path) == 1
    assert (tmp_path / RECORDS).read_bytes() == b'[0, ["a"]]\n[1, ["b"]]\n'
    assert (tmp_path / "database_workload.json").read_bytes() == b'["hash", "mod"]\n'
    assert repair_work_dir(tmp_path) == 0


def test_tune_killed_with_sigkill_resumes_without_measuring_again(tmp_path):
    work_dir = tmp_path / "work"
    output = tmp_path / "tune.log"
    with output.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-c", TUNE_SCRIPT, str(work_dir)], cwd=REPO, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        _wait_for_records(proc, work_dir / RECORDS, 4, output)
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait() == -signal.SIGKILL, f"the tune finished before it was killed:\n{output.read_text()[-3000:]}"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    func = matmul()
    repair_work_dir(work_dir)
    before = {record_key(r) for r in task_records(ms.database.JSONDatabase(work_dir=str(work_dir)), func)}
    assert len(before) >= 4
    database = tune(func, TARGET, str(work_dir), max_trials=4, num_trials_per_iter=4, num_tuning_cores=1)
    after = [record_key(r) for r in task_records(database, func)]
    assert before <= set(after), "records committed before the kill were lost"
    assert len(after) == len(set(after)) == len(before) + 4, "a recorded candidate was measured again"
    assert_best_matmul_correct(database, func)


@derived_object
class FailOneCandidate(PyBuilder):
    """Builds like the fast builder, except that the second candidate of the first batch fails."""

    def __init__(self):
        self.inner = fast_builder()
        self.failed_key = None

    def build(self, build_inputs):
        results = list(self.inner.build(build_inputs))
        if self.failed_key is None and len(build_inputs) > 1:
            self.failed_key = module_key(build_inputs[1].mod)
            results[1] = BuilderResult(None, "deliberately failed by the test")
        return results


def test_failed_candidate_is_recorded_as_failed_and_the_tune_goes_on(tmp_path):
    builder = FailOneCandidate()
    func = matmul()
    database = tune(
        func, TARGET, str(tmp_path), max_trials=6, num_trials_per_iter=3, builder=builder, num_tuning_cores=1
    )
    records = task_records(database, func)
    keys = [record_key(r) for r in records]
    failed = [record_key(r) for r in records if record_failed(r)]
    assert len(records) == 6, "the tune stopped after the failure"
    assert failed == [builder.failed_key]
    assert len(set(keys)) == 6, "the failed candidate was measured again"
    assert_best_matmul_correct(database, func)
