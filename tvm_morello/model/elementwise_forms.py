"""Elementwise operators rewritten into the forms TVM vectorises, before the model is split into kernels.

``x ** c`` for a whole constant c in 2..4 becomes multiplications: TVM lowers ``power`` to libm's ``powf``, which
LLVM calls once per lane and no epilogue runs (a GPT-2 block's tanh GELU, ``0.5 u (1 + tanh(a (u + b u ** 3)))``,
spent a third of the block's time in that one pass at batch 4, T = 64); as multiplications it vectorises and
fuses into the dense layer's write-back. ``sigmoid`` left outside an epilogue becomes ``1 / (1 + exp(-x))``, whose
exp ``FastMathTransform`` turns into the polynomial TVM vectorises (TVM's sigmoid calls libm's exp per lane)."""
from __future__ import annotations

from .matmul_calls import float32_constant, is_call
from .rewrite import rewrite_main

EXPONENTS = (2, 3, 4)


def _float32_tensor(expr) -> bool:
    from tvm import relax

    return isinstance(expr.ty, relax.TensorType) and expr.ty.dtype == "float32" and expr.ty.ndim >= 0


def _whole_exponent(expr, lookup, rank: int) -> int | None:
    """c when ``expr`` is a float32 constant c in ``EXPONENTS`` of one element and at most ``rank`` axes (more
    would broadcast the base to a higher rank)."""
    value = float32_constant(expr, lookup)
    if value is None or value.size != 1 or value.ndim > rank:
        return None
    exponent = float(value.reshape(()))
    return int(exponent) if exponent in EXPONENTS else None


def _power_as_products(call, builder, lookup):
    from tvm import relax

    if not is_call(call, "relax.power") or not _float32_tensor(call.args[0]):
        return None
    x = call.args[0]
    exponent = _whole_exponent(call.args[1], lookup, x.ty.ndim)
    if exponent is None:
        return None
    if exponent == 2:
        return relax.op.multiply(x, x)
    square = builder.emit(relax.op.multiply(x, x))
    return relax.op.multiply(square, x if exponent == 3 else square)


def expand_integer_powers(mod):
    """``mod`` with every float32 ``R.power(x, c)`` of ``main`` whose exponent c is a scalar constant 2, 3 or 4
    written as ``x * x`` (3: ``x * x * x``, 4: ``(x * x) * (x * x)``); other powers are left as they are."""
    return rewrite_main(mod, _power_as_products)


def _sigmoid_as_exp(call, builder, lookup):
    from tvm import relax

    if not is_call(call, "relax.sigmoid") or not _float32_tensor(call.args[0]):
        return None
    x = call.args[0]
    one = relax.const(1.0, "float32")
    return relax.op.divide(one, relax.op.add(one, builder.emit(relax.op.exp(builder.emit(relax.op.negative(x))))))


def sigmoid_as_exp(mod):
    """``mod`` with every float32 ``R.sigmoid(x)`` of ``main`` written as ``1 / (1 + exp(-x))``."""
    return rewrite_main(mod, _sigmoid_as_exp)
