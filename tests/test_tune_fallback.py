"""Tasks MorelloSearch cannot take are tuned by EvolutionarySearch, logged once, and never fail the tune."""
import logging

import tvm_morello  # noqa: F401  (sets TVM_NUM_THREADS before tvm loads)

import numpy as np
from tvm.s_tir import meta_schedule as ms

import tvm_morello.codegen
import tvm_morello.tune.pool
from tvm_morello.testing import (
    assert_best_matmul_correct,
    host_tvm_target,
    matmul,
    record_failed,
    relu,
    run_schedule,
    task_records,
    tune_with_morello,
)

TARGET = host_tvm_target()


def test_unsupported_task_is_tuned_by_evolutionary_search_and_logged_once(tmp_path, handoff_log):
    func = relu()
    database = tune_with_morello(func, tmp_path, max_trials=4, per_iter=2)
    records = task_records(database, func)
    assert 1 <= len(records) <= 4
    assert not all(record_failed(r) for r in records)
    (message,) = handoff_log()
    assert message.levelno == logging.INFO and "cannot express" in message.getMessage()
    sch = ms.tir_integration.compile_tir(database, func, TARGET)
    x = np.random.default_rng(0).standard_normal((64, 64), dtype="float32")
    np.testing.assert_allclose(run_schedule(sch, x, out_shape=(64, 64)), np.maximum(x, 0))


def test_unexpected_core_error_falls_back_instead_of_failing(tmp_path, handoff_log, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("simulated bug in the core")

    monkeypatch.setattr(tvm_morello.tune.pool, "candidate_schedules", broken)
    func = matmul()
    database = tune_with_morello(func, tmp_path, max_trials=4, per_iter=2)
    assert task_records(database, func), "the fallback measured nothing"
    (message,) = handoff_log()
    assert message.levelno == logging.WARNING and "simulated bug" in message.getMessage()
    assert_best_matmul_correct(database, func)
