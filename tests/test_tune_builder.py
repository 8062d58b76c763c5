"""The fast builder (builds that load and compute the right thing; failures, timeouts and crashes as results;
one persistent worker) and CPU-only intrinsics."""
import os
import subprocess
import sys
from pathlib import Path

import tvm_morello  # noqa: F401  (sets TVM_NUM_THREADS before tvm loads)

import numpy as np
import pytest
import tvm
from tvm.s_tir.meta_schedule.builder import BuilderInput, LocalBuilder

from tvm_morello import testing
from tvm_morello.testing import matmul
from tvm_morello.tune import FastBuilder, build_module, export_module, fast_builder

TARGET = testing.host_tvm_target()
TIMEOUT_S = 10  # many times what a 16x16 matmul takes to build on a loaded machine; the hanging builds sleep 3600 s
SMALL = 16  # the builds that must succeed next to a hanging one are tiny, so the timeout never catches them


def _tiled(func):
    sch = tvm.s_tir.Schedule(func)
    i, j, k = sch.get_loops(sch.get_sblock("C"))
    io, ii = sch.split(i, [None, 4])
    jo, ji = sch.split(j, [None, 16])
    sch.reorder(io, jo, k, ii, ji)
    sch.vectorize(ji)
    sch.parallel(io)
    return sch.mod


def _thread_bound(func):
    """A GPU-style binding the LLVM backend cannot compile."""
    sch = tvm.s_tir.Schedule(func)
    i, _, _ = sch.get_loops(sch.get_sblock("C"))
    sch.bind(i, "threadIdx.x")
    return sch.mod


def _run_matmul(artifact_path, n=64):
    """Load a built n x n x n matmul and check it against numpy."""
    lib = tvm.runtime.load_module(artifact_path)
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype="float32")
    b = rng.standard_normal((n, n), dtype="float32")
    dev = tvm.cpu()
    c = tvm.runtime.tensor(np.zeros((n, n), "float32"), dev)
    lib["main"](tvm.runtime.tensor(a, dev), tvm.runtime.tensor(b, dev), c)
    np.testing.assert_allclose(c.numpy(), a @ b, rtol=1e-4, atol=1e-4)


def test_fast_builder_output_loads_and_matches_numpy():
    (result,) = fast_builder().build([BuilderInput(_tiled(matmul()), TARGET)])
    assert result.error_msg is None
    assert result.artifact_path.endswith(".so") and os.path.exists(result.artifact_path)
    _run_matmul(result.artifact_path)


def test_failed_build_is_a_result_and_the_batch_goes_on():
    func = matmul()
    results = fast_builder().build(
        [BuilderInput(_thread_bound(func), TARGET), BuilderInput(_tiled(func), TARGET)]
    )
    assert len(results) == 2
    assert results[0].artifact_path is None
    assert "FastBuilder" in results[0].error_msg
    assert results[1].error_msg is None
    _run_matmul(results[1].artifact_path)


def _inputs(*mods):
    return [BuilderInput(mod, TARGET) for mod in mods]


def _worker_process(builder):
    """The subprocess.Popen of the builder's (only) worker; white-box."""
    return builder._pool.workers[0]._proc


def test_build_over_the_timeout_fails_with_a_message_and_the_batch_goes_on():
    good = _tiled(matmul(SMALL, SMALL, SMALL))
    builder = FastBuilder(timeout_s=TIMEOUT_S, f_build=testing.misbehaving_build)
    try:
        results = builder.build(_inputs(testing.misbehave(good, testing.SLEEP, testing.HANG_S), good))
    finally:
        builder.close()
    assert len(results) == 2
    assert results[0].artifact_path is None
    assert "FastBuilder" in results[0].error_msg and f"timed out after {TIMEOUT_S} s" in results[0].error_msg
    assert results[1].error_msg is None, results[1].error_msg
    _run_matmul(results[1].artifact_path, SMALL)


def test_unresponsive_or_crashing_worker_fails_only_its_candidate():
    good = _tiled(matmul(SMALL, SMALL, SMALL))
    builder = FastBuilder(timeout_s=TIMEOUT_S, f_build=testing.misbehaving_build)
    try:
        results = builder.build(
            _inputs(
                testing.misbehave(good, testing.HOLD_GIL, testing.HANG_S), testing.misbehave(good, testing.EXIT, 3), good
            )
        )
    finally:
        builder.close()
    assert [r.artifact_path for r in results[:2]] == [None, None]
    assert f"timed out after {TIMEOUT_S} s" in results[0].error_msg  # its own timer was stuck: killed from outside
    assert "unresponsive worker was killed" in results[0].error_msg
    assert "crashed (exit code 3)" in results[1].error_msg
    assert results[2].error_msg is None, results[2].error_msg
    _run_matmul(results[2].artifact_path, SMALL)


def test_one_worker_serves_every_batch_and_close_stops_it():
    builder = fast_builder()
    tiled = _tiled(matmul())
    assert all(r.error_msg is None for r in builder.build(_inputs(tiled, tiled)))
    process = _worker_process(builder)
    (result,) = builder.build(_inputs(tiled))
    assert result.error_msg is None and _worker_process(builder) is process and process.poll() is None
    builder.close()
    assert process.poll() is not None


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_builds_with_its_own_worker_and_leaves_the_parents_alone():
    builder = fast_builder()
    tiled = _tiled(matmul())
    try:
        assert builder.build(_inputs(tiled))[0].error_msg is None
        parent_worker = _worker_process(builder)
        pid = os.fork()
        if pid == 0:  # the child: report through the exit code, never return into pytest
            code = 1
            try:
                (result,) = builder.build(_inputs(tiled))
                code = 0 if result.error_msg is None and _worker_process(builder).pid != parent_worker.pid else 2
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert parent_worker.poll() is None and _worker_process(builder) is parent_worker
        (result,) = builder.build(_inputs(tiled))
        assert result.error_msg is None
        _run_matmul(result.artifact_path)
    finally:
        builder.close()


def test_build_functions_plug_into_local_builder():
    builder = LocalBuilder(f_build=build_module, f_export=export_module, max_workers=1)
    (result,) = builder.build([BuilderInput(_tiled(matmul()), TARGET)])
    assert result.error_msg is None, result.error_msg
    _run_matmul(result.artifact_path)


CPU_INTRINSICS_CHECK = """
import sys
import tvm_morello
from tvm.s_tir import TensorIntrin
from tvm_morello.tune import cpu_tensor_intrinsics_only

with cpu_tensor_intrinsics_only():
    import tvm.s_tir.tensor_intrin
TensorIntrin.get("dot_16x4_vnni")  # x86 intrinsics are registered
assert "tvm.s_tir.tensor_intrin.cuda" not in sys.modules  # the GPU ones were skipped, no placeholder left
assert not hasattr(tvm.s_tir.tensor_intrin, "cuda")
print("ok")
"""


def test_cpu_tensor_intrinsics_only_registers_x86_and_skips_gpu():
    repo = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", CPU_INTRINSICS_CHECK], cwd=repo, capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]
