"""The library's modules: Relax entries that check the ranges and walk the decision tree (``If`` on the
symbolic sizes) into the kernels, plus weight-pack entries; and the kernels as a separate TIR module.

With one symbolic variable the tree's branches are reordered to favour the small, overhead-sensitive calls
(``branch_order``)."""
from __future__ import annotations

from typing import Sequence

from ..target import CpuTarget
from .branch_order import cheapest_search_tree, relative_branch_weight
from .dispatch import Node
from .kernels import kernel_schedule, kernel_target, pack_weights_func
from .plan import OperatorPlan


def _shape(dims, symbols):
    from tvm import tirx

    return [symbols[d] if isinstance(d, str) else tirx.IntImm("int64", d) for d in dims]


def _params(plan: OperatorPlan, symbols):
    from tvm import relax

    wl = plan.workload
    lead = [wl.batch] if wl.batch else []
    a = relax.Var("a", relax.TensorType(_shape(lead + [wl.m, wl.k], symbols), wl.dtype))
    if wl.constant_b:
        n_panels = -(-wl.n // plan.panel)
        b_dims = lead + [n_panels, wl.k, plan.panel]
    else:
        b_dims = lead + ([wl.n, wl.k] if wl.transpose_b else [wl.k, wl.n])
    b = relax.Var("b_packed" if wl.constant_b else "b", relax.TensorType(_shape(b_dims, symbols), wl.dtype))
    out = relax.TensorType(_shape(lead + [wl.m, wl.n], symbols), wl.dtype)
    return a, b, out


def _in_range(plan: OperatorPlan, symbols):
    from tvm import tirx

    return tirx.all(*[tirx.all(symbols[name] >= r.lo, symbols[name] <= r.hi) for name, r in plan.workload.ranges])


def _out_of_range(plan: OperatorPlan, kernels, args, out, symbols):
    """The ``else`` branch of the range check: an assertion that fails with the shape in its message (the
    kernel call after it only gives the branch its type; it never runs). Kept off the in-range path:
    ``assert_op`` is a Python callback that costs about a microsecond per call."""
    from tvm import relax

    wl = plan.workload
    ranges = ", ".join(f"{name} in {r.lo}..{r.hi}" for name, r in wl.ranges)
    values = ", ".join(f"{name}={{}}" for name in wl.var_names)
    message = f"{wl.name}: shape outside the declared range ({values}); supported: {ranges}"
    check = relax.op.assert_op(relax.prim_value(_in_range(plan, symbols)),
                               [relax.prim_value(symbols[n]) for n in wl.var_names], format=message)
    first = min(kernels)
    return _seq([check, relax.call_dps_packed(relax.ExternFunc(kernels[first]), args, out)], out)


def _seq(exprs, out):
    """A SeqExpr binding ``exprs`` in order and yielding the last, of type ``out`` (a branch of a Relax
    ``If``); the others are statements such as assertions, which return nothing."""
    from tvm import relax

    bindings = [relax.VarBinding(relax.Var(f"v{i}", out if i == len(exprs) - 1 else relax.TupleType([])), e)
                for i, e in enumerate(exprs)]
    return relax.SeqExpr([relax.BindingBlock(bindings)], bindings[-1].var)


def _dispatch(node: Node, plan: OperatorPlan, kernels, args, out, symbols):
    """A Relax expression evaluating the tree: nested ``If`` on ``var <= threshold`` down to a kernel call."""
    from tvm import relax

    if node.is_leaf:
        return relax.call_dps_packed(relax.ExternFunc(kernels[node.kernel]), args, out)

    def branch(child: Node):
        return _seq([_dispatch(child, plan, kernels, args, out, symbols)], out)

    name = plan.workload.var_names[node.feature]
    return relax.If(relax.prim_value(symbols[name] <= node.threshold), branch(node.left), branch(node.right))


def dispatch_root(plan: OperatorPlan) -> Node:
    """The tree the entry walks: with one variable, the plan's tree with its branches ordered by
    ``branch_order``; else the plan's tree as fitted."""
    wl = plan.workload
    if len(wl.var_names) != 1:
        return plan.tree.root_
    (name,) = wl.var_names
    rng = wl.range_of(name)
    share = dict(zip(rng.values(), rng.value_weights()))
    return cheapest_search_tree(
        plan.tree, rng.lo, rng.hi, lambda v: share[v] * relative_branch_weight(wl.flops({name: v})), values=share)


def build_modules(plans: Sequence[OperatorPlan], target: CpuTarget, kernel_funcs=None):
    """(Relax IRModule of the entries, [(TIR IRModule, TVM target)] of the kernels and pack functions) for
    ``plans``: one TIR module per target the kernels are compiled for (see ``kernels.kernel_target``).

    The entries call kernels as external functions (``call_dps_packed``): kernels compiled inside the
    Relax module lost ``noalias`` and ran ~2.5x slower, so they are compiled on their own.

    ``kernel_funcs`` optionally maps (operator name, kernel index) to a PrimFunc used instead of the
    scheduled kernel (the meta-schedule route passes replayed traces; tests inject broken kernels).
    """
    import tvm
    from tvm import relax, tirx

    bb = relax.BlockBuilder()
    tir_funcs = {}  # name -> (PrimFunc, reassociate)
    for plan in plans:
        wl = plan.workload
        names = {}
        for index in plan.tree.kernels_used():
            func = (kernel_funcs or {}).get((wl.name, index))
            if func is None:
                func = kernel_schedule(wl, plan.kernels[index], plan.panel, target).mod["main"]
            names[index] = plan.kernel_name(index)
            tir_funcs[names[index]] = (func.with_attr("global_symbol", names[index]), plan.kernels[index].dot)
        symbols = {name: tirx.Var(name, "int64") for name in wl.var_names}
        a, b, out = _params(plan, symbols)
        with bb.function(plan.entry, [a, b]):
            dispatch = _seq([_dispatch(dispatch_root(plan), plan, names, [a, b], out, symbols)], out)
            y = bb.emit(relax.If(relax.prim_value(_in_range(plan, symbols)), dispatch,
                                 _out_of_range(plan, names, [a, b], out, symbols)))
            bb.emit_func_output(y)
        if wl.constant_b:
            pack_name = f"{wl.name}__pack"
            tir_funcs[pack_name] = (pack_weights_func(wl, plan.panel).with_attr("global_symbol", pack_name), False)
            _add_pack_entry(bb, plan, pack_name)
    groups = {flag: {name: func for name, (func, dot) in tir_funcs.items() if dot == flag} for flag in (False, True)}
    return bb.get(), [(tvm.IRModule(funcs), target.tvm_target(reassociate=flag))
                      for flag, funcs in groups.items() if funcs]


def _add_pack_entry(bb, plan: OperatorPlan, pack_name: str) -> None:
    from tvm import relax, tirx

    wl = plan.workload
    raw = [wl.n, wl.k] if wl.transpose_b else [wl.k, wl.n]
    w = relax.Var("w", relax.TensorType(_shape(raw, {}), wl.dtype))
    packed = relax.TensorType([tirx.IntImm("int64", v) for v in (-(-wl.n // plan.panel), wl.k, plan.panel)], wl.dtype)
    with bb.function(plan.pack_entry, [w]):
        bb.emit_func_output(bb.emit(relax.call_dps_packed(relax.ExternFunc(pack_name), [w], packed)))
