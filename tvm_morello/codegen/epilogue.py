"""An epilogue as TE stages after the matmul's output; the kernel schedule inlines them into the register tile's
write-back, so the output is written once, finished."""
from __future__ import annotations

from ..spec.epilogue import UNARY, Epilogue


def _unary(op: str, x):
    """``op`` of ``x`` in the polynomial forms TVM vectorises (as the model's other operators get from
    FastMathTransform): LLVM calls libm's erf, tanh and exp once per lane, and topi's sigmoid is libm's exp. GELU
    and SiLU as Relax legalizes them."""
    import math

    from tvm import topi

    if op in ("sigmoid", "silu"):
        sigmoid = topi.divide(1.0, topi.add(1.0, topi.fast_exp(topi.negative(x))))
        return sigmoid if op == "sigmoid" else topi.multiply(x, sigmoid)
    if op == "gelu":  # x (1 + erf(x / sqrt 2)) / 2
        return topi.multiply(x, topi.add(0.5, topi.multiply(topi.fast_erf(topi.multiply(x, math.sqrt(0.5))), 0.5)))
    if op == "gelu_tanh":  # x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3))) / 2
        cubic = topi.add(x, topi.multiply(0.044715, topi.multiply(x, topi.multiply(x, x))))
        inner = topi.fast_tanh(topi.multiply(math.sqrt(2 / math.pi), cubic))
        return topi.multiply(topi.multiply(0.5, x), topi.add(1.0, inner))
    return {"erf": topi.fast_erf, "tanh": topi.fast_tanh, "exp": topi.fast_exp, "relu": topi.nn.relu}[op](x)


def epilogue_inputs(epilogue: Epilogue, shape: tuple, dtype: str = "float32") -> tuple[list, list]:
    """Placeholders of the epilogue's vector inputs ([n]: ``shape``'s last extent) and tensor inputs (``shape``)."""
    from tvm import te

    vectors = [te.placeholder((shape[-1],), dtype, name=f"V{i}") for i in range(epilogue.vectors)]
    tensors = [te.placeholder(shape, dtype, name=f"R{i}") for i in range(epilogue.tensors)]
    return vectors, tensors


def apply_epilogue(epilogue: Epilogue, output, vectors: list, tensors: list):
    """The epilogue's last step as a TE tensor, computed from ``output`` (the matmul's, as a TE tensor)."""
    from tvm import tirx, topi

    results: list = []

    def value(arg):
        if arg.kind == "step":
            return output if arg.index < 0 else results[arg.index]
        if arg.kind == "scalar":
            return tirx.const(arg.value, output.dtype)
        return (vectors if arg.kind == "vector" else tensors)[arg.index]

    for step in epilogue.steps:
        args = [value(arg) for arg in step.args]
        results.append(_unary(step.op, *args) if step.op in UNARY else getattr(topi, step.op)(*args))
    return results[-1]
