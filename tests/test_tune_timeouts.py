"""MorelloSearch and build timeouts: a timed-out candidate is proposed once more, and a tune whose first
builds all time out still ends with a successful record."""
import tvm_morello  # noqa: F401  (sets TVM_NUM_THREADS before tvm loads)

import inspect
from collections import Counter

import pytest
import tvm
from tvm.ir.utils import derived_object
from tvm.s_tir import meta_schedule as ms
from tvm.s_tir.meta_schedule.builder import BuilderInput, BuilderResult, PyBuilder, local_builder

import tvm_morello.codegen
import tvm_morello.tune.pool
from tvm_morello.spec import operators as ops
from tvm_morello.tune import FastBuilder, MorelloSearch, cpu_tensor_intrinsics_only, fast_builder
from tvm_morello.measure.records import FAILED_RUN_SECONDS, module_key
from tvm_morello.testing import strategy_context
from tvm_morello.tune.strategy import is_build_timeout

TARGET = tvm_morello.resolve_target(None).tvm_target()
LOCAL_BUILDER_TIMEOUT = "LocalBuilder: Timeout, killed after 30.0 seconds"  # its default timeout_sec
COMPILE_ERROR = "LocalBuilder: An exception occurred\nTVMError: something the compiler rejects"


def matmul():
    return ops.matmul(64, 64, 64).func


def timed_out():
    """A build killed by LocalBuilder's timeout, as the task scheduler hands it to the strategy."""
    return ms.runner.RunnerResult(None, LOCAL_BUILDER_TIMEOUT)


def succeeded():
    return ms.runner.RunnerResult([1e-3], None)


def drive(strategy, max_trials, per_iter, outcome):
    """Run the strategy without building; ``outcome(n)`` is the result of the n-th proposed candidate.

    Returns the batches, each a list of module keys, in the order proposed.
    """
    context = strategy_context(matmul(), strategy, TARGET)
    context.pre_tuning(max_trials, per_iter, design_spaces=[], database=ms.database.MemoryDatabase(), cost_model=None)
    batches = []
    while (candidates := context.generate_measure_candidates()) is not None:
        assert len(batches) < 50, "the strategy keeps proposing"
        proposed = sum(map(len, batches))
        context.notify_runner_results(candidates, [outcome(proposed + i) for i in range(len(candidates))])
        batches.append([module_key(c.sch.mod) for c in candidates])
    context.post_tuning()
    return batches


def assert_retried_at_most_once_at_batch_ends(batches):
    """No key is proposed more than twice; a second proposal is in a later batch, among retries at its end."""
    counts = Counter(key for batch in batches for key in batch)
    assert max(counts.values()) <= 2, "a candidate was proposed a third time"
    seen = set()
    for batch in batches:
        retries = [i for i, key in enumerate(batch) if key in seen]
        assert retries == list(range(len(batch) - len(retries), len(batch))), "retries must end their batch"
        seen.update(batch)


# ---- recognising a timeout -------------------------------------------------------------------------


def test_local_builder_timeout_text_is_the_one_matched():
    """Guards against TVM rewording it: the f-string in local_builder.py, formatted as its default."""
    assert 'f"LocalBuilder: Timeout, killed after {self.timeout_sec} seconds"' in inspect.getsource(local_builder)
    assert is_build_timeout(timed_out())


def test_fast_builder_timeout_is_matched():
    builder = FastBuilder(timeout_s=1e-3)
    try:
        (result,) = builder.build([BuilderInput(tvm.IRModule({"main": matmul()}), TARGET)])
    finally:
        builder.close()
    assert result.error_msg is not None and result.error_msg.startswith("FastBuilder: build timed out after")
    assert is_build_timeout(ms.runner.RunnerResult(None, result.error_msg))


@pytest.mark.parametrize(
    "error_msg",
    [None, COMPILE_ERROR, "FastBuilder: ValueError: bad schedule", "LocalRunner: Timeout, killed after 30 seconds"],
)
def test_other_results_are_not_build_timeouts(error_msg):
    run_secs = [1e-3] if error_msg is None else None
    assert not is_build_timeout(ms.runner.RunnerResult(run_secs, error_msg))


# ---- the strategy, driven directly -----------------------------------------------------------------


def test_timed_out_candidates_are_proposed_once_more_at_the_end_of_a_later_batch():
    def outcome(n):  # the first two builds time out, the third does not compile
        return timed_out() if n < 2 else ms.runner.RunnerResult(None, COMPILE_ERROR) if n == 2 else succeeded()

    batches = drive(MorelloSearch(top_k=16), max_trials=8, per_iter=4, outcome=outcome)
    first = batches[0]
    counts = Counter(key for batch in batches for key in batch)
    assert [counts[key] for key in first] == [2, 2, 1, 1], "timeouts retried once; the compile error never"
    assert batches[1][-2:] == first[:2], "the retries end the next batch"
    assert sum(map(len, batches)) == 8, "once a measurement succeeded, retries count against the budget"
    assert_retried_at_most_once_at_batch_ends(batches)


@pytest.mark.parametrize("max_trials, per_iter, n_timeouts", [(4, 4, 4), (4, 2, 8)])
def test_all_builds_timing_out_keeps_the_search_going_until_one_succeeds(max_trials, per_iter, n_timeouts):
    batches = drive(
        MorelloSearch(top_k=16), max_trials, per_iter, outcome=lambda n: timed_out() if n < n_timeouts else succeeded()
    )
    proposed = sum(map(len, batches))
    assert proposed > n_timeouts, "no candidate was proposed after the timeouts"
    assert proposed - len(batches[-1]) <= n_timeouts, "the strategy went on after a success"
    assert len(batches) >= 2 and len(batches[0]) < max_trials, "the first batch must leave a trial for later"
    assert_retried_at_most_once_at_batch_ends(batches)


def test_when_every_build_times_out_each_candidate_is_proposed_twice_then_the_search_stops(monkeypatch):
    real = tvm_morello.codegen.candidate_schedules

    def capped(f, target=None, top_k=8, constants=None):
        """A DP that knows only its first 5 programs, whatever the constants."""
        return real(f, target=target, top_k=min(top_k, 5), constants=constants)

    monkeypatch.setattr(tvm_morello.tune.pool, "candidate_schedules", capped)
    batches = drive(MorelloSearch(top_k=5), max_trials=2, per_iter=2, outcome=lambda n: timed_out())
    counts = Counter(key for batch in batches for key in batch)
    assert len(counts) == 5 and set(counts.values()) == {2}
    assert_retried_at_most_once_at_batch_ends(batches)


# ---- inside ms.tune_tir ----------------------------------------------------------------------------


@derived_object
class TimeOutFirstBuilds(PyBuilder):
    """The fast builder, except that its first ``count`` inputs 'time out' the way LocalBuilder reports it."""

    def __init__(self, count):
        self.inner = fast_builder()
        self.remaining = count

    def build(self, build_inputs):
        n = min(self.remaining, len(build_inputs))
        self.remaining -= n
        built = list(self.inner.build(list(build_inputs)[n:])) if len(build_inputs) > n else []
        return [BuilderResult(None, LOCAL_BUILDER_TIMEOUT) for _ in range(n)] + built


def test_tune_tir_whose_first_builds_all_time_out_still_compiles(tmp_path):
    func = matmul()
    builder = TimeOutFirstBuilds(count=4)
    try:
        with cpu_tensor_intrinsics_only():
            database = ms.tune_tir(
                func,
                TARGET,
                str(tmp_path),
                max_trials_global=4,
                num_trials_per_iter=4,
                builder=builder,
                strategy=MorelloSearch(),
                num_tuning_cores=1,
                seed=0,
            )
    finally:
        builder.inner.close()
    assert builder.remaining == 0, "fewer than 4 builds were asked for"
    records = database.get_all_tuning_records()
    assert any(r.run_secs and min(float(s) for s in r.run_secs) < FAILED_RUN_SECONDS for r in records)
    assert ms.tir_integration.compile_tir(database, func, TARGET) is not None
