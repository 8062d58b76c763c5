"""The model's dense layers: ``R.matmul`` of an activation by a constant weight, found before legalization and
replaced by a call of the dispatcher tuned for its workload, with the weight packed into panels once.

A weight stored [k, n] (ONNX MatMul) or transposed ([n, k] behind ``permute_dims``, as ONNX Gemm and PyTorch's
Linear export it) is a dense workload over m = the product of the activation's leading dimensions (batch * seq),
whose range and distribution follow from the model's dimension ranges. Identical workloads share one plan."""
from __future__ import annotations

import itertools
import math
from collections import Counter
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from ..codegen.panels import pack_panels_array
from ..spec.symbolic import DynamicWorkload, VarRange


@dataclass(frozen=True)
class DenseCall:
    """One dense layer of the model: x[..., k] @ weight, weight stored [n, k] (``transpose_b``) or [k, n]."""

    workload: DynamicWorkload
    weight: np.ndarray  # as stored


def _matmul_op():
    import tvm

    return tvm.ir.Op.get("relax.matmul")


def _constant_weight(expr, lookup) -> tuple[np.ndarray, bool] | None:
    """(weight as stored, stored transposed) when ``expr`` is a 2-D float32 constant or its transpose
    (``lookup`` gives the value a variable is bound to, or None)."""
    import tvm
    from tvm import relax

    if isinstance(expr, relax.Var):
        expr = lookup(expr)
    if isinstance(expr, tvm.ir.expr.GenericConst):
        value = expr.value.numpy()
        return (value, False) if value.ndim == 2 and value.dtype == np.float32 else None
    if isinstance(expr, relax.Call) and expr.op == tvm.ir.Op.get("relax.permute_dims"):
        inner = _constant_weight(expr.args[0], lookup)
        axes = expr.attrs.axes
        if inner is not None and not inner[1] and (axes is None or [int(a) for a in axes] == [1, 0]):
            return inner[0], True
    return None


def m_range(leading, ranges: Mapping[str, VarRange]) -> VarRange | None:
    """The range of m = the product of ``leading`` (ints and model dimensions) over the model's ranges, its sample
    weighted by how many assignments give each value; None when a dimension is any other expression."""
    from tvm import tirx

    static, names = 1, []
    for dim in leading:
        if isinstance(dim, tirx.IntImm):
            static *= int(dim)
        elif isinstance(dim, tirx.Var) and dim.name in ranges:
            names.append(dim.name)
        else:
            return None
    counts = Counter(static * math.prod(values)
                     for values in itertools.product(*[ranges[name].values() for name in names]))
    sample = tuple(sorted(counts))
    return VarRange(sample[0], sample[-1], sample, tuple(float(counts[v]) for v in sample))


def workload_name(k: int, n: int, transpose_b: bool) -> str:
    return f"dense_{k}x{n}{'_t' if transpose_b else ''}"


def find_dense_calls(mod, ranges: Mapping[str, VarRange]) -> list[DenseCall]:
    """Every dense layer of ``mod``'s ``main``, in program order."""
    from tvm import relax

    found = []
    bindings = {}
    for block in mod["main"].body.blocks:
        for binding in block.bindings:
            bindings[binding.var] = binding.value
            call = _dense_call(binding.value, bindings.get, ranges)
            if call is not None:
                found.append(call)
    return found


def _dense_call(value, lookup, ranges) -> DenseCall | None:
    from tvm import relax, tirx

    if not (isinstance(value, relax.Call) and value.op == _matmul_op()):
        return None
    x_info = value.args[0].ty
    weight = _constant_weight(value.args[1], lookup)
    if weight is None or not isinstance(x_info, relax.TensorType) or str(x_info.dtype) != "float32" \
            or x_info.shape is None or x_info.ndim < 2:
        return None
    stored, transpose_b = weight
    n, k = stored.shape if transpose_b else stored.shape[::-1]
    *leading, x_k = x_info.shape.values
    if not isinstance(x_k, tirx.IntImm) or int(x_k) != k:
        return None
    rng = m_range(leading, ranges)
    if rng is None:
        return None
    workload = DynamicWorkload(workload_name(k, n, transpose_b), 0, "m", k, n, (("m", rng),),
                               transpose_b=transpose_b, constant_b=True)
    return DenseCall(workload, stored)


def merge_workloads(calls: list[DenseCall]) -> list[DynamicWorkload]:
    """One workload per distinct (k, n, layout), its m distribution the sum of its calls'."""
    merged: dict[str, list[DynamicWorkload]] = {}
    for call in calls:
        merged.setdefault(call.workload.name, []).append(call.workload)
    out = []
    for group in merged.values():
        counts: Counter = Counter()
        for wl in group:
            rng = wl.range_of("m")
            counts.update(dict(zip(rng.values(), rng.value_weights())))
        sample = tuple(sorted(counts))
        from dataclasses import replace

        out.append(replace(group[0], ranges=(("m", VarRange(sample[0], sample[-1], sample,
                                                             tuple(float(counts[v]) for v in sample))),)))
    return out


def replace_dense_calls(mod, ranges: Mapping[str, VarRange], panels: Mapping[str, int], dispatchers: Mapping[str, str]):
    """``mod`` with each dense layer whose workload has a plan (``dispatchers``: workload name -> dispatcher
    symbol, ``panels``: -> panel width) calling the dispatcher on [m, k] activations and the packed weight."""
    import tvm
    from tvm import relax

    @relax.expr_functor.mutator
    class Rewriter(relax.PyExprMutator):
        def visit_call_(self, call):
            call = self.visit_expr_post_order(call)
            found = _dense_call(call, self.lookup_binding, ranges)
            if found is None or found.workload.name not in dispatchers:
                return call
            wl = found.workload
            x = call.args[0]
            *leading, _ = x.ty.shape.values
            m = math.prod(leading[1:], start=leading[0]) if leading else 1
            x2 = self.builder_.emit(relax.op.reshape(x, relax.ShapeExpr([m, wl.k]))) if len(leading) != 1 else x
            packed = relax.const(pack_panels_array(found.weight, panels[wl.name], transpose_b=wl.transpose_b))
            out_info = relax.TensorType([m, wl.n], "float32")
            out = relax.call_dps_packed(relax.ExternFunc(dispatchers[wl.name]), [x2, packed], out_info)
            if len(leading) == 1:
                return out
            return relax.op.reshape(self.builder_.emit(out), relax.ShapeExpr([*leading, wl.n]))

    rewriter = Rewriter(mod)
    main = mod.get_global_var("main")
    rewriter.builder_.update_func(main, rewriter.visit_expr(mod["main"]))
    return rewriter.builder_.get()
