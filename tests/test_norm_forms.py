"""Normalizations written out in elementary operators are recognised as R.nn.layer_norm / R.nn.rms_norm, their
constant scale and shift folded in, with the numbers of the written-out form."""
import tvm_morello  # noqa: F401  (before tvm)

import numpy as np

H = 16
RNG = np.random.default_rng(0)
GAMMA = RNG.uniform(0.5, 2, H).astype("float32")
BETA = RNG.uniform(-1, 1, (1, H)).astype("float32")
WEIGHT = RNG.uniform(0.5, 2, H).astype("float32")


def _module():
    import tvm
    from tvm.script import relax as R

    @tvm.script.ir_module
    class Norms:
        @R.function
        def main(x: R.Tensor(("n", H), "float32")):
            with R.dataflow():
                # GPT-2's LayerNorm at opset 14: x - mean, divided by the root of the mean square plus eps
                mean = R.mean(x, axis=[-1], keepdims=True)
                centred = R.subtract(x, mean)
                square = R.multiply(centred, centred)
                variance = R.mean(square, axis=[1], keepdims=True)
                shifted = R.add(variance, R.const(1e-5, "float32"))
                deviation = R.sqrt(shifted)
                normed = R.divide(centred, deviation)
                scaled = R.multiply(normed, R.const(GAMMA))
                layer = R.add(R.const(BETA), scaled)
                # the same times rsqrt, scaled by a scalar
                inverse = R.rsqrt(shifted)
                normed2 = R.multiply(inverse, centred)
                layer2 = R.multiply(normed2, R.const(2.0, "float32"))
                # Llama's RMSNorm: x times the reciprocal of the root mean square, then the weight
                x_square = R.multiply(x, x)
                mean_square = R.mean(x_square, axis=[-1], keepdims=True)
                plus_eps = R.add(R.const(1e-6, "float32"), mean_square)
                root = R.sqrt(plus_eps)
                reciprocal = R.divide(R.const(1.0, "float32"), root)
                rms = R.multiply(x, reciprocal)
                weighted = R.multiply(R.const(WEIGHT), rms)
                # divided by the root mean square, no weight
                rms2 = R.divide(x, root)
                # a mean over the rows is no normalization of each row: kept
                column_mean = R.mean(x_square, axis=[0], keepdims=True)
                column_root = R.sqrt(R.add(column_mean, R.const(1e-6, "float32")))
                kept = R.divide(x, column_root)
                # a shift of higher rank broadcasts the norm to that rank: not folded
                higher = R.add(normed2, R.const(np.ones((1, 1, H), "float32")))
                R.output(layer, layer2, weighted, rms2, kept, higher)
            return (layer, layer2, weighted, rms2, kept, higher)

    return Norms


def _ops(func) -> list[str]:
    from tvm import relax

    found = []
    relax.analysis.post_order_visit(func, lambda e: found.append(str(e.op.name)) if isinstance(e, relax.Call)
                                    and hasattr(e.op, "name") else None)
    return found


def test_written_out_norms_become_one_operator_each_with_the_same_numbers():
    import tvm
    from tvm import relax

    from tvm_morello.model.norm_forms import normalizations_as_operators

    written = _module()
    recognised = normalizations_as_operators(written)
    ops = _ops(recognised["main"])
    # layer_norm thrice: the rsqrt form's own stays for the shift of higher rank beside its scaled copy
    assert ops.count("relax.nn.layer_norm") == 3 and ops.count("relax.nn.rms_norm") == 2
    assert ops.count("relax.sqrt") == 1 and "relax.rsqrt" not in ops  # only the column mean's root is left
    assert ops.count("relax.multiply") == 1  # its x * x; every scale was folded into a norm
    assert ops.count("relax.add") == 2  # the column mean's eps and the shift of higher rank

    x = RNG.uniform(-3, 3, (5, H)).astype("float32") + 2.0
    centred = x - x.mean(-1, keepdims=True)
    layer = centred / np.sqrt((centred ** 2).mean(-1, keepdims=True) + 1e-5)
    rms = x / np.sqrt((x ** 2).mean(-1, keepdims=True) + 1e-6)
    expected = [layer * GAMMA + BETA, 2 * layer, rms * WEIGHT, rms, x / np.sqrt((x ** 2).mean(0) + 1e-6),
                (layer + 1)[None]]
    for mod in (written, recognised):
        vm = relax.VirtualMachine(tvm.compile(mod, target="llvm"), tvm.cpu())
        for got, want in zip(vm["main"](tvm.runtime.tensor(x)), expected):
            np.testing.assert_allclose(got.numpy(), want, rtol=2e-5, atol=2e-5)


def test_norm_kernels_make_no_row_sized_temporaries_and_match_numpy():
    """TVM's rms_norm copies the weight and the row and squares it in blocks of their own; scheduled, a norm
    keeps only one value per row (its sums, mean, inverse root) between its passes over the row."""
    import tvm
    from tvm import relax, tirx
    from tvm.script import relax as R

    from tvm_morello.model.build import schedule_operators
    from tvm_morello.target import resolve_target

    @tvm.script.ir_module
    class Norms:
        @R.function
        def main(x: R.Tensor(("n", H), "float32"), w: R.Tensor((H,), "float32"), b: R.Tensor((H,), "float32")):
            with R.dataflow():
                rms = R.nn.rms_norm(x, w, axes=[-1], epsilon=1e-6)
                layer = R.nn.layer_norm(x, w, b, axes=[-1], epsilon=1e-5)
                R.output(rms, layer)
            return (rms, layer)

    target = resolve_target(None)
    scheduled = schedule_operators(Norms, target)
    kernels = {gv.name_hint: f for gv, f in scheduled.functions.items() if isinstance(f, tirx.PrimFunc)}
    assert set(kernels) == {"rms_norm", "layer_norm"}
    for func in kernels.values():
        temporaries = func.body.block.alloc_buffers  # the root block's: where the schedule leaves them
        assert temporaries and all(len(buffer.shape) == 1 for buffer in temporaries), func.script()

    vm = relax.VirtualMachine(tvm.compile(scheduled, target=target.tvm_target(reassociate=True)), tvm.cpu())
    for rows in (1, 7, 64):
        x = RNG.uniform(-3, 3, (rows, H)).astype("float32") + 1.0
        rms, layer = vm["main"](*(tvm.runtime.tensor(a) for a in (x, WEIGHT, GAMMA)))
        centred = x - x.mean(-1, keepdims=True)
        np.testing.assert_allclose(rms.numpy(), x / np.sqrt((x ** 2).mean(-1, keepdims=True) + 1e-6) * WEIGHT,
                                   rtol=2e-5, atol=2e-5)
        np.testing.assert_allclose(layer.numpy(), centred / np.sqrt((centred ** 2).mean(-1, keepdims=True) + 1e-5)
                                   * WEIGHT + GAMMA, rtol=2e-5, atol=2e-5)
