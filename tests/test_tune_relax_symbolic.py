"""The meta-schedule route on a whole symbolic model: ``tune_relax`` with MorelloSearch and MorelloSpace, then
``compile_relax``: nothing aborts, every task gets a record, and the compiled model matches TVM's untuned build for
shapes across the ranges."""
import tvm_morello  # noqa: F401  (before tvm)

import numpy as np
import tvm
from tvm import relax
from tvm.s_tir import meta_schedule as ms

from tvm_morello.measure.records import records_of
from tvm_morello.testing import bert_encoder_onnx, fused_for_tuning, host_target, record_failed
from tvm_morello.tune import MorelloSearch, MorelloSpace, cpu_tensor_intrinsics_only, fast_builder
from tvm_morello.tune.space import generic_schedule

RANGES = {"batch": (1, 3), "seq": (1, 12)}


def _bert_layer():
    from tvm.relax.frontend.onnx import from_onnx

    return from_onnx(bert_encoder_onnx(layers=1, hidden=32, heads=2, ffn=64), keep_params_in_input=False)


def test_tune_relax_then_compile_relax_on_a_symbolic_model(tmp_path):
    target = host_target().tvm_target()
    mod = _bert_layer()
    with cpu_tensor_intrinsics_only():
        fused = fused_for_tuning(mod)
        tasks = ms.relax_integration.extract_tasks(fused, target)
        assert tasks and all(t.dispatched for t in tasks)
        db = ms.relax_integration.tune_relax(
            fused, {}, target, str(tmp_path / "ms"), max_trials_global=4 * len(tasks), num_trials_per_iter=4,
            builder=fast_builder(), space=MorelloSpace(), strategy=MorelloSearch(shape_ranges=RANGES),
            cost_model="random", seed=0)
        for task in tasks:  # each task has a working schedule in the database, measured in range
            records = records_of(db, task.dispatched[0])
            assert records and not all(record_failed(r) for r in records), task.task_name
        tuned = ms.relax_integration.compile_relax(db, mod, target, None)
    untuned = tvm.compile(mod, target=target)
    rng = np.random.default_rng(0)
    for batch, seq in ((1, 1), (2, 7), (3, 12)):
        x = tvm.runtime.tensor(rng.standard_normal((batch, seq, 32)).astype("float32"))
        got = relax.VirtualMachine(tuned, tvm.cpu())["main"](x).numpy()
        want = relax.VirtualMachine(untuned, tvm.cpu())["main"](x).numpy()
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_generic_schedule_runs_a_fused_dense_in_parallel_rows():
    """MatmulRows on a dense layer fused with its bias add: rows parallel, the product in vectors, same numbers."""
    from tvm import te

    batch, seq = te.var("batch", "int64"), te.var("seq", "int64")
    x = te.placeholder((batch, seq, 32), name="x")
    w = te.placeholder((32, 64), name="w")
    bias = te.placeholder((64,), name="bias")
    k = te.reduce_axis((0, 32), "k")
    mm = te.compute((batch, seq, 64), lambda b, s, j: te.sum(x[b, s, k] * w[k, j], axis=k), name="matmul")
    out = te.compute((batch, seq, 64), lambda b, s, j: mm[b, s, j] + bias[j], name="add")
    func = te.create_prim_func([x, w, bias, out])
    sch = generic_schedule(func, host_target().tvm_target())
    assert [inst.kind.name for inst in sch.trace.insts].count("Parallel") == 1
    assert "Vectorize" in {inst.kind.name for inst in sch.trace.insts}
    lib = tvm.compile(sch.mod, target=host_target().tvm_target())
    rng = np.random.default_rng(1)
    a, b, c = (rng.standard_normal(s).astype("float32") for s in ((2, 5, 32), (32, 64), (64,)))
    y = tvm.runtime.tensor(np.zeros((2, 5, 64), "float32"))
    lib(*(tvm.runtime.tensor(v) for v in (a, b, c)), y)
    np.testing.assert_allclose(y.numpy(), a @ b + c, rtol=1e-4, atol=1e-4)


def test_a_task_without_a_range_for_its_variable_is_skipped_not_fatal():
    from tvm_morello.errors import InvalidShapeError
    from tvm_morello.tune.symbolic import midpoint_env

    from tvm import te

    seq = te.var("seq", "int64")
    x = te.placeholder((seq, 8), name="x")
    func = te.create_prim_func([x, te.compute((seq, 8), lambda i, j: x[i, j] * 2.0, name="y")])
    assert midpoint_env(func, {"seq": (1, 9)}) == {"seq": 5}
    try:
        midpoint_env(func, {"batch": (1, 4)})
    except InvalidShapeError as err:
        assert "'seq'" in str(err)
    else:
        raise AssertionError("a variable without a range was accepted")
