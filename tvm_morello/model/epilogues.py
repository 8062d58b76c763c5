"""The elementwise operators after each dense layer that its kernel can finish the output with: bias adds,
GELU (erf or tanh, written out or as one operator), SiLU, ReLU, residual adds, scaling.

A region grows from the matmul over later bindings of ``main``: an elementwise operator of the output's shape
that reads the region, its other operands constants (scalars, or one value per output column) or tensors of
the output's shape from outside the region. It is fused when only its last value is used outside it (trimmed
from the end until so): the fused call then replaces that binding, and the matmul and the steps before it are
left unused."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from ..spec.epilogue import MATMUL_OUTPUT, OPS, Epilogue, Operand, Step
from ..spec.symbolic import VarRange
from .matmul_calls import MatmulCall, find_matmul_call, float32_constant, tensor_dims


@dataclass(frozen=True, eq=False)
class FusedMatmul:
    """A dense layer and the epilogue its kernel runs; ``vectors`` (arrays) and ``tensors`` (Relax expressions
    of the model) are the epilogue's inputs in order; ``value`` is the binding the fused call replaces."""

    call: MatmulCall
    matmul: object  # relax.Call: the matmul
    value: object  # relax.Call: the last step's
    epilogue: Epilogue
    vectors: tuple[np.ndarray, ...]
    tensors: tuple[object, ...]


def _op_name(value) -> str | None:
    """The epilogue op ``value`` is a call of (``relax.add`` -> "add"), or None."""
    import tvm
    from tvm import relax

    if isinstance(value, relax.Call) and isinstance(value.op, tvm.ir.Op):
        namespace, _, name = str(value.op.name).partition(".")
        name = name.removeprefix("nn.")  # relax.nn.gelu, relu, silu: activations as single operators
        if namespace == "relax" and name in OPS:
            return name
    return None


def _same_shape(expr, shape) -> bool:
    import tvm_ffi

    dims = tensor_dims(expr)
    return dims is not None and len(dims) == len(shape) and all(
        tvm_ffi.structural_equal(a, b) for a, b in zip(dims, shape))


def _constant(expr, lookup, n: int):
    """("scalar", value) or ("vector", array of n) for a float32 constant broadcast along the last axis."""
    value = float32_constant(expr, lookup)
    if value is None:
        return None
    if value.size == 1:
        return "scalar", float(value.reshape(()))
    if value.ndim >= 1 and value.shape[-1] == n and value.size == n:
        return "vector", value.reshape(n)
    return None


def find_fused_matmuls(mod, ranges: Mapping[str, VarRange]) -> list[FusedMatmul]:
    """Every dense layer of ``mod``'s ``main`` with a non-empty epilogue region, in program order."""
    from tvm import relax

    func = mod["main"]
    bindings = [b for block in func.body.blocks for b in block.bindings]
    values = {b.var: b.value for b in bindings}
    users: dict = {}
    for position, binding in enumerate(bindings):
        for var in relax.analysis.free_vars(binding.value):
            users.setdefault(var, set()).add(position)
    outputs = set(relax.analysis.free_vars(func.body.body))

    found, claimed = [], set()
    for position, binding in enumerate(bindings):
        call = find_matmul_call(binding.value, values.get, ranges)
        if call is None or not call.workload.constant_b:
            continue
        region = _grow(bindings, position, call.workload.n, values.get)
        # a step two regions reach (Llama's SiLU(gate) * up) runs in the first one's kernel, the other
        # matmul's output its tensor input
        region = region[:next((i for i, p in enumerate(region) if p in claimed), len(region))]
        while len(region) > 1 and not _only_last_escapes(bindings, region, users, outputs):
            region.pop()
        if len(region) > 1:
            found.append(_fused(bindings, region, call, call.workload.n, values.get))
            claimed.update(region[1:])
    return found


def _grow(bindings, start: int, n: int, lookup) -> list[int]:
    """Positions of the matmul and of every later elementwise binding of its shape that reads the region and
    whose other operands are constants or tensors of that shape."""
    shape = list(bindings[start].var.ty.shape.values)
    region, inside = [start], {bindings[start].var}
    for position in range(start + 1, len(bindings)):
        binding = bindings[position]
        if _op_name(binding.value) is None or not _same_shape(binding.var, shape):
            continue
        args = binding.value.args
        if not any(arg in inside for arg in args):
            continue
        if all(arg in inside or _constant(arg, lookup, n) is not None or _same_shape(arg, shape) for arg in args):
            region.append(position)
            inside.add(binding.var)
    return region


def _only_last_escapes(bindings, region: list[int], users, outputs) -> bool:
    """Whether the region's values are used outside it only through its last one."""
    members = set(region)
    for position in region[:-1]:
        var = bindings[position].var
        if var in outputs or any(user not in members for user in users.get(var, ())):
            return False
    return True


def _fused(bindings, region: list[int], call: MatmulCall, n: int, lookup) -> FusedMatmul:
    step_of = {bindings[region[0]].var: MATMUL_OUTPUT}
    steps, vectors, tensors = [], [], []
    for position in region[1:]:
        binding = bindings[position]
        operands = []
        for arg in binding.value.args:
            if arg in step_of:
                operands.append(step_of[arg])
            elif (constant := _constant(arg, lookup, n)) is not None:
                kind, value = constant
                if kind == "scalar":
                    operands.append(Operand("scalar", value=value))
                else:
                    operands.append(Operand("vector", len(vectors)))
                    vectors.append(value)
            else:
                operands.append(Operand("tensor", len(tensors)))
                tensors.append(arg)
        steps.append(Step(_op_name(binding.value), tuple(operands)))
        step_of[binding.var] = Operand("step", len(steps) - 1)
    epilogue = Epilogue(tuple(steps), len(vectors), len(tensors))
    return FusedMatmul(call, bindings[region[0]].value, bindings[region[-1]].value, epilogue, tuple(vectors),
                       tuple(tensors))


def distinct_epilogues(fused) -> dict[str, tuple[Epilogue, ...]]:
    """Workload name -> its distinct epilogues (layers of one structure share a dispatcher), first seen first."""
    out: dict[str, dict] = {}
    for f in fused:
        out.setdefault(f.call.workload.name, {})[f.epilogue] = None
    return {name: tuple(epilogues) for name, epilogues in out.items()}
