"""MorelloSearch inside ms.tune_tir: DP candidates first, no re-measurement, calibration and learned ranking."""
import tvm_morello  # noqa: F401  (sets TVM_NUM_THREADS before tvm loads)

import pytest
from tvm.s_tir import meta_schedule as ms
from tvm.s_tir.meta_schedule.tune_context import _normalize_mod

import tvm_morello.tune.refit
import tvm_morello.codegen
import tvm_morello.tune.pool
from tvm_morello.testing import (
    assert_best_matmul_correct,
    dp_keys,
    host_tvm_target,
    matmul,
    record_failed,
    record_key,
    strategy_context,
    task_records,
    tune_with_morello,
)
from tvm_morello.tune import MorelloSearch
from tvm_morello.tune.learned import LearnedRanker
from tvm_morello.measure.records import module_key

TARGET = host_tvm_target()


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    """One 8-trial tune of a 64^3 matmul, shared by the tests that only read its database."""
    work_dir = tmp_path_factory.mktemp("strategy")
    func = matmul()
    return func, work_dir, tune_with_morello(func, work_dir, max_trials=8, per_iter=4)


def test_tune_tir_measures_distinct_dp_candidates_and_compiles(tuned):
    func, _, database = tuned
    records = task_records(database, func)
    keys = [record_key(r) for r in records]
    assert len(records) == 8
    assert len(set(keys)) == 8, "a candidate was measured twice"
    assert not any(record_failed(r) for r in records)
    assert set(dp_keys(func, top_k=4)) <= set(keys), "the first batch must be the DP's top programs"
    assert_best_matmul_correct(database, func)


def test_second_tune_in_same_work_dir_measures_only_new_candidates(tuned):
    func, work_dir, database = tuned
    before = {record_key(r) for r in task_records(database, func)}
    again = tune_with_morello(func, work_dir, max_trials=4, per_iter=4)
    after = [record_key(r) for r in task_records(again, func)]
    assert len(after) == len(before) + 4
    assert len(set(after)) == len(after), "a candidate recorded by the first tune was measured again"
    assert before <= set(after)
    assert_best_matmul_correct(again, func)


def _context(func, strategy):
    return strategy_context(func, strategy, TARGET)


def _drive(context, max_trials, per_iter, seconds_of):
    """Run the strategy without building: every candidate 'runs' in seconds_of(candidate) seconds."""
    database = ms.database.MemoryDatabase()
    context.pre_tuning(max_trials, per_iter, design_spaces=[], database=database, cost_model=None)
    measured = []
    while (candidates := context.generate_measure_candidates()) is not None:
        results = [ms.runner.RunnerResult([seconds_of(c)], None) for c in candidates]
        context.notify_runner_results(candidates, results)
        measured += [module_key(c.sch.mod) for c in candidates]
    context.post_tuning()
    return measured


def test_stops_with_none_when_every_dp_candidate_was_measured(monkeypatch):
    real = tvm_morello.codegen.candidate_schedules

    def capped(f, target=None, top_k=8, constants=None):
        """A DP that knows only its first 5 programs, whatever the constants."""
        return real(f, target=target, top_k=min(top_k, 5))

    monkeypatch.setattr(tvm_morello.tune.pool, "candidate_schedules", capped)
    func = matmul()
    measured = _drive(_context(func, MorelloSearch(top_k=2)), max_trials=1000, per_iter=2, seconds_of=lambda c: 1e-3)
    reachable = set(dp_keys(func, top_k=5))
    assert len(measured) == len(set(measured)) == len(reachable)
    assert set(measured) == reachable


def test_later_batches_use_refit_constants_and_the_learned_model(monkeypatch):
    calls = {"fit": 0, "constants": 0, "rank": 0}
    real_dp, real_fit = tvm_morello.codegen.candidate_schedules, tvm_morello.tune.refit.fit_constants
    real_rank = LearnedRanker.rank

    def dp(f, target=None, top_k=8, constants=None):
        calls["constants"] += constants is not None
        return real_dp(f, target=target, top_k=top_k, constants=constants)

    def fit(programs, seconds, target):
        calls["fit"] += 1
        return real_fit(programs, seconds, target)

    def rank(self, context, candidates):
        calls["rank"] += 1
        return real_rank(self, context, candidates)

    monkeypatch.setattr(tvm_morello.tune.pool, "candidate_schedules", dp)
    monkeypatch.setattr(tvm_morello.tune.refit, "fit_constants", fit)
    monkeypatch.setattr(LearnedRanker, "rank", rank)
    func = matmul()
    mod = _normalize_mod(func)
    costs = {module_key(c.schedule.mod): c.program.cost for c in real_dp(mod["main"], target=TARGET, top_k=64)}
    strategy = MorelloSearch(top_k=32, min_learned_successes=4)
    def modelled_seconds(candidate):
        return 1e-9 * costs.get(module_key(candidate.sch.mod), 1e6)

    measured = _drive(_context(func, strategy), max_trials=16, per_iter=4, seconds_of=modelled_seconds)
    assert len(measured) == len(set(measured)) == 16
    assert calls["fit"] >= 1 and calls["constants"] >= 1, "later batches must re-rank with refit constants"
    assert calls["rank"] >= 1, "later batches must use the learned model"


def test_clone_is_a_fresh_strategy_with_the_same_settings(monkeypatch):
    requested = []
    real = tvm_morello.codegen.candidate_schedules

    def dp(f, target=None, top_k=8, constants=None):
        requested.append(top_k)
        return real(f, target=target, top_k=top_k, constants=constants)

    monkeypatch.setattr(tvm_morello.tune.pool, "candidate_schedules", dp)
    strategy = MorelloSearch(top_k=3)
    clone = strategy.clone()  # what tune_tir runs: the C++ handle of a new MorelloSearch
    assert isinstance(clone, ms.search_strategy.SearchStrategy)
    assert not clone.same_as(strategy)
    measured = _drive(_context(matmul(), clone), max_trials=3, per_iter=3, seconds_of=lambda c: 1e-3)
    assert requested[0] == 3
    assert len(measured) == 3


def test_a_tune_adds_its_measurements_to_the_stored_calibration_of_its_cpu(host):
    from tvm_morello.cost.store import load_fit

    assert load_fit(host.identity) is None  # each test has a calibration directory of its own
    seconds = lambda c: 1e-3 * (1 + module_key(c.sch.mod) % 7)  # noqa: E731
    measured = _drive(_context(matmul(), MorelloSearch(top_k=4)), max_trials=6, per_iter=3, seconds_of=seconds)
    fit = load_fit(host.identity)
    assert fit is not None and fit.sources == ("MorelloSearch",)
    assert 1 <= len(fit.samples) <= len(measured) and all(s.source == "MorelloSearch" for s in fit.samples)
