"""Helpers shared by the tests of tvm_morello.tune (no tests here): workloads, checks, database reading."""
import logging

import tvm_morello  # noqa: F401  (sets TVM_NUM_THREADS before tvm loads)

import numpy as np
import pytest
import tvm
from tvm import te
from tvm.s_tir import meta_schedule as ms
from tvm.s_tir.meta_schedule.tune_context import _normalize_mod

from tvm_morello import ops
from tvm_morello.target import resolve_target
from tvm_morello.tune import MorelloSearch, cpu_tensor_intrinsics_only, fast_builder
from tvm_morello.tune.measured import FAILED_RUN_SECONDS, module_key

TARGET = resolve_target(None).tvm_target()


def matmul(n=64, k=64, m=64):
    """C[n, m] = A[n, k] @ B[k, m], fp32: a task the DP expresses."""
    return ops.matmul(n, k, m).func


def tune_with_morello(func, work_dir, max_trials, per_iter):
    """A plain ms.tune_tir with MorelloSearch and the fast builder, single-core and seeded."""
    with cpu_tensor_intrinsics_only():  # only to save ~15 s of test time
        return ms.tune_tir(
            func,
            TARGET,
            str(work_dir),
            max_trials_global=max_trials,
            num_trials_per_iter=per_iter,
            builder=fast_builder(),
            strategy=MorelloSearch(),
            num_tuning_cores=1,
            seed=0,
        )


def relu(n=64, m=64):
    """An elementwise task the DP cannot express."""
    a = te.placeholder((n, m), name="A")
    b = te.compute((n, m), lambda i, j: te.max(a[i, j], tvm.tirx.const(0.0, "float32")), name="B")
    return te.create_prim_func([a, b])


def run_schedule(sch, *inputs, out_shape):
    """Compile a schedule's module and run it on numpy inputs; returns the output array."""
    lib = tvm.compile(sch.mod, TARGET)
    dev = tvm.cpu()
    args = [tvm.runtime.tensor(x, dev) for x in inputs]
    out = tvm.runtime.tensor(np.zeros(out_shape, "float32"), dev)
    lib["main"](*args, out)
    return out.numpy()


def assert_best_matmul_correct(database, func, n=64, k=64, m=64):
    """The schedule compile_tir picks from the database computes A @ B."""
    sch = ms.tir_integration.compile_tir(database, func, TARGET)
    assert sch is not None, "no usable record in the database"
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, k), dtype="float32")
    b = rng.standard_normal((k, m), dtype="float32")
    np.testing.assert_allclose(run_schedule(sch, a, b, out_shape=(n, m)), a @ b, rtol=1e-4, atol=1e-4)


def task_records(database, func):
    """All records of ``func``'s workload, in no particular order."""
    mod = _normalize_mod(func)
    if not database.has_workload(mod):
        return []
    workload = database.commit_workload(mod)
    return [r for r in database.get_all_tuning_records() if r.workload.same_as(workload)]


def record_key(record):
    """The structural hash of the module a record's trace builds."""
    return module_key(record.as_measure_candidate().sch.mod)


def record_failed(record):
    return not record.run_secs or min(float(s) for s in record.run_secs) >= FAILED_RUN_SECONDS


def dp_keys(func, top_k):
    """Module keys of the core DP's top programs for ``func``, in its order."""
    from tvm_morello.lower import candidate_schedules

    mod = _normalize_mod(func)
    return [module_key(c.schedule.mod) for c in candidate_schedules(mod["main"], target=TARGET, top_k=top_k)]


class _CollectRecords(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records = []

    def emit(self, record):
        self.records.append(record)


@pytest.fixture
def handoff_log():
    """Records of tvm_morello.tune saying a task went to EvolutionarySearch."""
    handler = _CollectRecords()
    logger = logging.getLogger("tvm_morello.tune")
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.DEBUG)
    yield lambda: [r for r in handler.records if "EvolutionarySearch" in r.getMessage()]
    logger.removeHandler(handler)
    logger.setLevel(old_level)
