"""The model's softmaxes over their last axis replaced by calls of ``codegen.softmax``'s kernel, each on its input
viewed as [rows, n]; a positive scalar scaling just before it (attention's scores times 1/sqrt(d), or divided by
sqrt(d)) is folded into the kernel instead of running as a pass of its own."""
from __future__ import annotations

import math

from ..codegen.softmax import softmax_rows_func
from .matmul_calls import bound_value, float32_scalar, is_call
from .rewrite import rewrite_main


def _positive_scalar(expr, lookup) -> float | None:
    scalar = float32_scalar(expr, lookup)
    return scalar if scalar is not None and scalar > 0 and math.isfinite(scalar) else None


def _scaled_input(expr, lookup) -> tuple[object, float]:
    """(x, s) when ``expr`` is x * s or x / (1 / s) with s a positive scalar constant (and x of ``expr``'s
    shape), else (expr, 1)."""
    import tvm_ffi

    bound = bound_value(expr, lookup)
    multiply = is_call(bound, "relax.multiply")
    if multiply or is_call(bound, "relax.divide"):
        x, c = bound.args
        scalar = _positive_scalar(c, lookup)
        if scalar is not None and tvm_ffi.structural_equal(x.ty.shape, expr.ty.shape):
            return x, scalar if multiply else 1 / scalar
    return expr, 1.0


def replace_softmax_calls(mod, lanes: int):
    """``mod`` with every float32 ``R.nn.softmax`` over the last axis of ``main`` calling the vectorised kernel
    (one PrimFunc per distinct folded scale); other softmaxes are left to TVM's lowering."""
    from tvm import relax

    kernels: dict[float, object] = {}

    def call_kernel(call, builder, lookup):
        if not is_call(call, "relax.nn.softmax"):
            return None
        x = call.args[0]
        ty = x.ty
        if ty.dtype != "float32" or ty.shape is None or int(call.attrs.axis) not in (-1, len(ty.shape.values) - 1):
            return None
        source, scale = _scaled_input(x, lookup)
        if scale not in kernels:
            kernels[scale] = builder.add_func(softmax_rows_func(lanes, scale), f"softmax_rows_{len(kernels)}")
        dims = list(ty.shape.values)
        flat_shape = [math.prod(dims[:-1], start=1), dims[-1]]  # rows: a PrimExpr of the model's dimensions
        flat = builder.emit(relax.op.reshape(source, relax.ShapeExpr(flat_shape)))
        out = builder.emit(relax.call_tir(kernels[scale], [flat], relax.TensorType(flat_shape, "float32")))
        return relax.op.reshape(out, relax.ShapeExpr(dims))

    return rewrite_main(mod, call_kernel)
