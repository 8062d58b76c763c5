"""``x ** c`` for a whole constant c in 2..4 as multiplications: TVM lowers ``power`` to libm's ``powf``, which
LLVM calls once per lane and no epilogue runs (a GPT-2 block's tanh GELU, ``0.5 u (1 + tanh(a (u + b u ** 3)))``,
spent a third of the block's time in that one pass at batch 4, T = 64); as multiplications it vectorises and
fuses into the dense layer's write-back. LayerNorm written out (``Pow(x - mean, 2)``) gains the same way."""
from __future__ import annotations

from .matmul_calls import float32_constant, is_call

EXPONENTS = (2, 3, 4)


def _whole_exponent(expr, lookup, rank: int) -> int | None:
    """c when ``expr`` is a float32 constant c in ``EXPONENTS`` of one element and at most ``rank`` axes (more
    would broadcast the base to a higher rank)."""
    value = float32_constant(expr, lookup)
    if value is None or value.size != 1 or value.ndim > rank:
        return None
    exponent = float(value.reshape(()))
    return int(exponent) if exponent in EXPONENTS else None


def expand_integer_powers(mod):
    """``mod`` with every float32 ``R.power(x, c)`` of ``main`` whose exponent c is a scalar constant 2, 3 or 4
    written as ``x * x`` (3: ``x * x * x``, 4: ``(x * x) * (x * x)``); other powers are left as they are."""
    from tvm import relax

    @relax.expr_functor.mutator
    class Rewriter(relax.PyExprMutator):
        def visit_call_(self, call):
            call = self.visit_expr_post_order(call)
            if not is_call(call, "relax.power"):
                return call
            x = call.args[0]
            if not isinstance(x.ty, relax.TensorType) or x.ty.dtype != "float32" or x.ty.ndim < 0:
                return call
            exponent = _whole_exponent(call.args[1], self.lookup_binding, x.ty.ndim)
            if exponent is None:
                return call
            if exponent == 2:
                return relax.op.multiply(x, x)
            square = self.builder_.emit(relax.op.multiply(x, x))
            return relax.op.multiply(square, x if exponent == 3 else square)

    rewriter = Rewriter(mod)
    rewriter.builder_.update_func(mod.get_global_var("main"), rewriter.visit_expr(mod["main"]))
    return relax.transform.DeadCodeElimination()(rewriter.builder_.get())

