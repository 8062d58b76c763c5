"""Helpers shared by the test suite: workloads, tuning and correctness checks, database reading, misbehaving builds."""
from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import time
from collections.abc import Callable, Iterator

import numpy as np
import tvm
from tvm import te
from tvm.s_tir import meta_schedule as ms
from tvm.s_tir.meta_schedule.tune_context import _normalize_mod

import tvm_morello
from .codegen import candidate_schedules
from .example_models import bert_encoder_onnx  # noqa: F401  (the tests' and the tutorial's import)
from .measure.records import FAILED_RUN_SECONDS, module_key, records_of
from .spec import operators as ops
from .tune import MorelloSearch, build_module, cpu_tensor_intrinsics_only, fast_builder

# --------------------------------------------------------------------------------------------------
# Targets


NAMED_TARGETS = {  # CPUs the search tests run on whatever the host is: one per vector ISA
    "avx2-znver3": tvm_morello.target.cpu_model("znver3", cores=2),
    "avx512-znver4": tvm_morello.target.cpu_model("znver4", cores=2),
}


def host_target() -> tvm_morello.CpuTarget:
    """The host CPU, for tests that build and run code."""
    return tvm_morello.resolve_target(None)


def host_tvm_target() -> tvm.target.Target:
    """The host CPU as a TVM target."""
    return host_target().tvm_target()


def strategy_context(func, strategy, target=None) -> ms.TuneContext:
    """A single-threaded, seeded TuneContext for driving ``strategy`` on ``func`` without tune_tir."""
    with cpu_tensor_intrinsics_only():
        return ms.TuneContext(
            mod=func,
            target=target or host_tvm_target(),
            space_generator="post-order-apply",
            search_strategy=strategy,
            task_name="main",
            num_threads=1,
            rand_state=0,
        )


# --------------------------------------------------------------------------------------------------
# Workloads


def matmul(n: int = 64, k: int = 64, m: int = 64) -> tvm.tirx.PrimFunc:
    """C[n, m] = A[n, k] @ B[k, m], fp32: a task the DP expresses."""
    return ops.matmul(n, k, m).func


def relu(n: int = 64, m: int = 64) -> tvm.tirx.PrimFunc:
    """An elementwise task the DP cannot express."""
    a = te.placeholder((n, m), name="A")
    b = te.compute((n, m), lambda i, j: te.max(a[i, j], tvm.tirx.const(0.0, "float32")), name="B")
    return te.create_prim_func([a, b])


def symbolic_dense(index_dtype: str = "int64") -> tvm.tirx.PrimFunc:
    """Y[m, 96] = X[m, 64] @ W[96, 64]^T with a symbolic ``m``, all indices of ``index_dtype``."""

    def i(v):
        return tvm.tirx.IntImm(index_dtype, v)

    m = te.var("m", index_dtype)
    x = te.placeholder((m, i(64)), name="X")
    w = te.placeholder((i(96), i(64)), name="W")
    k = te.reduce_axis((i(0), i(64)), "k")
    y = te.compute((m, i(96)), lambda a, b: te.sum(x[a, k] * w[b, k], axis=k), name="Y")
    return te.create_prim_func([x, w, y]).with_attr("global_symbol", "main")


# --------------------------------------------------------------------------------------------------
# Tuning and checks


def tune_with_morello(func, work_dir, max_trials: int, per_iter: int) -> ms.database.Database:
    """A plain ms.tune_tir with MorelloSearch and the fast builder, single-core and seeded."""
    with cpu_tensor_intrinsics_only():  # only to save ~15 s of test time
        return ms.tune_tir(
            func,
            host_tvm_target(),
            str(work_dir),
            max_trials_global=max_trials,
            num_trials_per_iter=per_iter,
            builder=fast_builder(),
            strategy=MorelloSearch(),
            num_tuning_cores=1,
            seed=0,
        )


def run_schedule(sch, *inputs: np.ndarray, out_shape) -> np.ndarray:
    """Compile a schedule's module for the host and run it on numpy inputs; returns the output array."""
    lib = tvm.compile(sch.mod, host_tvm_target())
    dev = tvm.cpu()
    args = [tvm.runtime.tensor(x, dev) for x in inputs]
    out = tvm.runtime.tensor(np.zeros(out_shape, "float32"), dev)
    lib["main"](*args, out)
    return out.numpy()


def assert_best_matmul_correct(database, func, n: int = 64, k: int = 64, m: int = 64) -> None:
    """The schedule compile_tir picks from the database computes A @ B."""
    sch = ms.tir_integration.compile_tir(database, func, host_tvm_target())
    assert sch is not None, "no usable record in the database"
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, k), dtype="float32")
    b = rng.standard_normal((k, m), dtype="float32")
    np.testing.assert_allclose(run_schedule(sch, a, b, out_shape=(n, m)), a @ b, rtol=1e-4, atol=1e-4)


def dp_keys(func, top_k: int) -> list[int]:
    """Module keys of the core DP's top programs for ``func`` on the host, in its order."""
    mod = _normalize_mod(func)
    return [module_key(c.schedule.mod) for c in candidate_schedules(mod["main"], target=host_tvm_target(), top_k=top_k)]


# --------------------------------------------------------------------------------------------------
# Database reading


def task_records(database, func) -> list:
    """All records of ``func``'s workload, in no particular order."""
    return records_of(database, _normalize_mod(func))


def record_key(record) -> int:
    """The structural hash of the module a record's trace builds."""
    return module_key(record.as_measure_candidate().sch.mod)


def record_failed(record) -> bool:
    """Whether a record is a failed build or run (no run time, or meta-schedule's failure marker)."""
    return not record.run_secs or min(float(s) for s in record.run_secs) >= FAILED_RUN_SECONDS


# --------------------------------------------------------------------------------------------------
# Log capture


class _CollectRecords(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)


@contextlib.contextmanager
def collect_handoff_log() -> Iterator[Callable[[], list[logging.LogRecord]]]:
    """Yields a function returning the records of tvm_morello.tune that say a task went to EvolutionarySearch."""
    handler = _CollectRecords()
    logger = logging.getLogger("tvm_morello.tune")
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield lambda: [r for r in handler.records if "EvolutionarySearch" in r.getMessage()]
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


# --------------------------------------------------------------------------------------------------
# Build functions that misbehave on request, for the FastBuilder tests (its worker imports this module).
# A candidate asks for misbehaviour through an attribute of its ``main`` PrimFunc (see ``misbehave``).

SLEEP = "tvm_morello_test_sleep_s"  # sleep this long (releases the GIL), then build
HOLD_GIL = "tvm_morello_test_hold_gil_s"  # block this long in a native call that keeps the GIL
EXIT = "tvm_morello_test_exit_code"  # the worker process exits with this code, as if LLVM crashed
HANG_S = 3600  # a misbehaving build's sleep: far beyond any build timeout, it is killed anyway


def misbehave(mod: tvm.IRModule, attr: str, value: int) -> tvm.IRModule:
    """``mod`` with its main function asking ``misbehaving_build`` for ``attr``."""
    return type(mod)({"main": mod["main"].with_attr(attr, value)})


def misbehaving_build(mod, target, params=None):
    """``build_module``, after the misbehaviour ``mod`` asks for (see ``misbehave``)."""
    attrs = mod["main"].attrs
    if attrs is not None and SLEEP in attrs:
        time.sleep(int(attrs[SLEEP]))
    if attrs is not None and HOLD_GIL in attrs:
        ctypes.PyDLL(None).sleep(int(attrs[HOLD_GIL]))  # PyDLL: the GIL stays held, the worker's timer is stuck
    if attrs is not None and EXIT in attrs:
        os._exit(int(attrs[EXIT]))
    return build_module(mod, target, params)


# --------------------------------------------------------------------------------------------------
# Models


def fused_for_tuning(mod: tvm.IRModule) -> tvm.IRModule:
    """The TIR tasks ``compile_relax`` will look up: ``mod`` legalized and fused as its pipeline does (what a
    ``tune_relax`` caller passes)."""
    from tvm import relax

    passes = [relax.transform.LegalizeOps(), relax.transform.AnnotateTIROpPattern(), relax.transform.FoldConstant(),
              relax.transform.FuseOps(), relax.transform.FuseTIR()]
    return tvm.transform.Sequential(passes)(mod)
