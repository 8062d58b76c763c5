"""Tutorial 3: tune a symbolic PrimFunc through meta-schedule, then build the dispatching library from its database.

TVM's own strategies cannot measure a PrimFunc whose shape is symbolic. MorelloSearch(shape_ranges=...) can:
it proposes shape-generic micro-kernels, measures each at concrete shapes inside the range, and records the
runs under the symbolic workload, so an existing ms.tune_tir script only changes its strategy argument.

Run: python tutorials/03_symbolic_tune_tir.py   (about 30 s)
"""
import tvm_morello  # first: sets TVM's thread count before tvm is imported

import tempfile
from pathlib import Path

import numpy as np
import tvm
from tvm import te
from tvm.s_tir import meta_schedule as ms

from tvm_morello.library import build_library_from_database
from tvm_morello.library import load_library
from tvm_morello.tune import MorelloSearch, fast_builder

# 1. A dense layer Y[m, 256] = X[m, 256] W[256, 256]ᵀ with a symbolic row count m. All extents share one
#    index dtype (an int32 m with int constants; for an int64 m pass index_dtype_override="int64").
m = te.var("m")
x = te.placeholder((m, 256), name="X")
w = te.placeholder((256, 256), name="W")
k = te.reduce_axis((0, 256), "k")
y = te.compute((m, 256), lambda i, j: te.sum(x[i, k] * w[j, k], axis=k), name="Y")
func = te.create_prim_func([x, w, y])
ranges = {"m": (1, 512)}

# 2. Tune with meta-schedule as usual; only the strategy (and the lean builder) differ.
target = tvm_morello.resolve_target(None)
work = Path(tempfile.mkdtemp(prefix="tutorial_symbolic_"))
db = ms.tune_tir(tvm.IRModule({"main": func}), target.tvm_target(), str(work / "ms"), max_trials_global=16,
                 strategy=MorelloSearch(shape_ranges=ranges), builder=fast_builder())

# 3. The database's runs feed the throughput model, kernel set and decision tree; the chosen records' traces
#    are the kernels. Every dispatch region is checked against numpy before the .so is written.
lib = build_library_from_database(db, func, ranges, work / "dense.so", target)
print("wrote", lib.library, "and", lib.manifest)

# 4. Any m in 1..512 runs through one entry (B here is an activation, so it is not prepacked).
vm, manifest = load_library(lib.library)
print("kernels:", [kernel["name"] for kernel in manifest["operators"][0]["kernels"]])
rng = np.random.default_rng(0)
wv = rng.standard_normal((256, 256), dtype=np.float32)
for rows in (1, 100, 512):
    xv = rng.standard_normal((rows, 256), dtype=np.float32)
    out = vm["dense"](tvm.runtime.tensor(xv), tvm.runtime.tensor(wv)).numpy()
    print(f"m={rows}: max |error| vs numpy {np.abs(out - xv @ wv.T).max():.2e}")
