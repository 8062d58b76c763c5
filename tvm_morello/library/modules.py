"""The library's modules: a TIR dispatcher per operator that checks the range and walks the decision tree into
the kernels, a thin Relax entry that allocates the output and calls it, and weight-pack entries.

The dispatcher lives in the same LLVM module as its kernels and calls them directly (``call_cpacked``, resolved
at link time, no function lookup): its branches cost nanoseconds, where each Relax ``If`` cost 0.1-0.17 us (three
VM instructions) and the range check as many again, 15-20% of the smallest attention calls. With one symbolic
variable the tree's branches are still ordered for the small calls (``branch_order``)."""
from __future__ import annotations

import math
from typing import Collection, Mapping, Sequence

from ..codegen.epilogue import epilogue_inputs
from ..codegen.kernel_funcs import kernel_schedule, pack_weights_func
from ..dynamic.branch_order import cheapest_search_tree, relative_branch_weight
from ..dynamic.dispatch import Node
from ..dynamic.plan import OperatorPlan, dispatcher_rank
from ..spec.epilogue import Epilogue
from ..target import CpuTarget


def _shape(dims, symbols):
    from tvm import tirx

    return [symbols[d] if isinstance(d, str) else tirx.IntImm("int64", d) for d in dims]


def _operand_dims(plan: OperatorPlan) -> tuple[list, list, list]:
    """Dims (ints or variable names) of A, B (packed panels for a constant weight) and the output."""
    wl = plan.workload
    lead = [wl.batch] if wl.batch else []
    if wl.constant_b:
        b_dims = lead + [-(-wl.n // plan.panel), wl.k, plan.panel]
    else:
        b_dims = lead + ([wl.n, wl.k] if wl.transpose_b else [wl.k, wl.n])
    return lead + [wl.m, wl.k], b_dims, lead + [wl.m, wl.n]


def _params(plan: OperatorPlan, symbols):
    from tvm import relax

    wl = plan.workload
    a_dims, b_dims, out_dims = _operand_dims(plan)
    a = relax.Var("a", relax.TensorType(_shape(a_dims, symbols), wl.dtype))
    b = relax.Var("b_packed" if wl.constant_b else "b", relax.TensorType(_shape(b_dims, symbols), wl.dtype))
    return a, b, relax.TensorType(_shape(out_dims, symbols), wl.dtype)


def dispatcher_func(plan: OperatorPlan, kernel_names: dict[int, str], epilogue: Epilogue | None = None,
                    rank: int = 2):
    """The TIR PrimFunc (A, B, the epilogue's inputs, out) that raises a ValueError naming the operator and its
    declared range when a size is out of range, else walks ``dispatch_root(plan)`` into a direct call of the
    kernel at the leaf. With ``rank`` > 2 (a dense layer), A, the output and the epilogue's tensors have that
    many dimensions, [d0, ..., k]: the kernels get them as [m, k] views, m = d0 x ... (no copy, no VM reshape)."""
    from tvm import te, tirx
    from tvm.ir import StringImm

    wl = plan.workload
    symbols = {name: te.var(name, "int64") for name in wl.var_names}
    lead = None  # A's dimensions before k when they are not [m]
    if rank != 2:
        if wl.batch or not isinstance(wl.m, str):
            raise ValueError(f"{wl.name}: only a dense layer's dispatcher takes an activation of rank {rank}")
        lead = [te.var(f"d{i}", "int64") for i in range(rank - 1)]
        symbols[wl.m] = math.prod(lead[1:], start=lead[0])
    a_dims, b_dims, out_dims = _operand_dims(plan)
    kernel_shapes = {"A": _shape(a_dims, symbols), "out": _shape(out_dims, symbols)}
    a_shape, out_shape = ((kernel_shapes["A"], kernel_shapes["out"]) if lead is None else
                          ([*lead, kernel_shapes["A"][-1]], [*lead, kernel_shapes["out"][-1]]))
    a = te.placeholder(a_shape, wl.dtype, name="A")
    b = te.placeholder(_shape(b_dims, symbols), wl.dtype, name="B")
    vectors, tensors = epilogue_inputs(epilogue, out_shape, wl.dtype) if epilogue else ([], [])
    ranges = ", ".join(f"{name} in {r.lo}..{r.hi}" for name, r in wl.ranges)
    in_range = tirx.all(*[tirx.all(symbols[name] >= r.lo, symbols[name] <= r.hi) for name, r in wl.ranges])

    def body(ins, outs):
        views = []

        def as_kernel_reads(buffer, shape):
            if lead is None:
                return buffer
            view = tirx.decl_buffer(shape, wl.dtype, name=f"{buffer.name}_2d")
            views.append(tirx.DeclBuffer(view, data=buffer.data))
            return view

        a_in, b_in, *extra = ins
        args = [as_kernel_reads(a_in, kernel_shapes["A"]), b_in, *extra[:len(vectors)],
                *(as_kernel_reads(t, kernel_shapes["out"]) for t in extra[len(vectors):]),
                as_kernel_reads(outs[0], kernel_shapes["out"])]

        def walk(node: Node):
            if node.is_leaf:
                return tirx.Evaluate(tirx.call_cpacked(kernel_names[node.kernel], *args))
            name = wl.var_names[node.feature]
            return tirx.IfThenElse(symbols[name] <= node.threshold, walk(node.left), walk(node.right))

        message = StringImm(f"{wl.name}: shape outside the declared range ({ranges})")
        # (condition, kind, message): the order of the constructor TVM 0.27's wrapper forwards to (its own
        # parameter names are the other way round)
        check = tirx.AssertStmt(in_range, StringImm("ValueError"), [message])
        return tirx.SeqStmt([check, *views, walk(dispatch_root(plan))])

    out = te.extern(out_shape, [a, b, *vectors, *tensors], body, name="out", dtype=wl.dtype)
    symbol = plan.dispatcher_for(epilogue, rank)
    return te.create_prim_func([a, b, *vectors, *tensors, out]).with_attr("global_symbol", symbol)


def dispatch_root(plan: OperatorPlan) -> Node:
    """The tree the dispatcher walks: with one variable, the plan's tree with its branches ordered by
    ``branch_order``; else the plan's tree as fitted."""
    wl = plan.workload
    if len(wl.var_names) != 1:
        return plan.tree.root_
    (name,) = wl.var_names
    rng = wl.range_of(name)
    share = dict(zip(rng.values(), rng.value_weights()))
    return cheapest_search_tree(
        plan.tree, rng.lo, rng.hi, lambda v: share[v] * relative_branch_weight(wl.flops({name: v})), values=share)


def build_modules(plans: Sequence[OperatorPlan], target: CpuTarget, kernel_funcs=None,
                  epilogues: Mapping[str, Sequence[Epilogue]] | None = None,
                  called: Collection[str] | None = None):
    """(Relax IRModule of the entries, [(TIR IRModule, TVM target)] of the dispatchers, kernels and pack
    functions) for ``plans``; and for each of ``epilogues[operator name]`` a dispatcher
    (``plan.dispatcher_with(epilogue)``) of kernels that finish their output with it. With ``called`` (the
    dispatcher names a model calls), only those dispatchers and their kernels are built (a plain dispatcher not
    called has no Relax entry either): a model whose dense layers all run epilogues skips its plain kernels.

    An operator's dispatcher and kernels share one TIR module (its direct calls need them in one LLVM module),
    compiled with reassociation when any of its kernels is dot-form (``codegen.kernel_funcs.kernel_target``; measured
    neutral on the outer-product kernels beside them). The Relax entries call dispatchers as external
    functions: kernels compiled inside the Relax module lost ``noalias`` and ran ~2.5x slower.

    ``kernel_funcs`` optionally maps (operator name, kernel index) to a PrimFunc used instead of the
    scheduled kernel (the meta-schedule route passes replayed traces; tests inject broken kernels).
    """
    import tvm
    from tvm import relax, tirx

    bb = relax.BlockBuilder()
    groups: dict[bool, dict] = {False: {}, True: {}}  # reassociate -> {symbol: PrimFunc}
    for plan in plans:
        wl = plan.workload
        used = plan.tree.kernels_used()
        funcs = groups[any(plan.kernels[i].dot for i in used)]
        plain_names = {index: plan.kernel_name(index) for index in used}
        for epilogue in (None, *(epilogues or {}).get(wl.name, ())):
            ranks = called_ranks(plan.dispatcher_for(epilogue), called)
            if not ranks:
                continue
            names = plain_names if epilogue is None else {i: f"{plain_names[i]}__{epilogue.key}" for i in used}
            for index in used:
                func = (kernel_funcs or {}).get((wl.name, index)) if epilogue is None else None
                if func is None:
                    func = kernel_schedule(wl, plan.kernels[index], plan.panel, target, epilogue).mod["main"]
                funcs[names[index]] = func.with_attr("global_symbol", names[index])
            for rank in ranks:
                funcs[plan.dispatcher_for(epilogue, rank)] = dispatcher_func(plan, names, epilogue, rank)
        if called is None or plan.dispatcher in called:
            symbols = {name: tirx.Var(name, "int64") for name in wl.var_names}
            a, b, out = _params(plan, symbols)
            with bb.function(plan.entry, [a, b]):
                call = relax.call_dps_packed(relax.ExternFunc(plan.dispatcher), [a, b], out)
                bb.emit_func_output(bb.emit(call))
        if wl.constant_b:
            pack_name = f"{wl.name}__pack"
            funcs[pack_name] = pack_weights_func(wl, plan.panel).with_attr("global_symbol", pack_name)
            _add_pack_entry(bb, plan, pack_name)
    return bb.get(), [(tvm.IRModule(funcs), target.tvm_target(reassociate=flag))
                      for flag, funcs in groups.items() if funcs]


def called_ranks(dispatcher: str, called: Collection[str] | None) -> list[int]:
    """The activation ranks ``dispatcher`` is called with (``OperatorPlan.dispatcher_for``): 2 alone when
    ``called`` is None (a library of every operator)."""
    if called is None:
        return [2]
    return sorted({rank for base, rank in map(dispatcher_rank, called) if base == dispatcher})


def _add_pack_entry(bb, plan: OperatorPlan, pack_name: str) -> None:
    from tvm import relax, tirx

    wl = plan.workload
    raw = [wl.n, wl.k] if wl.transpose_b else [wl.k, wl.n]
    w = relax.Var("w", relax.TensorType(_shape(raw, {}), wl.dtype))
    packed = relax.TensorType([tirx.IntImm("int64", v) for v in (-(-wl.n // plan.panel), wl.k, plan.panel)], wl.dtype)
    with bb.function(plan.pack_entry, [w]):
        bb.emit_func_output(bb.emit(relax.call_dps_packed(relax.ExternFunc(pack_name), [w], packed)))
