"""Tutorial 1: swap MorelloSearch into an ordinary meta-schedule tune; only ``strategy=`` changes.

Below is the usual meta-schedule recipe (a TE workload, ``ms.tune_tir``, ``compile_tir``, ``tvm.compile``)
for BERT-base's attention output projection, a 128x768x768 fp32 dense. The line that swaps the search
is ``strategy=MorelloSearch()``: the first batch is the Morello DP's best programs, later batches are
picked by the DP with cost constants refit on the measurements and by an XGBoost model. Runs in a few
minutes on a 2-core machine.

About ``builder=fast_builder()``: meta-schedule's default LocalBuilder starts fresh workers for every
batch, and each imports all of TVM's tensor intrinsics (15-30 s) inside its 30 s build timeout; on a busy
2-core machine every build then times out. The fast builder compiles the same way without that import.
Where the default builder works, delete that line and nothing else changes.

    python tutorials/01_swap_in_strategy.py
"""
import tvm_morello  # import before tvm: it sets TVM_NUM_THREADS to the core count

import tempfile
import time

import numpy as np
import tvm
from tvm import te
from tvm.s_tir import meta_schedule as ms

from tvm_morello.target import resolve_target
from tvm_morello.tune import MorelloSearch, fast_builder

M, K, N = 128, 768, 768
MAX_TRIALS = 32


def dense(m, k, n):
    """Y = X Wᵀ with the weight stored [N, K], as in a Linear layer."""
    x = te.placeholder((m, k), name="X")
    w = te.placeholder((n, k), name="W")
    r = te.reduce_axis((0, k), name="k")
    y = te.compute((m, n), lambda i, j: te.sum(x[i, r] * w[j, r], axis=r), name="Y")
    return te.create_prim_func([x, w, y])


def main():
    func = dense(M, K, N)
    # The dict target with the real CPU name: "llvm" alone or mcpu=native would emit SSE-only code.
    target = resolve_target(None).tvm_target()
    print(f"target: {target}")

    with tempfile.TemporaryDirectory() as work_dir:
        start = time.perf_counter()
        database = ms.tune_tir(
            func,
            target,
            work_dir,
            max_trials_global=MAX_TRIALS,
            num_trials_per_iter=16,
            builder=fast_builder(),  # see the module docstring; optional where the default builder works
            strategy=MorelloSearch(),  # <- the swap; meta-schedule's default is "evolutionary"
        )
        print(f"tuned {MAX_TRIALS} trials in {time.perf_counter() - start:.0f} s")
        sch = ms.tir_integration.compile_tir(database, func, target)

    print("best schedule:")
    print(sch.trace)
    lib = tvm.compile(sch.mod, target)

    dev = tvm.cpu()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((M, K), dtype="float32")
    w = rng.standard_normal((N, K), dtype="float32")
    y = tvm.runtime.tensor(np.zeros((M, N), "float32"), dev)
    lib["main"](tvm.runtime.tensor(x, dev), tvm.runtime.tensor(w, dev), y)
    np.testing.assert_allclose(y.numpy(), x @ w.T, rtol=1e-3, atol=1e-3)

    timer = lib.mod.time_evaluator("main", dev, number=1, repeat=5, min_repeat_ms=100)
    seconds = float(np.median(timer(tvm.runtime.tensor(x, dev), tvm.runtime.tensor(w, dev), y).results))
    print(f"correct; {2 * M * K * N / seconds / 1e9:.1f} GFLOP/s ({seconds * 1e6:.0f} us)")
    print("Shorter still: tvm_morello.tune.tune(func, target, work_dir, max_trials) does the same tune and "
          "also skips registering GPU tensor intrinsics.")


if __name__ == "__main__":
    main()
