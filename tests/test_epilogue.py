"""Epilogues: elementwise work after a dense layer (bias, GELU, residual) found in a model and run in the
kernel's write-back, with results equal to numpy's for every shape in range."""
import math

import numpy as np
import pytest

from tvm_morello.spec.epilogue import MATMUL_OUTPUT, UNARY, Epilogue, Operand, Step
from tvm_morello.testing import host_target

erf = np.vectorize(math.erf, otypes=[np.float32])
GELU_TANH = math.sqrt(2 / math.pi)  # GELU's tanh form: x (1 + tanh(GELU_TANH (x + 0.044715 x^3))) / 2


def _step(i):
    return Operand("step", i)


BIAS_GELU_RESIDUAL = Epilogue((
    Step("add", (MATMUL_OUTPUT, Operand("vector", 0))),
    Step("divide", (_step(0), Operand("scalar", value=math.sqrt(2.0)))),
    Step("erf", (_step(1),)),
    Step("add", (_step(2), Operand("scalar", value=1.0))),
    Step("multiply", (_step(0), _step(3))),
    Step("multiply", (_step(4), Operand("scalar", value=0.5))),
    Step("subtract", (Operand("tensor", 0), _step(5))),
), vectors=1, tensors=1)


def test_epilogues_are_checked_when_made():
    with pytest.raises(ValueError, match="epilogue op 'softmax'"):
        Step("softmax", (MATMUL_OUTPUT,))
    with pytest.raises(ValueError, match="takes 2 operands"):
        Step("add", (MATMUL_OUTPUT,))
    with pytest.raises(ValueError, match="does not precede it"):
        Epilogue((Step("erf", (_step(0),)),))
    with pytest.raises(ValueError, match="reads vector 0 of 0"):
        Epilogue((Step("add", (MATMUL_OUTPUT, Operand("vector", 0))),))
    with pytest.raises(ValueError, match="reads neither"):
        Epilogue((Step("add", (Operand("scalar", value=1.0), Operand("scalar", value=2.0))),))
    # the key names the structure, scalars included: another constant is another kernel
    other = Epilogue(BIAS_GELU_RESIDUAL.steps[:-1] + (Step("subtract", (_step(5), Operand("tensor", 0))),), 1, 1)
    assert BIAS_GELU_RESIDUAL.key != other.key and BIAS_GELU_RESIDUAL.ops == other.ops


@pytest.mark.parametrize("op", UNARY)
def test_every_unary_epilogue_op_matches_numpy(op):
    """Each unary op in its vectorised form (bias, then the op, then times the bias-added output: SiLU for
    sigmoid) against numpy's own functions (and scipy's, which the mismatch locator uses)."""
    import tvm

    from tvm_morello.codegen.kernel_funcs import kernel_schedule, kernel_target
    from tvm_morello.codegen.microkernel import MicroKernel
    from tvm_morello.codegen.panels import pack_panels_array
    from tvm_morello.model.locate import epilogue_numpy
    from tvm_morello.spec.symbolic import dense

    target = host_target()
    k, n, m = 24, 2 * target.lanes(), 7
    epilogue = Epilogue((Step("add", (MATMUL_OUTPUT, Operand("vector", 0))), Step(op, (_step(0),)),
                         Step("multiply", (_step(0), _step(1)))), vectors=1)
    micro = MicroKernel(2, target.lanes())
    lib = tvm.compile(kernel_schedule(dense(n, k, (1, 16)), micro, micro.nr, target, epilogue).mod,
                      target=kernel_target(micro, target))
    rng = np.random.default_rng(7)
    x, w = rng.uniform(-1, 1, (m, k)).astype("float32"), rng.uniform(-1, 1, (n, k)).astype("float32")
    bias = rng.uniform(-4, 4, n).astype("float32")
    out = tvm.runtime.tensor(np.zeros((m, n), "float32"))
    lib["main"](*(tvm.runtime.tensor(a) for a in (x, pack_panels_array(w, micro.nr, transpose_b=True), bias)), out)
    h = x @ w.T + bias
    sigmoid = 1 / (1 + np.exp(-h))
    want = {"erf": erf(h), "tanh": np.tanh(h), "exp": np.exp(h), "sigmoid": sigmoid, "relu": np.maximum(h, 0),
            "gelu": h * (1 + erf(h / math.sqrt(2))) / 2, "silu": h * sigmoid,
            "gelu_tanh": h * (1 + np.tanh(GELU_TANH * (h + 0.044715 * h ** 3))) / 2}[op] * h
    np.testing.assert_allclose(epilogue_numpy(epilogue, x @ w.T, [bias], []), want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out.numpy(), want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("m", [1, 5, 37])
def test_kernel_with_an_epilogue_matches_numpy(m):
    import tvm

    from tvm_morello.codegen.kernel_funcs import kernel_schedule, kernel_target
    from tvm_morello.codegen.microkernel import MicroKernel
    from tvm_morello.codegen.panels import pack_panels_array
    from tvm_morello.spec.symbolic import dense

    target = host_target()
    k, n, lanes = 40, 3 * host_target().lanes() + 4, target.lanes()  # n: a partial panel
    micro = MicroKernel(4, 2 * lanes)
    sch = kernel_schedule(dense(n, k, (1, 64)), micro, micro.nr, target, BIAS_GELU_RESIDUAL)
    lib = tvm.compile(sch.mod, target=kernel_target(micro, target))
    rng = np.random.default_rng(m)
    x, w = rng.uniform(-1, 1, (m, k)).astype("float32"), rng.uniform(-1, 1, (n, k)).astype("float32")
    bias, residual = rng.uniform(-1, 1, n).astype("float32"), rng.uniform(-1, 1, (m, n)).astype("float32")
    out = tvm.runtime.tensor(np.zeros((m, n), "float32"))
    lib["main"](*(tvm.runtime.tensor(a) for a in (x, pack_panels_array(w, micro.nr, transpose_b=True), bias,
                                                  residual)), out)
    h = x @ w.T + bias
    np.testing.assert_allclose(out.numpy(), residual - h * (1 + erf(h / math.sqrt(2.0))) * 0.5, rtol=1e-4, atol=1e-5)


def ffn_model(path, k=32, h=64, seed=3, escape=False):
    """x[batch, seq, k] -> MatMul(W1) + b1 -> erf-GELU -> MatMul(W2) + b2 -> + x: BERT's feed-forward block.
    ``escape``: the pre-GELU activation is also an output, so only its bias add can run in the kernel."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    weights = {"w1": rng.uniform(-1, 1, (k, h)), "b1": rng.uniform(-1, 1, h), "w2": rng.uniform(-1, 1, (h, k)) / h,
               "b2": rng.uniform(-1, 1, k), "sqrt2": np.array(math.sqrt(2.0)), "one": np.array(1.0),
               "half": np.array(0.5)}
    weights = {name: value.astype("float32") for name, value in weights.items()}
    node = helper.make_node
    nodes = [node("MatMul", ["x", "w1"], ["h0"]), node("Add", ["h0", "b1"], ["h1"]),
             node("Div", ["h1", "sqrt2"], ["g0"]), node("Erf", ["g0"], ["g1"]), node("Add", ["g1", "one"], ["g2"]),
             node("Mul", ["h1", "g2"], ["g3"]), node("Mul", ["g3", "half"], ["g4"]),
             node("MatMul", ["g4", "w2"], ["y0"]), node("Add", ["y0", "b2"], ["y1"]), node("Add", ["y1", "x"], ["y"])]
    value_info = lambda name, dims: helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch", "seq", dims])
    outputs = [value_info("y", k)] + ([value_info("h1", h)] if escape else [])
    graph = helper.make_graph(nodes, "ffn", [value_info("x", k)], outputs,
                              [numpy_helper.from_array(value, name) for name, value in weights.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    import onnx

    onnx.save(model, str(path))
    return path, weights


def ffn_reference(x, w):
    h1 = x @ w["w1"] + w["b1"]
    gelu = h1 * (1 + erf(h1 / math.sqrt(2.0))) * 0.5
    return gelu @ w["w2"] + w["b2"] + x, h1


def test_epilogue_regions_stop_where_a_value_escapes(tmp_path):
    from tvm_morello.model import load_model, model_ranges
    from tvm_morello.model.epilogues import find_fused_matmuls

    ranges = {"batch": (1, 2), "seq": (1, 8)}
    path, _ = ffn_model(tmp_path / "ffn.onnx")
    mod = load_model(path)
    fused = find_fused_matmuls(mod, model_ranges(mod["main"], ranges))
    assert [f.epilogue.ops for f in fused] == ["add_divide_erf_add_multiply_multiply", "add_add"]
    assert [(f.epilogue.vectors, f.epilogue.tensors) for f in fused] == [(1, 0), (1, 1)]

    path, _ = ffn_model(tmp_path / "escape.onnx", escape=True)
    mod = load_model(path)
    fused = find_fused_matmuls(mod, model_ranges(mod["main"], ranges))
    assert [f.epilogue.ops for f in fused] == ["add", "add_add"]


@pytest.mark.parametrize("escape", [False, True])
def test_model_runs_its_epilogues_in_the_kernels_and_matches_numpy(tmp_path, escape):
    import tvm
    from tvm import relax

    from tvm_morello.dynamic import TuningConfig
    from tvm_morello.model import compile_model, load_model
    from tvm_morello.model.epilogues import find_fused_matmuls
    from tvm_morello.model.matmul_calls import replace_matmul_calls

    path, weights = ffn_model(tmp_path / "ffn.onnx", escape=escape)
    compiled = compile_model(path, {"batch": (1, 2), "seq": (1, 8)}, work_dir=tmp_path / "records",
                             config=TuningConfig(max_candidates=3, candidate_source="hardware", shapes_per_kernel=2,
                                                 cap=2, close_calls=0, speed_points=0), show_progress=False)
    first = "add" if escape else "add_divide_erf_add_multiply_multiply"
    assert {name: [e.ops for e in found] for name, found in compiled.epilogues.items()} == {
        "dense_32x64": [first], "dense_64x32": ["add_add"]}
    assert f"| {first} |" in compiled.summary()

    # the rewritten model keeps no matmul, and of the elementwise operators only what escapes the kernels
    mod = load_model(path)
    rewritten = replace_matmul_calls(mod, compiled.ranges, compiled.plans, find_fused_matmuls(mod, compiled.ranges))
    left = {str(call.op.name) for call in _calls(rewritten["main"])}
    assert "relax.matmul" not in left
    elementwise = {"relax.add", "relax.divide", "relax.erf", "relax.multiply"}
    assert left & elementwise == (elementwise if escape else set())  # escaping: the GELU runs on its own

    # every dense call runs an epilogue, so no plain dispatcher (nor its kernels, nor its entry) is built
    from tvm_morello.library.modules import build_modules
    from tvm_morello.model.build import extern_calls

    called, plain = extern_calls(rewritten), {plan.dispatcher for plan in compiled.plans}
    assert called and not called & plain
    entries, kernel_modules = build_modules(compiled.plans, host_target(), epilogues=compiled.epilogues, called=called)
    built = {gv.name_hint for kernels, _ in kernel_modules for gv in kernels.get_global_vars()}
    plain_kernels = {plan.kernel_name(i) for plan in compiled.plans for i in plan.tree.kernels_used()}
    assert called <= built and not built & (plain | plain_kernels)
    assert not {gv.name_hint for gv in entries.get_global_vars()} & {plan.entry for plan in compiled.plans}

    vm = relax.VirtualMachine(compiled.executable, tvm.cpu())
    rng = np.random.default_rng(0)
    for shape in [(1, 1, 32), (2, 8, 32), (1, 5, 32)]:
        x = rng.uniform(-1, 1, shape).astype("float32")
        got = vm["main"](tvm.runtime.tensor(x))
        want = ffn_reference(x, weights)
        got = [got] if isinstance(got, tvm.runtime.Tensor) else list(got)
        for value, reference in zip(got, want[:len(got)]):
            np.testing.assert_allclose(value.numpy(), reference, rtol=1e-4, atol=1e-4)


def _calls(func):
    from tvm import relax

    found = []
    relax.analysis.post_order_visit(func, lambda e: found.append(e) if isinstance(e, relax.Call)
                                    and hasattr(e.op, "name") else None)
    return found


def test_whole_constant_powers_become_multiplications():
    import tvm
    from tvm import relax
    from tvm.script import relax as R

    from tvm_morello.model.elementwise_forms import expand_integer_powers

    @tvm.script.ir_module
    class Powers:
        @R.function
        def main(x: R.Tensor(("n", 8), "float32")):
            with R.dataflow():
                square = R.power(x, R.const(2.0, "float32"))
                cube = R.power(x, R.const(3.0, "float32"))
                fourth = R.power(x, R.const(4.0, "float32"))
                root = R.power(x, R.const(0.5, "float32"))  # not a whole exponent: kept
                wider = R.power(x, R.const(np.full((1, 1, 1), 2.0, "float32")))  # would broadcast x: kept
                R.output(square, cube, fourth, root, wider)
            return (square, cube, fourth, root, wider)

    expanded = expand_integer_powers(Powers)
    ops = [str(call.op.name) for call in _calls(expanded["main"])]
    assert ops.count("relax.power") == 2 and ops.count("relax.multiply") == 1 + 2 + 2

    x = np.random.default_rng(0).uniform(0.1, 2, (3, 8)).astype("float32")
    outputs = []
    for mod in (Powers, expanded):
        vm = relax.VirtualMachine(tvm.compile(mod, target="llvm"), tvm.cpu())
        outputs.append([value.numpy() for value in vm["main"](tvm.runtime.tensor(x))])
    for got, want, exact in zip(outputs[1], outputs[0], (x ** 2, x ** 3, x ** 4, x ** 0.5, x[None] ** 2)):
        np.testing.assert_allclose(got, want, rtol=1e-6)
        np.testing.assert_allclose(got, exact, rtol=1e-6)


def gated_ffn_model(path, k=32, h=48, seed=5):
    """x[batch, seq, k] -> (SiLU(x W_gate) * (x W_up)) W_down + x, SiLU written Sigmoid(g) * g: Llama's MLP as
    an ONNX export writes it."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    weights = {"wg": rng.uniform(-1, 1, (k, h)), "wu": rng.uniform(-1, 1, (k, h)), "wd": rng.uniform(-1, 1, (h, k)) / h}
    weights = {name: value.astype("float32") for name, value in weights.items()}
    node = helper.make_node
    nodes = [node("MatMul", ["x", "wg"], ["g"]), node("Sigmoid", ["g"], ["s"]), node("Mul", ["g", "s"], ["silu"]),
             node("MatMul", ["x", "wu"], ["u"]), node("Mul", ["silu", "u"], ["a"]), node("MatMul", ["a", "wd"], ["d"]),
             node("Add", ["d", "x"], ["y"])]
    value_info = lambda name, dims: helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch", "seq", dims])
    graph = helper.make_graph(nodes, "gated_ffn", [value_info("x", k)], [value_info("y", k)],
                              [numpy_helper.from_array(value, name) for name, value in weights.items()])
    import onnx

    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path, weights


def test_a_silu_gate_runs_in_a_kernel_and_matches_numpy(tmp_path):
    """Llama's gated MLP: SiLU (a sigmoid, which TVM computes with libm's exp per element) and the gating
    product run in a dense kernel's write-back; no sigmoid is left in the model."""
    import tvm
    from tvm import relax

    from tvm_morello.dynamic import TuningConfig
    from tvm_morello.model import compile_model

    path, w = gated_ffn_model(tmp_path / "gated.onnx")
    compiled = compile_model(path, {"batch": (1, 2), "seq": (1, 8)}, work_dir=tmp_path / "records",
                             config=TuningConfig(max_candidates=3, candidate_source="hardware", shapes_per_kernel=2,
                                                 cap=2, close_calls=0, speed_points=0), show_progress=False)
    ops = sorted(e.ops for found in compiled.epilogues.values() for e in found)
    assert ops == ["add", "sigmoid_multiply_multiply"]  # the gate's (the other product a tensor input); the residual

    vm = relax.VirtualMachine(compiled.executable, tvm.cpu())
    rng = np.random.default_rng(2)
    for shape in [(1, 1, 32), (2, 8, 32), (2, 5, 32)]:
        x = rng.uniform(-2, 2, shape).astype("float32")
        g = x @ w["wg"]
        want = (g / (1 + np.exp(-g)) * (x @ w["wu"])) @ w["wd"] + x
        np.testing.assert_allclose(vm["main"](tvm.runtime.tensor(x)).numpy(), want, rtol=1e-4, atol=1e-4)


def test_a_sigmoid_outside_any_kernel_runs_through_exp():
    import tvm
    from tvm import relax
    from tvm.script import relax as R

    from tvm_morello.model.elementwise_forms import sigmoid_as_exp

    @tvm.script.ir_module
    class Sigmoid:
        @R.function
        def main(x: R.Tensor(("n", 8), "float32")):
            with R.dataflow():
                y = R.sigmoid(x)
                R.output(y)
            return y

    rewritten = sigmoid_as_exp(Sigmoid)
    ops = [str(call.op.name) for call in _calls(rewritten["main"])]
    assert "relax.sigmoid" not in ops and "relax.exp" in ops
    x = np.random.default_rng(0).uniform(-30, 30, (5, 8)).astype("float32")
    vm = relax.VirtualMachine(tvm.compile(rewritten, target="llvm"), tvm.cpu())
    np.testing.assert_allclose(vm["main"](tvm.runtime.tensor(x)).numpy(), 1 / (1 + np.exp(-x.astype("float64"))),
                               rtol=1e-6, atol=1e-7)
