"""The softmax kernel (any rows and row length, the scaling before it folded in) and the model rewrite that calls
it: numbers against numpy, which softmaxes and scalings it takes and which it leaves to TVM."""
import numpy as np
import pytest

from tvm_morello.codegen.softmax import softmax_rows_func


def numpy_softmax(x, scale=1.0, axis=-1):
    """In float64: float32's own rounding of scale * x (1e-5 relative at |scale * x| = 120) is not the reference."""
    z = x.astype(np.float64) * scale
    e = np.exp(z - z.max(axis, keepdims=True))
    return (e / e.sum(axis, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("lanes", [8, 16])
@pytest.mark.parametrize("scale", [1.0, 0.125, 3.0])
def test_kernel_matches_numpy_on_whole_vectors_and_tails(host, lanes, scale):
    import tvm

    func = softmax_rows_func(lanes, scale).with_attr("global_symbol", "main")
    kernel = tvm.compile(tvm.IRModule({"main": func}), target=host.tvm_target()).mod["main"]
    rng = np.random.default_rng(0)
    for rows, n in [(1, 1), (3, 7), (17, 16), (5, 37), (40, 128), (2, 300)]:
        x = rng.uniform(-40, 40, (rows, n)).astype("float32")
        out = tvm.runtime.empty((rows, n), "float32", tvm.cpu())
        kernel(tvm.runtime.tensor(x), out)
        np.testing.assert_allclose(out.numpy(), numpy_softmax(x, scale), rtol=2e-6, atol=1e-7)


@pytest.mark.parametrize("scale", [0.0, -1.0, float("inf"), float("nan")])
def test_kernel_rejects_a_scale_that_is_not_positive(scale):
    with pytest.raises(ValueError, match="positive finite"):
        softmax_rows_func(16, scale)


def _softmax_module(scaling, axis=-1):
    """main(x[b, 12, T, T]) = softmax(scaling(x), axis), b and T symbolic."""
    from tvm import relax, tirx

    bb = relax.BlockBuilder()
    b, t = tirx.Var("b", "int64"), tirx.Var("T", "int64")
    x = relax.Var("x", relax.TensorType((b, 12, t, t), "float32"))
    with bb.function("main", [x]):
        with bb.dataflow():
            scaled = bb.emit(scaling(x)) if scaling else x
            probs = bb.emit(relax.op.nn.softmax(scaled, axis=axis))
            out = bb.emit_output(relax.op.add(probs, probs))  # a consumer, as attention's probs·V is
        bb.emit_func_output(out)
    return bb.get()


def _by(op_name, c):
    """x -> op(x, c) for a float32 scalar constant c (``op_name``: "multiply" or "divide")."""
    def scaling(x):
        from tvm import relax

        return getattr(relax.op, op_name)(x, relax.const(c, "float32"))
    return scaling


@pytest.mark.parametrize("scaling, scale, folded", [
    (_by("multiply", 0.125), 0.125, True),
    (_by("divide", 8.0), 0.125, True),
    (None, 1.0, True),
    (_by("multiply", -0.5), -0.5, False),  # a negative scale flips which element is the row's maximum: not folded
])
def test_model_softmax_calls_the_kernel_with_its_scaling_folded(host, scaling, scale, folded):
    import tvm
    from tvm import relax

    from tvm_morello.model.build import schedule_operators

    mod = schedule_operators(_softmax_module(scaling), host)
    names = {gv.name_hint for gv in mod.functions}
    assert any(name.startswith("softmax_rows") for name in names)
    assert folded == (not names & {"multiply", "divide"})
    vm = relax.VirtualMachine(tvm.compile(mod, target=host.tvm_target(reassociate=True)), tvm.cpu())
    for shape in [(1, 12, 1, 1), (2, 12, 7, 7), (1, 12, 33, 33)]:
        x = np.random.default_rng(1).uniform(-20, 20, shape).astype("float32")
        np.testing.assert_allclose(vm["main"](tvm.runtime.tensor(x)).numpy(), 2 * numpy_softmax(x, scale),
                                   rtol=2e-6, atol=1e-7)


def test_softmax_over_another_axis_is_left_to_tvm(host):
    import tvm
    from tvm import relax

    from tvm_morello.model.build import schedule_operators

    mod = schedule_operators(_softmax_module(None, axis=1), host)
    assert not any(gv.name_hint.startswith("softmax_rows") for gv in mod.functions)
    vm = relax.VirtualMachine(tvm.compile(mod, target=host.tvm_target(reassociate=True)), tvm.cpu())
    x = np.random.default_rng(2).uniform(-5, 5, (2, 12, 5, 5)).astype("float32")
    np.testing.assert_allclose(vm["main"](tvm.runtime.tensor(x)).numpy(), 2 * numpy_softmax(x, axis=1),
                               rtol=1e-5, atol=1e-6)


def test_model_softmax_vectors_are_the_named_targets_width(cpu):
    """The kernel a model's softmax calls works in the target's vectors (8 lanes on AVX2, 16 on AVX-512)."""
    import re

    from tvm_morello.model.build import schedule_operators

    mod = schedule_operators(_softmax_module(_by("multiply", 0.125)), cpu)
    (kernel,) = [func for gv, func in mod.functions.items() if gv.name_hint.startswith("softmax_rows")]
    widths = re.findall(r"T\.vectorized\(T\.int64\((\d+)\)", kernel.script())
    assert widths and set(widths) == {str(cpu.lanes())}
