"""Tutorial 4: a whole ONNX model with symbolic dimensions, compiled once for every shape in range.

A small BERT-style encoder layer (hidden 256, 4 heads; the operators a PyTorch export emits) with dynamic
``batch`` and ``seq`` axes is compiled by ``compile_model``: its matmuls (the dense layers and attention's two
batched matmuls) are tuned DietCode-style for batch 1..2 and seq 1..64, every other operator is scheduled for any
shape, and the result is verified against reference builds before one .so is written. Plain TVM then runs it in a
fresh process, for any shape in range, and rejects the rest naming the dimension.

Run: python tutorials/04_compile_onnx_model.py   (about a minute)
Same from the shell: tvm-morello compile encoder.onnx --range batch=1:2 --range seq=1:64 --out encoder.so
"""
import tvm_morello  # first: sets TVM's thread count before tvm is imported

import subprocess
import sys
import tempfile
from pathlib import Path

import onnx

from tvm_morello.model import compile_model
from tvm_morello.testing import bert_encoder_onnx

work = Path(tempfile.mkdtemp(prefix="tutorial_model_"))
model = work / "encoder.onnx"
onnx.save(bert_encoder_onnx(layers=1, hidden=256, heads=4, ffn=1024), str(model))

# 1. Compile: ranges name the model's dim_params; progress, then a summary of what was tuned and verified.
compiled = compile_model(model, {"batch": (1, 2), "seq": (1, 64)}, out=work / "encoder.so", work_dir=work / "records")
print("wrote", compiled.library, "and", compiled.manifest)

# 2. Use it from plain TVM in a fresh process (no tvm_morello), against ONNX Runtime when it is installed.
consumer = f"""
import numpy as np, tvm
from tvm import relax
vm = relax.VirtualMachine(tvm.runtime.load_module({str(compiled.library)!r}), tvm.cpu())
try:
    import onnxruntime
    reference = onnxruntime.InferenceSession({str(model)!r}, providers=["CPUExecutionProvider"])
except ImportError:
    reference = None
for batch, seq in [(1, 1), (2, 64), (1, 37)]:
    x = np.random.default_rng(seq).uniform(-1, 1, (batch, seq, 256)).astype("float32")
    y = vm["main"](tvm.runtime.tensor(x)).numpy()
    if reference is None:
        print(batch, seq, "output", y.shape)
    else:
        print(batch, seq, "max error vs ONNX Runtime", float(np.abs(y - reference.run(None, {{"hidden_states": x}})[0]).max()))
try:
    vm["main"](tvm.runtime.tensor(np.zeros((1, 65, 256), "float32")))
except Exception as err:
    print("seq=65 rejected:", str(err).splitlines()[-1])
print("tvm_morello imported:", "tvm_morello" in __import__("sys").modules)
"""
print(subprocess.run([sys.executable, "-c", consumer], capture_output=True, text=True, check=True).stdout)
