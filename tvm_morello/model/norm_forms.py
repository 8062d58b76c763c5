"""Normalizations written out in elementary operators, recognised as the one Relax operator they compute.

An exporter older than ONNX's LayerNormalization (GPT-2 at opset 14) writes LayerNorm as ReduceMean, Sub, Pow,
ReduceMean, Add, Sqrt, Div, Mul, Add, and Llama's RMSNorm comes as Pow, ReduceMean, Add, Sqrt, Reciprocal, Mul,
Mul. TVM fuses those into three or four kernels, each a pass over the rows; as ``R.nn.layer_norm`` /
``R.nn.rms_norm`` they are one row kernel, the constant scale and shift that follow folded into its gamma and beta.
A GPT-2 block's two LayerNorms at batch 4, T = 64, hidden 256 took 84 us so, 25 us as one kernel each (4% -> 1% of
the block, Zen 4)."""
from __future__ import annotations

import numpy as np

from .matmul_calls import bound_value, float32_constant, float32_scalar, is_call
from .rewrite import rewrite_main


def _last_axis_mean(expr, lookup):
    """x when ``expr`` is ``R.mean(x, axis=[-1], keepdims=True)`` (or the last axis by number)."""
    mean = bound_value(expr, lookup)
    if not is_call(mean, "relax.mean") or not mean.attrs.keepdims or mean.attrs.axis is None:
        return None
    x = mean.args[0]
    return x if [int(axis) for axis in mean.attrs.axis] in ([-1], [x.ty.ndim - 1]) else None


def _mean_square_plus_eps(expr, lookup):
    """(u, eps) when ``expr`` is ``mean(u * u) + eps`` over the last axis, eps a scalar constant."""
    total = bound_value(expr, lookup)
    if not is_call(total, "relax.add"):
        return None
    for mean, eps in (total.args, total.args[::-1]):
        square = bound_value(_last_axis_mean(mean, lookup), lookup)
        epsilon = float32_scalar(eps, lookup)
        if epsilon is not None and is_call(square, "relax.multiply") and square.args[0].same_as(square.args[1]):
            return square.args[0], epsilon
    return None


def _root(expr, lookup):
    """(u, eps) when ``expr`` is ``sqrt(mean(u * u) + eps)``."""
    root = bound_value(expr, lookup)
    return _mean_square_plus_eps(root.args[0], lookup) if is_call(root, "relax.sqrt") else None


def _inverse_root(expr, lookup):
    """(u, eps) when ``expr`` is ``1 / sqrt(mean(u * u) + eps)`` or ``rsqrt(mean(u * u) + eps)``."""
    inverse = bound_value(expr, lookup)
    if is_call(inverse, "relax.divide") and float32_scalar(inverse.args[0], lookup) == 1.0:
        return _root(inverse.args[1], lookup)
    return _mean_square_plus_eps(inverse.args[0], lookup) if is_call(inverse, "relax.rsqrt") else None


def _width(x) -> int | None:
    """The static extent of float32 ``x``'s last axis (None for another dtype or a symbolic extent)."""
    from tvm import relax, tirx

    ty = x.ty
    if not isinstance(ty, relax.TensorType) or ty.dtype != "float32" or ty.shape is None or ty.ndim < 1:
        return None
    last = ty.shape.values[-1]
    return int(last.value) if isinstance(last, tirx.IntImm) else None


def _normalized(u, eps: float, lookup):
    """``u / sqrt(mean(u * u) + eps)`` as one operator: a layer norm of x when u is ``x - mean(x)``, else an RMS
    norm of u (None when the last axis is not a static float32 one)."""
    from tvm import relax

    width = _width(u)
    if width is None:
        return None
    ones = relax.const(np.ones(width, "float32"))
    centred = bound_value(u, lookup)
    if is_call(centred, "relax.subtract"):
        x, mean = centred.args
        if x.same_as(_last_axis_mean(mean, lookup)):
            return relax.op.nn.layer_norm(x, ones, relax.const(np.zeros(width, "float32")), axes=[-1], epsilon=eps)
    return relax.op.nn.rms_norm(u, ones, axes=[-1], epsilon=eps)


def _per_column(expr, lookup, width: int, rank: int) -> np.ndarray | None:
    """A float32 constant that broadcasts along the last axis only of a tensor of ``rank`` axes (a scalar, or
    ``width`` values on the last axis, ones before), as ``width`` values."""
    value = float32_constant(expr, lookup)
    if value is None or value.ndim > rank or any(extent != 1 for extent in value.shape[:-1]) \
            or value.size not in (1, width):
        return None
    return np.broadcast_to(value.reshape(-1), (width,)).astype("float32")


def _folded(call, lookup):
    """``norm * c`` or ``layer_norm + c`` (c a constant per column) as the norm with c folded into gamma / beta."""
    from tvm import relax

    scale = is_call(call, "relax.multiply")
    if not scale and not is_call(call, "relax.add"):
        return None
    for norm_var, constant in (call.args, call.args[::-1]):
        norm = bound_value(norm_var, lookup)
        layer = is_call(norm, "relax.nn.layer_norm")
        if not (layer or (scale and is_call(norm, "relax.nn.rms_norm"))) or [int(a) for a in norm.attrs.axes] != [-1]:
            continue
        data = norm.args[0]
        width = _width(data)
        c = None if width is None else _per_column(constant, lookup, width, data.ty.ndim)
        gamma = float32_constant(norm.args[1], lookup)
        beta = float32_constant(norm.args[2], lookup) if layer else None
        if c is None or gamma is None or (layer and beta is None):
            continue
        if not layer:
            return relax.op.nn.rms_norm(data, relax.const(gamma * c), axes=[-1], epsilon=norm.attrs.epsilon)
        gamma, beta = (gamma * c, beta * c) if scale else (gamma, beta + c)
        return relax.op.nn.layer_norm(data, relax.const(gamma), relax.const(beta), axes=[-1],
                                      epsilon=norm.attrs.epsilon)
    return None


def _recognise(call, builder, lookup):
    if is_call(call, "relax.divide"):
        found = _root(call.args[1], lookup)
        if found is not None and found[0].same_as(call.args[0]):
            return _normalized(found[0], found[1], lookup)
    if is_call(call, "relax.multiply"):
        for u, inverse in (call.args, call.args[::-1]):
            found = _inverse_root(inverse, lookup)
            if found is not None and found[0].same_as(u):
                return _normalized(u, found[1], lookup)
    return _folded(call, lookup)


def normalizations_as_operators(mod):
    """``mod`` with every float32 LayerNorm and RMSNorm over the last axis of ``main`` written out in elementary
    operators (see the module) replaced by ``R.nn.layer_norm`` / ``R.nn.rms_norm``; a constant scale (and, for a
    layer norm, shift) per column that follows is folded into the operator."""
    return rewrite_main(mod, _recognise)
