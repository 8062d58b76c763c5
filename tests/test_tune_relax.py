"""MorelloSearch in ms.relax_integration.tune_relax: the matmul task is ours, softmax goes to the fallback."""
import tvm_morello  # noqa: F401  (sets TVM_NUM_THREADS before tvm loads)

import numpy as np
import tvm
from tvm import relax
from tvm.s_tir import meta_schedule as ms
from tvm.script import ir as I
from tvm.script import relax as R

from tvm_morello.testing import fused_for_tuning, host_tvm_target, record_failed
from tvm_morello.tune import MorelloSearch, cpu_tensor_intrinsics_only, fast_builder

TARGET = host_tvm_target()


@I.ir_module
class MatmulSoftmax:
    @R.function
    def main(x: R.Tensor((64, 64), "float32"), w: R.Tensor((64, 64), "float32")):
        with R.dataflow():
            y = R.matmul(x, w)
            z = R.nn.softmax(y, axis=-1)
            R.output(z)
        return z


def test_tune_relax_with_morello_search_compiles_a_correct_model(tmp_path, handoff_log):
    with cpu_tensor_intrinsics_only():
        database = ms.relax_integration.tune_relax(
            fused_for_tuning(MatmulSoftmax),
            params={},
            target=TARGET,
            work_dir=str(tmp_path),
            max_trials_global=8,
            num_trials_per_iter=4,
            builder=fast_builder(),
            strategy=MorelloSearch(),
            seed=0,
        )
    (handoff,) = handoff_log()
    assert "softmax" in handoff.getMessage(), "only the softmax task may go to EvolutionarySearch"
    records = database.get_all_tuning_records()
    tasks = {str(r.workload.mod["main"].body).count("T_softmax") > 0 for r in records if not record_failed(r)}
    assert tasks == {True, False}, "both the matmul and the softmax task need successful records"

    executable = ms.relax_integration.compile_relax(database, MatmulSoftmax, TARGET, params=None)
    vm = relax.VirtualMachine(executable, tvm.cpu())
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 64), dtype="float32")
    w = rng.standard_normal((64, 64), dtype="float32")
    out = vm["main"](tvm.runtime.tensor(x), tvm.runtime.tensor(w)).numpy()
    logits = x @ w
    expected = np.exp(logits - logits.max(axis=1, keepdims=True))
    np.testing.assert_allclose(out, expected / expected.sum(axis=1, keepdims=True), rtol=1e-4, atol=1e-5)
