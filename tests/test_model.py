"""compile_model: an ONNX model with symbolic dimensions compiled into one library that matches numpy for every
shape in range, rejects shapes outside it naming the dimension, and loads in plain TVM."""
import json
import os
import re
import subprocess
import sys
import textwrap
from dataclasses import replace

import numpy as np
import pytest

from tvm_morello import InvalidShapeError, UnsupportedOperatorError, VerificationError
from tvm_morello.dynamic import TuningConfig
from tvm_morello.testing import host_target

# neither re-runs close calls nor checks the speed against numpy (test_dynamic_tuning and one test here do)
TINY = TuningConfig(max_candidates=3, candidate_source="hardware", shapes_per_kernel=2, cap=2, close_calls=0,
                    speed_points=0)
# correctness only: the fewest candidates, measured briefly
BRIEF = TuningConfig(max_candidates=2, candidate_source="hardware", shapes_per_kernel=1, cap=2, serial_kernel=False,
                     dot_kernels=False, repeat=1, min_repeat_ms=5, close_calls=0, speed_points=0)


def _save(model, path):
    import onnx

    onnx.save(model, str(path))
    return path


def mlp_model(path, k=32, h=48, seed=0):
    """x[batch, seq, k] -> MatMul(W1[k, h]) + b1 -> Relu -> MatMul(W2[h, k]) -> Softmax; returns (path, weights)."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    w1, b1, w2 = (rng.uniform(-1, 1, s).astype("float32") for s in ((k, h), (h,), (h, k)))
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h0"]), helper.make_node("Add", ["h0", "b1"], ["h1"]),
             helper.make_node("Relu", ["h1"], ["h2"]), helper.make_node("MatMul", ["h2", "w2"], ["h3"]),
             helper.make_node("Softmax", ["h3"], ["y"], axis=-1)]
    graph = helper.make_graph(
        nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "seq", k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "seq", k])],
        [numpy_helper.from_array(w, name) for w, name in ((w1, "w1"), (b1, "b1"), (w2, "w2"))])
    return _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path), (w1, b1, w2)


def mlp_reference(x, w1, b1, w2):
    logits = np.maximum(x @ w1 + b1, 0) @ w2
    e = np.exp(logits - logits.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def gemm_model(path, k=24, n=40, seed=1):
    """x[seq, k] -> Gemm(W[n, k], transB=1) + bias: a weight stored transposed, as PyTorch's Linear exports it."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    w, bias = rng.uniform(-1, 1, (n, k)).astype("float32"), rng.uniform(-1, 1, (n,)).astype("float32")
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "w", "bias"], ["y"], transB=1)], "gemm",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["seq", k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["seq", n])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(bias, "bias")])
    return _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path), (w, bias)


def test_onnx_model_compiles_verifies_and_runs_in_plain_tvm(tmp_path):
    import tvm_morello  # the entry point the package names at its top

    path, (w1, b1, w2) = mlp_model(tmp_path / "mlp.onnx")
    out = tmp_path / "mlp.so"
    compiled = tvm_morello.compile_model(path, {"batch": (1, 2), "seq": (1, 9)}, out=out,
                                         work_dir=tmp_path / "records", config=replace(TINY, speed_points=4),
                                         show_progress=False)
    assert compiled.matmuls == 2 and [p.workload.name for p in compiled.plans] == ["dense_32x48", "dense_48x32"]
    assert all(len(p.provenance["speed_check"]["points"]) == 4 for p in compiled.plans)  # timed against numpy
    assert all(p.workload.range_of("m").hi == 18 for p in compiled.plans)  # m = batch * seq
    # each weight was measured among copies spanning the model's weights, as main reads them
    assert all(p.provenance["config"]["streamed_weight_bytes"] == w1.nbytes + w2.nbytes for p in compiled.plans)
    # the dense layers' dispatchers take the [batch, seq, k] activations as they are (no VM reshapes around them)
    dispatchers = re.findall(r"call +(dense_\w+) in:", compiled.executable.mod["as_text"]())
    assert len(dispatchers) == 2 and all(name.endswith("__rank3") for name in dispatchers)
    checked = [(p["batch"], p["seq"]) for p in compiled.verification.points]
    assert (1, 1) in checked and (2, 9) in checked
    manifest = json.loads(compiled.manifest.read_text())
    assert manifest["ranges"]["seq"]["hi"] == 9 and len(manifest["operators"]) == 2
    (relu,) = manifest["epilogues"]["dense_32x48"]  # bias + ReLU, run by the dispatcher main calls
    assert relu["ops"] == "add_relu" and [d.rsplit("__", 1)[1] for d in relu["dispatchers"]] == ["rank3"]
    assert [(p["batch"], p["seq"]) for p in manifest["latency_ms"]] == [(1, 1), (1, 5), (2, 9)]
    assert all(p["ms"] > 0 for p in compiled.latency) and "batch=2, seq=9: " in compiled.summary()
    assert str(compiled) == compiled.summary() and repr(compiled).startswith("CompiledModel(batch=1..2, seq=1..9; 2 matmuls")

    np.savez(tmp_path / "weights.npz", w1=w1, b1=b1, w2=w2)
    loading, call = manifest["loading"].replace("'mlp.so'", repr(str(out))).split("; out = ")
    assert call == "vm['main'](*inputs)"
    script = textwrap.dedent(f"""
        {loading}  # the manifest's line: the thread pool set up before tvm is imported
        import numpy as np
        assert tvm.get_global_func("runtime.NumThreads")() == {host_target().cores}
        w = np.load({str(tmp_path / "weights.npz")!r})
        rng = np.random.default_rng(0)
        for shape in [(1, 1, 32), (2, 9, 32), (1, 5, 32), (2, 4, 32)]:
            x = rng.uniform(-1, 1, shape).astype("float32")
            logits = np.maximum(x @ w["w1"] + w["b1"], 0) @ w["w2"]
            e = np.exp(logits - logits.max(-1, keepdims=True))
            got = vm["main"](tvm.runtime.tensor(x)).numpy()
            np.testing.assert_allclose(got, e / e.sum(-1, keepdims=True), rtol=1e-4, atol=1e-5)
        for bad in [(3, 1, 32), (1, 10, 32)]:
            try:
                vm["main"](tvm.runtime.tensor(np.zeros(bad, "float32")))
            except Exception as err:
                print("rejected:", str(err).splitlines()[-1])
            else:
                raise SystemExit(f"{{bad}} was accepted")
    """)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TVM_")}  # plain TVM, no settings inherited
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=clean)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "batch=3 is outside the range 1..2" in done.stdout and "seq=10 is outside the range 1..9" in done.stdout
    assert "Warning" not in done.stderr  # loading says nothing (it once printed a line per weight)
    assert sorted(p.name for p in tmp_path.glob("*mlp*")) == ["mlp.json", "mlp.onnx", "mlp.so"]


def token_model(path, vocab=50, k=16, n=32, seed=4):
    """input_ids, attention_mask [batch, seq] int64 -> (Gather(E, ids) W + b) * mask: an embedding lookup and
    a mask, as a transformer's export begins; returns (path, (E, W, b))."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    e, w, b = (rng.uniform(-1, 1, s).astype("float32") for s in ((vocab, k), (k, n), (n,)))
    node = helper.make_node
    nodes = [node("Gather", ["e", "input_ids"], ["x"], axis=0), node("MatMul", ["x", "w"], ["h"]),
             node("Add", ["h", "b"], ["hb"]), node("Cast", ["attention_mask"], ["mf"], to=TensorProto.FLOAT),
             node("Unsqueeze", ["mf", "last"], ["m"]), node("Mul", ["hb", "m"], ["y"])]
    ids = [helper.make_tensor_value_info(name, TensorProto.INT64, ["batch", "seq"])
           for name in ("input_ids", "attention_mask")]
    graph = helper.make_graph(nodes, "tokens", ids, [helper.make_tensor_value_info("y", TensorProto.FLOAT,
                                                                                    ["batch", "seq", n])],
                              [numpy_helper.from_array(v, name) for v, name in ((e, "e"), (w, "w"), (b, "b"))]
                              + [numpy_helper.from_array(np.array([-1], "int64"), "last")])
    return _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path), (e, w, b)


def test_token_ids_and_a_mask_are_verified_with_varied_values_and_run_exactly(tmp_path):
    import tvm
    from tvm import relax

    from tvm_morello.model import compile_model, load_model
    from tvm_morello.model.verify import input_arrays

    path, (e, w, b) = token_model(tmp_path / "tokens.onnx")
    # the check's inputs: not all zeros (every token the same), not past a small table (0 or 1)
    ids, mask = input_arrays(load_model(path)["main"], {"batch": 2, "seq": 16})
    assert ids.dtype == mask.dtype == np.int64 and set(np.unique(ids)) == set(np.unique(mask)) == {0, 1}

    compiled = compile_model(path, {"batch": (1, 2), "seq": (1, 9)}, config=TINY, show_progress=False,
                             work_dir=tmp_path / "r")
    vm = relax.VirtualMachine(compiled.executable, tvm.cpu())
    rng = np.random.default_rng(1)
    for batch, seq in [(1, 1), (2, 9), (2, 4)]:
        ids, mask = rng.integers(0, len(e), (batch, seq)), rng.integers(0, 2, (batch, seq))
        got = vm["main"](tvm.runtime.tensor(ids), tvm.runtime.tensor(mask)).numpy()
        np.testing.assert_allclose(got, (e[ids] @ w + b) * mask[..., None], rtol=1e-4, atol=1e-5)


def nn_mlp(k=16, h=32, activation="relu"):
    """A ``relax.frontend.nn`` MLP exported as its users export one: the function is ``forward`` and the weights
    are parameters after the input. ``activation``: relu, gelu, gelu_tanh or silu (one Relax operator each)."""
    from tvm.relax.frontend import nn

    act = {"relu": nn.relu, "gelu": nn.gelu, "silu": nn.silu,
           "gelu_tanh": lambda x: nn.gelu(x, approximate="tanh")}[activation]

    class MLP(nn.Module):
        def __init__(self):
            self.fc1, self.fc2 = nn.Linear(k, h), nn.Linear(h, k)

        def forward(self, x):
            return self.fc2(act(self.fc1(x)))

    mod, _ = MLP().export_tvm(spec={"forward": {"x": nn.spec.Tensor(["batch", "seq", k], "float32")}})
    return mod


def test_weights_passed_to_a_relax_module_are_bound_and_tuned(tmp_path, capsys):
    import tvm
    from tvm import relax

    from tvm_morello import InvalidWeightsError
    from tvm_morello.model import compile_model

    mod = nn_mlp()
    with pytest.raises(UnsupportedOperatorError, match=r"no 'main' function to compile \(its functions: forward\)"):
        compile_model(mod, {"batch": (1, 2), "seq": (1, 8)})
    mod = tvm.IRModule({"main": mod["forward"].with_attr("global_symbol", "main")})
    rng = np.random.default_rng(0)
    weights = {p.name: rng.uniform(-1, 1, [int(d) for d in p.ty.shape.values]).astype("float32")
               for p in mod["main"].params[1:]}
    assert sorted(weights) == ["fc1.bias", "fc1.weight", "fc2.bias", "fc2.weight"]
    with pytest.raises(InvalidWeightsError, match=r"\['fc3.weight'\] are not parameters of main"):
        compile_model(mod, {"batch": (1, 2), "seq": (1, 8)}, params={**weights, "fc3.weight": weights["fc1.weight"]})
    with pytest.raises(InvalidWeightsError, match=r"'fc1.weight' is float32\[16, 32\]; main declares it "
                                                  r"float32\[32, 16\]"):
        compile_model(mod, {"batch": (1, 2), "seq": (1, 8)}, params={**weights, "fc1.weight": weights["fc1.weight"].T})
    with pytest.raises(InvalidWeightsError, match="an ONNX model's weights are its initialisers"):
        compile_model(mlp_model(tmp_path / "mlp.onnx")[0], {"batch": (1, 2), "seq": (1, 8)}, params=weights)

    # left as inputs, the weights are named: no matmul of ours can read them
    compiled = compile_model(mod, {"batch": (1, 2), "seq": (1, 8)}, config=TINY, work_dir=tmp_path / "r")
    assert "inputs of a fixed shape: fc1.weight, fc1.bias, fc2.weight, fc2.bias" in capsys.readouterr().out
    assert not compiled.plans

    compiled = compile_model(mod, {"batch": (1, 2), "seq": (1, 8)}, config=TINY, work_dir=tmp_path / "r",
                             params=weights, show_progress=False)
    assert sorted(plan.workload.name for plan in compiled.plans) == ["dense_16x32_t", "dense_32x16_t"]
    assert {name: [e.ops for e in found] for name, found in compiled.epilogues.items()} == {
        "dense_16x32_t": ["add_relu"], "dense_32x16_t": ["add"]}
    vm = relax.VirtualMachine(compiled.executable, tvm.cpu())
    x = rng.uniform(-1, 1, (2, 7, 16)).astype("float32")
    hidden = np.maximum(x @ weights["fc1.weight"].T + weights["fc1.bias"], 0)
    np.testing.assert_allclose(vm["main"](tvm.runtime.tensor(x)).numpy(),
                               hidden @ weights["fc2.weight"].T + weights["fc2.bias"], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("activation", ["gelu", "gelu_tanh", "silu"])
def test_an_activation_operator_after_a_dense_layer_is_an_epilogue_step(activation):
    import tvm

    from tvm_morello.model import load_model, model_ranges
    from tvm_morello.model.epilogues import find_fused_matmuls

    mod = nn_mlp(activation=activation)
    main = mod["forward"].with_attr("global_symbol", "main")
    weights = {p.name: np.zeros([int(d) for d in p.ty.shape.values], "float32") for p in main.params[1:]}
    mod = load_model(tvm.IRModule({"main": main}), weights)
    fused = find_fused_matmuls(mod, model_ranges(mod["main"], {"batch": (1, 2), "seq": (1, 8)}))
    assert [f.epilogue.ops for f in fused] == [f"add_{activation}", "add"]


@pytest.fixture(scope="module")
def family_records(tmp_path_factory):
    """One records directory for both families: the workloads they share are tuned once."""
    return tmp_path_factory.mktemp("family_records")


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_decoder_blocks_of_other_families_compile_with_their_activations_in_the_kernels(tmp_path, family,
                                                                                        family_records):
    """GPT-2 (LayerNorm written out, fused QKV and Split, a causal mask by Where, tanh GELU with Pow) and Llama
    (RMSNorm, no biases, a mask added, SiLU-gated MLP): every dense layer tuned, the activations in its kernel,
    and the outputs those of TVM's untuned build of the same file."""
    import onnx
    import tvm
    from tvm import relax
    from tvm.relax.frontend.onnx import from_onnx

    from tvm_morello.example_models import gpt2_block_onnx, llama_block_onnx
    from tvm_morello.model import compile_model

    build = gpt2_block_onnx if family == "gpt2" else llama_block_onnx
    model = build(layers=1, hidden=32, heads=2, ffn=48, max_positions=16)
    path = _save(model, tmp_path / f"{family}.onnx")
    compiled = compile_model(path, {"batch": (1, 2), "seq": (1, 9)}, config=BRIEF, show_progress=False,
                             work_dir=family_records)
    activation = ("add_multiply_multiply_multiply_add_multiply_tanh_multiply_add_multiply" if family == "gpt2"
                  else "sigmoid_multiply_multiply")  # the tanh GELU (its cube multiplied out), SiLU(gate) * up
    assert [e.ops for e in compiled.epilogues["dense_32x48"]] == [activation]
    assert not compiled.untuned_matmuls and compiled.matmuls == (6 if family == "gpt2" else 9)

    reference = relax.VirtualMachine(tvm.compile(from_onnx(onnx.load(str(path)), keep_params_in_input=False),
                                                 target="llvm"), tvm.cpu())
    ours = relax.VirtualMachine(compiled.executable, tvm.cpu())
    rng = np.random.default_rng(3)
    for shape in [(1, 1, 32), (2, 9, 32), (1, 6, 32)]:
        x = tvm.runtime.tensor(rng.uniform(-1, 1, shape).astype("float32"))
        np.testing.assert_allclose(ours["main"](x).numpy(), reference["main"](x).numpy(), rtol=1e-4, atol=1e-4)


def test_transposed_weight_of_a_gemm_is_a_dense_workload(tmp_path):
    from tvm_morello.model import compile_model

    path, (w, bias) = gemm_model(tmp_path / "gemm.onnx")
    compiled = compile_model(path, {"seq": (1, 20)}, config=TINY, show_progress=False, work_dir=tmp_path / "r")
    (plan,) = compiled.plans
    assert plan.workload.name == "dense_24x40_t" and plan.workload.transpose_b
    import tvm
    from tvm import relax

    vm = relax.VirtualMachine(compiled.executable, tvm.cpu())
    x = np.random.default_rng(0).uniform(-1, 1, (13, 24)).astype("float32")
    np.testing.assert_allclose(vm["main"](tvm.runtime.tensor(x)).numpy(), x @ w.T + bias, rtol=1e-4, atol=1e-5)


def test_a_wrong_kernel_is_caught_and_nothing_is_written(tmp_path, monkeypatch):
    from tvm_morello.model import compile_model, matmul_calls

    monkeypatch.setattr(matmul_calls, "pack_panels_array", lambda b, width, transpose_b: np.zeros(
        (-(-b.shape[0 if transpose_b else 1] // width), b.shape[1 if transpose_b else 0], width), "float32"))
    path, _ = gemm_model(tmp_path / "gemm.onnx")
    out = tmp_path / "gemm.so"
    # the error names the call at fault: its weight was packed wrong
    with pytest.raises(VerificationError, match="output 0 differs from TVM.s untuned build.*matmul call 1 of 1 "
                       r"\(dense_24x40_t with epilogue add\): its packed weight is none of the model's weights"):
        compile_model(path, {"seq": (1, 8)}, out=out, config=TINY, show_progress=False, work_dir=tmp_path / "r")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gemm.onnx", "r"]  # no library, not even unverified


def test_a_wrong_epilogue_kernel_is_named(tmp_path, monkeypatch):
    from tvm import topi

    from tvm_morello.codegen import kernel_funcs
    from tvm_morello.model import compile_model

    right = kernel_funcs.apply_epilogue
    monkeypatch.setattr(kernel_funcs, "apply_epilogue", lambda *args: topi.add(right(*args), 1.0))
    path, _ = gemm_model(tmp_path / "gemm.onnx")
    with pytest.raises(VerificationError, match=r"matmul call 1 of 1 \(dense_24x40_t with epilogue add\) differs "
                       "from numpy on its own inputs"):
        compile_model(path, {"seq": (1, 8)}, config=TINY, show_progress=False, work_dir=tmp_path / "r")


def test_ranges_are_checked_against_the_model(tmp_path):
    from tvm_morello.model import load_model, model_ranges

    path, _ = mlp_model(tmp_path / "mlp.onnx")
    main = load_model(path)["main"]
    with pytest.raises(InvalidShapeError, match="'batch' has no range"):
        model_ranges(main, {"seq": (1, 8)})
    with pytest.raises(InvalidShapeError, match=r"\['tokens'\], which the model does not have"):
        model_ranges(main, {"batch": (1, 2), "seq": (1, 8), "tokens": (1, 4)})
    with pytest.raises(InvalidShapeError, match="need 1 <= lo <= hi"):
        model_ranges(main, {"batch": (1, 2), "seq": (9, 8)})
    bounded = main.with_attr("tir_var_upper_bound", {"batch": 4, "seq": 64})
    ranges = model_ranges(bounded, None)
    assert (ranges["batch"].lo, ranges["batch"].hi, ranges["seq"].hi) == (1, 4, 64)


def test_bad_model_inputs_are_named(tmp_path):
    from tvm_morello.model import load_model

    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_model(tmp_path / "missing.onnx")
    (tmp_path / "model.txt").write_text("not a model")
    with pytest.raises(UnsupportedOperatorError, match="expected an .onnx file"):
        load_model(tmp_path / "model.txt")
    with pytest.raises(UnsupportedOperatorError, match="cannot compile a dict"):
        load_model({})


def test_cli_compile_reports_errors(tmp_path, capsys):
    from tvm_morello.cli import main

    assert main(["compile", str(tmp_path / "missing.onnx"), "--out", str(tmp_path / "m.so")]) == 2
    assert "does not exist" in capsys.readouterr().err
    path, _ = mlp_model(tmp_path / "mlp.onnx")
    assert main(["compile", str(path), "--range", "seq=1:8", "--out", str(tmp_path / "m.so")]) == 2
    assert "'batch' has no range" in capsys.readouterr().err


def attention_model(path, k=16, heads=1, seed=2):
    """x[batch, seq, k]: q = x Wq, kᵀ = (x Wk)ᵀ, softmax(q kᵀ) x: two batched matmuls of activations over a
    symbolic batch, a softmax over the symbolic seq, a transpose. With ``heads`` > 1, q, k and x are split into
    heads as exported transformers do ([batch, seq, heads, d] then [0, 2, 1, 3]; kᵀ by [0, 2, 3, 1]) and merged
    back after probs·x."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    wq, wk = (rng.uniform(-0.5, 0.5, (k, k)).astype("float32") for _ in range(2))
    split = [0, 0, heads, k // heads]
    if heads == 1:
        split_heads, merge_heads = [helper.make_node("Transpose", ["kk"], ["kt"], perm=[0, 2, 1])], []
        q, v, probs_v = "q", "x", "y"
    else:
        split_heads = [helper.make_node("Reshape", [name, "split"], [name + "4"]) for name in ("q", "kk", "x")]
        split_heads += [helper.make_node("Transpose", ["q4"], ["qh"], perm=[0, 2, 1, 3]),
                        helper.make_node("Transpose", ["kk4"], ["kt"], perm=[0, 2, 3, 1]),
                        helper.make_node("Transpose", ["x4"], ["vh"], perm=[0, 2, 1, 3])]
        merge_heads = [helper.make_node("Transpose", ["yh"], ["y4"], perm=[0, 2, 1, 3]),
                       helper.make_node("Reshape", ["y4", "merge"], ["y"])]
        q, v, probs_v = "qh", "vh", "yh"
    nodes = [helper.make_node("MatMul", ["x", "wq"], ["q"]), helper.make_node("MatMul", ["x", "wk"], ["kk"]),
             *split_heads, helper.make_node("MatMul", [q, "kt"], ["scores"]),
             helper.make_node("Softmax", ["scores"], ["probs"], axis=-1),
             helper.make_node("MatMul", ["probs", v], [probs_v]), *merge_heads]
    constants = [numpy_helper.from_array(wq, "wq"), numpy_helper.from_array(wk, "wk"),
                 numpy_helper.from_array(np.array(split, "int64"), "split"),
                 numpy_helper.from_array(np.array([0, 0, k], "int64"), "merge")]
    graph = helper.make_graph(
        nodes, "attention", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "seq", k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "seq", k])], constants)
    return _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path), (wq, wk)


def attention_reference(x, wq, wk, heads=1):
    def split(t):
        return t.reshape(*t.shape[:2], heads, -1).transpose(0, 2, 1, 3)

    q, kk, v = split(x @ wq), split(x @ wk), split(x)
    logits = q @ np.swapaxes(kk, -1, -2)
    e = np.exp(logits - logits.max(-1, keepdims=True))
    return ((e / e.sum(-1, keepdims=True)) @ v).transpose(0, 2, 1, 3).reshape(x.shape)


@pytest.mark.parametrize("heads, k, key_axes", [(1, 16, (0, 1, 2)), (2, 24, (0, 2, 1, 3))])
def test_a_transposed_key_is_read_as_rows(tmp_path, heads, k, key_axes):
    """QKᵀ takes K in its [.., seq, d] rows (the dot-form kernels' layout) instead of the transposed copy: with
    one head K itself, with several K's head split; probs·V keeps V as it is."""
    from tvm_morello.model.matmul_calls import find_matmul_calls
    from tvm_morello.model.source import load_model, model_ranges

    path, _ = attention_model(tmp_path / "attention.onnx", k=k, heads=heads)
    mod = load_model(path)
    calls = find_matmul_calls(mod, model_ranges(mod["main"], {"batch": (1, 3), "seq": (1, 12)}))
    d = k // heads
    by_name = {call.workload.name: call for call in calls}
    assert set(by_name) == {f"dense_{k}x{k}", f"bmm_seqx{d}xseq_t", f"bmm_seqxseqx{d}"}
    scores, probs_v = by_name[f"bmm_seqx{d}xseq_t"], by_name[f"bmm_seqxseqx{d}"]
    assert scores.workload.transpose_b and scores.b_axes == key_axes
    assert scores.workload.range_of("nbatch").hi == 3 * heads
    assert not probs_v.workload.transpose_b and probs_v.b_axes is None


def test_a_key_transposed_in_its_last_two_axes_is_read_in_place():
    """PyTorch's ``q @ k.transpose(-2, -1)`` on split heads: K's [batch, heads, seq, d] rows are B as they are."""
    from tvm import relax, tirx

    from tvm_morello.dynamic import OperatorPlan
    from tvm_morello.model.matmul_calls import find_matmul_calls, replace_matmul_calls
    from tvm_morello.model.source import model_ranges

    bb = relax.BlockBuilder()
    batch, seq = tirx.Var("batch", "int64"), tirx.Var("seq", "int64")
    q, k = (relax.Var(name, relax.TensorType((batch, 2, seq, 8), "float32")) for name in ("q", "k"))
    with bb.function("main", [q, k]):
        with bb.dataflow():
            kt = bb.emit(relax.op.permute_dims(k, [0, 1, 3, 2]))
            out = bb.emit_output(relax.op.matmul(q, kt))
        bb.emit_func_output(out)
    mod = bb.get()
    ranges = model_ranges(mod["main"], {"batch": (1, 3), "seq": (1, 12)})
    (call,) = find_matmul_calls(mod, ranges)
    assert call.workload.name == "bmm_seqx8xseq_t" and call.b_axes == (0, 1, 2, 3)
    assert call.workload.range_of("nbatch").hi == 6
    plan = OperatorPlan(call.workload, panel=0, kernels=(), tree=None)  # the rewrite reads only its names
    rewritten = replace_matmul_calls(mod, ranges, [plan])["main"].script()
    assert "permute_dims" not in rewritten and plan.dispatcher in rewritten
    assert "R.reshape(k, R.shape([batch * 2, seq, 8]))" in rewritten


@pytest.mark.parametrize("heads, k", [(1, 16), (2, 24)])
def test_attention_matmuls_over_a_symbolic_batch_are_tuned_and_exact(tmp_path, heads, k):
    """Both attention matmuls over batch x heads; with two heads of 12, probs·V (n = 12, no multiple of the
    host's vector on AVX targets) has no kernel of ours and keeps TVM's schedule, named in the summary, and the
    model still compiles exactly."""
    import tvm
    from tvm import relax

    from tvm_morello import resolve_target
    from tvm_morello.model import compile_model

    path, (wq, wk) = attention_model(tmp_path / "attention.onnx", k=k, heads=heads)
    compiled = compile_model(path, {"batch": (1, 3), "seq": (1, 12)}, config=TINY, show_progress=False,
                             work_dir=tmp_path / "r", out=tmp_path / "attention.so")
    d = k // heads
    by_name = {p.workload.name: p.workload for p in compiled.plans}
    untuned = {f"bmm_seqxseqx{d}"} if d % resolve_target(None).lanes() else set()  # compiled for the host
    assert set(by_name) == {f"dense_{k}x{k}", f"bmm_seqx{d}xseq_t", f"bmm_seqxseqx{d}"} - untuned
    assert set(compiled.untuned_matmuls) == untuned
    assert set(json.loads(compiled.manifest.read_text())["untuned_matmuls"]) == untuned
    assert all(f"{name}: not tuned" in compiled.summary() for name in untuned)
    scores = by_name[f"bmm_seqx{d}xseq_t"]
    assert scores.batch == "nbatch" and scores.range_of("nbatch").hi == 3 * heads
    assert scores.range_of("seq").hi == 12
    vm = relax.VirtualMachine(compiled.executable, tvm.cpu())
    for shape in [(3, 12, k), (2, 5, k), (1, 1, k)]:
        x = np.random.default_rng(0).uniform(-1, 1, shape).astype("float32")
        np.testing.assert_allclose(vm["main"](tvm.runtime.tensor(x)).numpy(), attention_reference(x, wq, wk, heads),
                                   rtol=1e-4, atol=1e-5)
