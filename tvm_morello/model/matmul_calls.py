"""The model's matmuls, found before legalization and replaced by calls of the dispatchers tuned for them.

Two kinds: a dense layer, ``R.matmul`` of an activation by a constant weight stored [k, n] (ONNX MatMul) or
transposed ([n, k] behind ``permute_dims``, as ONNX Gemm and PyTorch's Linear export it), over m = the product of
the activation's leading dimensions (batch * seq), its weight packed into panels once, at compile time; and a
batched matmul of two activations (attention's QKᵀ and probs·V), over a batch = the product of the leading
dimensions (batch * heads), with m, k, n static or one of the model's dimensions. Each gets a DynamicWorkload whose
ranges and distribution follow from the model's dimension ranges; identical workloads share one plan. A batched
matmul whose B is ``permute_dims`` of a tensor whose innermost axis becomes k (attention's Kᵀ) reads B as [n, k]
rows instead, the layout the dot-form kernels take: the permutation is replaced by one that keeps k innermost
(none when the tensor already is [..., n, k])."""
from __future__ import annotations

import itertools
import math
from collections import Counter
from dataclasses import dataclass, replace
from typing import Mapping, Sequence

import numpy as np

from ..codegen.panels import pack_panels_array
from ..dynamic.plan import OperatorPlan
from ..spec.symbolic import DynamicWorkload, VarRange

M_VAR, BATCH_VAR = "m", "nbatch"  # the dispatchers' own variables: dense rows, batched matrices


@dataclass(frozen=True)
class MatmulCall:
    """One matmul of the model: its workload and, for a dense layer, its weight as stored."""

    workload: DynamicWorkload
    weight: np.ndarray | None = None
    b_axes: tuple[int, ...] | None = None  # B read as [..., n, k]: permute_dims(B's source, b_axes)


def is_call(expr, op_name: str) -> bool:
    """Whether ``expr`` is a call of the Relax operator ``op_name`` (e.g. "relax.matmul")."""
    import tvm
    from tvm import relax

    return isinstance(expr, relax.Call) and expr.op == tvm.ir.Op.get(op_name)


def bound_value(expr, lookup):
    """The expression a variable is bound to (``lookup`` gives it, or None for a parameter); any other
    expression itself."""
    from tvm import relax

    return lookup(expr) if isinstance(expr, relax.Var) else expr


def float32_constant(expr, lookup) -> np.ndarray | None:
    """The value of ``expr`` when it is a float32 constant, or a variable bound to one (``lookup`` gives the
    value a variable is bound to, or None)."""
    import tvm

    expr = bound_value(expr, lookup)
    if not isinstance(expr, tvm.ir.expr.GenericConst):
        return None
    value = expr.value.numpy()
    return value if value.dtype == np.float32 else None


def float32_scalar(expr, lookup) -> float | None:
    """The value of ``expr`` when it is a one-element float32 constant (of any rank), or a variable bound to one."""
    value = float32_constant(expr, lookup)
    return None if value is None or value.size != 1 else float(value.reshape(()))


def _constant_weight(expr, lookup) -> tuple[np.ndarray, bool] | None:
    """(weight as stored, stored transposed) when ``expr`` is a 2-D float32 constant or its transpose
    (``lookup`` gives the value a variable is bound to, or None)."""
    expr = bound_value(expr, lookup)
    value = float32_constant(expr, lookup)
    if value is not None:
        return (value, False) if value.ndim == 2 else None
    if is_call(expr, "relax.permute_dims"):
        inner = _constant_weight(expr.args[0], lookup)
        axes = expr.attrs.axes
        if inner is not None and not inner[1] and (axes is None or [int(a) for a in axes] == [1, 0]):
            return inner[0], True
    return None


def product_range(dims, ranges: Mapping[str, VarRange]) -> VarRange | None:
    """The range of the product of ``dims`` (ints and model dimensions) over the model's ranges, its sample
    weighted by how many assignments give each value; None when a dimension is any other expression."""
    from tvm import tirx

    static, names = 1, []
    for dim in dims:
        if isinstance(dim, tirx.IntImm):
            static *= int(dim)
        elif isinstance(dim, tirx.Var) and dim.name in ranges:
            names.append(dim.name)
        else:
            return None
    counts = Counter(static * math.prod(values)
                     for values in itertools.product(*[ranges[name].values() for name in names]))
    return _weighted(counts)


def _weighted(counts: Counter) -> VarRange:
    sample = tuple(sorted(counts))
    return VarRange(sample[0], sample[-1], sample, tuple(float(counts[v]) for v in sample))


def _dim(expr, ranges):
    """A workload dimension from a Relax extent: an int, a model dimension's name, or None."""
    from tvm import tirx

    if isinstance(expr, tirx.IntImm):
        return int(expr)
    if isinstance(expr, tirx.Var) and expr.name in ranges:
        return expr.name
    return None


def tensor_dims(expr):
    """The dimensions of ``expr`` when it is a float32 tensor of known shape and rank 2 or more, else None."""
    from tvm import relax

    info = expr.ty
    if isinstance(info, relax.TensorType) and str(info.dtype) == "float32" and info.shape is not None \
            and info.ndim >= 2:
        return list(info.shape.values)
    return None


def find_matmul_call(value, lookup, ranges: Mapping[str, VarRange]) -> MatmulCall | None:
    """The MatmulCall ``value`` (a bound Relax expression) is, or None."""
    if not is_call(value, "relax.matmul"):
        return None
    lhs = tensor_dims(value.args[0])
    if lhs is None:
        return None
    weight = _constant_weight(value.args[1], lookup)
    if weight is not None:
        return _dense(lhs, *weight, ranges)
    transposed = _transposed_source(value.args[1], lookup)
    if transposed is not None:
        call = _batched(lhs, *transposed, ranges)
        if call is not None:
            return call
    rhs = tensor_dims(value.args[1])
    return _batched(lhs, rhs, None, ranges) if rhs is not None else None


def _transposed_source(expr, lookup) -> tuple[list, tuple[int, ...]] | None:
    """(B's dimensions as [..., n, k], the permutation of B's source that gives them) when ``expr`` is
    ``permute_dims(source, axes)`` that makes the source's innermost axis B's k (attention's Kᵀ; probs·V's V
    keeps its rows and is left alone); the permutation is the identity when ``axes`` only swaps the last two."""
    expr = bound_value(expr, lookup)
    if not is_call(expr, "relax.permute_dims") or expr.attrs.axes is None:
        return None
    source = tensor_dims(expr.args[0])
    axes = [int(a) for a in expr.attrs.axes]
    if source is None or len(axes) < 3 or axes[-2] != len(axes) - 1:
        return None
    b_axes = tuple(axes[:-2] + [axes[-1], axes[-2]])
    return [source[a] for a in b_axes], b_axes


def _dense(lhs, stored, transpose_b: bool, ranges) -> MatmulCall | None:
    n, k = stored.shape if transpose_b else stored.shape[::-1]
    *leading, x_k = lhs
    rng = product_range(leading, ranges)
    if _dim(x_k, ranges) != k or rng is None:
        return None
    name = f"dense_{k}x{n}{'_t' if transpose_b else ''}"
    workload = DynamicWorkload(name, 0, M_VAR, k, n, ((M_VAR, rng),), transpose_b=transpose_b, constant_b=True)
    return MatmulCall(workload, stored)


def _batched(lhs, rhs, b_axes, ranges) -> MatmulCall | None:
    """A[..., m, k] @ B[..., k, n] with equal leading dimensions: a batch_matmul over their product; with
    ``b_axes`` (B's source permuted by them), ``rhs`` is B's [..., n, k] form."""
    import tvm
    import tvm_ffi

    if len(lhs) != len(rhs) or len(lhs) < 3:
        return None
    leading = lhs[:-2]
    if any(not tvm_ffi.structural_equal(a, b) for a, b in zip(leading, rhs[:-2])):
        return None
    transpose_b = b_axes is not None
    rhs_k, rhs_n = (rhs[-1], rhs[-2]) if transpose_b else (rhs[-2], rhs[-1])
    m, k, n = (_dim(d, ranges) for d in (lhs[-2], lhs[-1], rhs_n))
    if None in (m, k, n) or not isinstance(m, str) or _dim(rhs_k, ranges) != k:
        return None
    batch = product_range(leading, ranges)
    if batch is None or any(isinstance(d, tvm.tirx.Var) and d.name in (m, k, n) for d in leading):
        return None
    own = {d: ranges[d] for d in (m, k, n) if isinstance(d, str)}
    name = f"bmm_{m}x{k}x{n}{'_t' if transpose_b else ''}"
    return MatmulCall(DynamicWorkload(name, BATCH_VAR, m, k, n, tuple(sorted({BATCH_VAR: batch, **own}.items())),
                                      transpose_b=transpose_b), b_axes=b_axes)


def find_matmul_calls(mod, ranges: Mapping[str, VarRange]) -> list[MatmulCall]:
    """Every matmul of ``mod``'s ``main`` that a workload expresses, in program order."""
    found, bindings = [], {}
    for block in mod["main"].body.blocks:
        for binding in block.bindings:
            bindings[binding.var] = binding.value
            call = find_matmul_call(binding.value, bindings.get, ranges)
            if call is not None:
                found.append(call)
    return found


def merge_workloads(calls: list[MatmulCall]) -> list[DynamicWorkload]:
    """One workload per distinct name (shape and layout), each variable's distribution the sum of its calls'."""
    merged: dict[str, list[DynamicWorkload]] = {}
    for call in calls:
        merged.setdefault(call.workload.name, []).append(call.workload)
    out = []
    for group in merged.values():
        ranges = []
        for name in group[0].var_names:
            counts: Counter = Counter()
            for wl in group:
                rng = wl.range_of(name)
                counts.update(dict(zip(rng.values(), rng.value_weights())))
            ranges.append((name, _weighted(counts)))
        out.append(replace(group[0], ranges=tuple(ranges)))
    return out


def replace_matmul_calls(mod, ranges: Mapping[str, VarRange], plans: Sequence[OperatorPlan],
                         fused: Sequence = ()):
    """``mod`` with each matmul whose workload has a plan calling the plan's dispatcher on operands reshaped to
    its [b?, m, k] form; each of ``fused`` (``epilogues.FusedMatmul``) calls instead the dispatcher whose kernels
    run its epilogue, in place of the epilogue's last binding (the matmul and the steps before, left unused, are
    removed)."""
    from tvm import relax

    by_name = {plan.workload.name: plan for plan in plans}
    fused_at = {f.value: f for f in fused if f.call.workload.name in by_name}
    fused_matmuls = {f.matmul for f in fused_at.values()}

    @relax.expr_functor.mutator
    class Rewriter(relax.PyExprMutator):
        def visit_call_(self, call):
            if call in fused_at:
                return self._fused_call(fused_at[call], call)
            skip = call in fused_matmuls
            call = self.visit_expr_post_order(call)
            found = None if skip else find_matmul_call(call, self.lookup_binding, ranges)
            if found is None or found.workload.name not in by_name:
                return call
            plan, (lhs, rhs) = by_name[found.workload.name], call.args
            wl, dims = found.workload, list(lhs.ty.shape.values)
            if wl.constant_b:
                args = self._dense_args(lhs, found, plan)
                return self._call(plan.dispatcher_for(None, len(dims)), args, [*dims[:-1], wl.n], call)
            else:
                rhs = self._b_operand(rhs, found.b_axes)
                rhs_dims = list(rhs.ty.shape.values)
                batch = math.prod(dims[1:-2], start=dims[0])
                args = [self._with_shape(lhs, [batch, *dims[-2:]]), self._with_shape(rhs, [batch, *rhs_dims[-2:]])]
                out_shape = [batch, dims[-2], rhs_dims[-2] if wl.transpose_b else rhs_dims[-1]]
            return self._call(plan.dispatcher, args, out_shape, call)

        def _b_operand(self, rhs, b_axes):
            """B as the kernels read it: ``rhs`` itself, or its permutation's source permuted by ``b_axes``."""
            if b_axes is None:
                return rhs
            source = bound_value(rhs, self.lookup_binding).args[0]
            if list(b_axes) == list(range(len(b_axes))):
                return source
            return self.builder_.emit(relax.op.permute_dims(source, list(b_axes)))

        def _dense_args(self, lhs, found: MatmulCall, plan):
            """[activation as the model holds it, packed weight]: a dense layer's dispatcher of the activation's
            rank merges its leading dimensions into m itself."""
            packed = pack_panels_array(found.weight, plan.panel, transpose_b=found.workload.transpose_b)
            return [lhs, relax.const(packed)]

        def _fused_call(self, fused, original):
            plan, wl = by_name[fused.call.workload.name], fused.call.workload
            lhs = self.visit_expr(fused.matmul.args[0])
            out_shape = [*lhs.ty.shape.values[:-1], wl.n]
            args = self._dense_args(lhs, fused.call, plan) + [relax.const(vector) for vector in fused.vectors]
            args += [self._with_shape(self.visit_expr(tensor), out_shape) for tensor in fused.tensors]
            return self._call(plan.dispatcher_for(fused.epilogue, len(out_shape)), args, out_shape, original)

        def _call(self, symbol, args, out_shape, original):
            """The dispatcher's call, viewed in ``original``'s shape."""
            out = relax.call_dps_packed(relax.ExternFunc(symbol), args, relax.TensorType(out_shape, "float32"))
            shape = list(original.ty.shape.values)
            if len(shape) == len(out_shape):
                return out
            return relax.op.reshape(self.builder_.emit(out), relax.ShapeExpr(shape))

        def _with_shape(self, expr, shape):
            """``expr`` viewed as ``shape`` (leading dimensions merged; a reshape of a dense tensor is a view)."""
            if len(expr.ty.shape.values) == len(shape):
                return expr
            return self.builder_.emit(relax.op.reshape(expr, relax.ShapeExpr(shape)))

    rewriter = Rewriter(mod)
    rewriter.builder_.update_func(mod.get_global_var("main"), rewriter.visit_expr(mod["main"]))
    return relax.transform.DeadCodeElimination()(rewriter.builder_.get())
