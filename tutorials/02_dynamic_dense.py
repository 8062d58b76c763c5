"""Tutorial 2: one library for every batch size — DietCode-style dynamic shapes.

A dense layer Y = X Wᵀ (W: 768 x 768) is called with any number of rows m in 1..256. Instead of tuning each m,
tvm-morello measures a few register-tile micro-kernels, learns their throughput, keeps a small set that
covers all m, and compiles a decision tree that picks one per call into the library itself.

Run: python tutorials/02_dynamic_dense.py   (about 15 s)
"""
import tvm_morello  # first: sets TVM's thread count before tvm is imported

import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from tvm_morello import dynamic as dyn
from tvm_morello.library import export_library

# 1. Declare the operator and the range of its symbolic dimension. A weighted sample is also possible:
#    dyn.VarRange(1, 256, sample=(1, 8, 64, 256), weights=(4, 2, 1, 1)).
workload = dyn.dense(n=768, k=768, m_range=(1, 256))

# 2. Tune: every candidate micro-kernel is built once (shape-generic, symbolic m) and measured through
#    meta-schedule's builder/runner at the shape it fits best; the records land in a JSONDatabase.
work = Path(tempfile.mkdtemp(prefix="tutorial_dynamic_"))
config = dyn.TuningConfig(max_candidates=6, shapes_per_kernel=1, cap=3)
plans = dyn.tune_dynamic([workload], work_dir=work / "db", config=config)  # progress bar + summary table
plan = plans[0]
print("kernels:", [k.key for k in plan.kernels])
print("dispatch tree:", plan.tree.to_json())

# 3. Export: compiles the Relax entry, TIR dispatcher and kernels, checks every dispatch region against numpy
#    (a mismatch raises VerificationError and writes nothing), then writes the .so and a JSON manifest.
lib = export_library(plans, tvm_morello.resolve_target(None), work / "dense.so")
print("wrote", lib.library, "and", lib.manifest)

# 4. Use it from plain TVM, without tvm_morello: pack the weight once, then call with any m in range.
consumer = f"""
import sys, numpy as np, tvm
from tvm import relax
vm = relax.VirtualMachine(tvm.runtime.load_module({str(lib.library)!r}), tvm.cpu())
w = np.random.randn(768, 768).astype("float32")
packed = vm["dense_pack_weights"](tvm.runtime.tensor(w))      # once, at load time
for m in (1, 7, 100, 256):
    x = np.random.randn(m, 768).astype("float32")
    y = vm["dense"](tvm.runtime.tensor(x), packed).numpy()
    print(m, "max error", float(np.abs(y - x @ w.T).max()))
try:
    vm["dense"](tvm.runtime.tensor(np.zeros((300, 768), "float32")), packed)
except Exception as err:
    print("m=300 rejected:", str(err).splitlines()[-1])
print("tvm_morello imported:", "tvm_morello" in sys.modules)
"""
print(subprocess.run([sys.executable, "-c", consumer], capture_output=True, text=True, check=True).stdout)
