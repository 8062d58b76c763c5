"""Generic schedules valid for every shape in range: a model's operators that are not tuned matmuls.

Row reductions (softmax over seq, layer_norm over the hidden size) get ``RowReductions``: their elementwise inputs
inlined, one parallel loop over the rows, each row's loops left plain for LLVM to vectorise (the model is compiled
with float reassociation, so its sums vectorise too), remainder included. dlight's CPU Reduction rule instead splits
a symbolic axis into predicated vectors, which TVM scalarises (0.9 ms for a 12 x 128 x 128 softmax, 0.27 ms so), and
sums a static one in a serial scalar chain (two layer_norms at 1024 x 768: 2.1 ms, 0.4 ms so). Elementwise
operators, bias and GELU epilogues, transposes and reshape copies get ``Injective``: the outer loops fused and run
in parallel, the innermost vectorised when it is static (a symbolic innermost axis is left to LLVM). A matmul no
tuned kernel covers (a meta-schedule task the DP cannot express), with the elementwise blocks after it, gets
``MatmulRows``: the output's rows in parallel, each row's product accumulated in vectors along its columns. Without
them they run as serial scalar loops."""
from __future__ import annotations

SHORT_ROW = 256  # innermost extents below which the row loop around them stays out of the parallel loop


def injective_rule():
    """The dlight rule for PrimFuncs whose blocks are all spatial."""
    return _dlight_rule("Injective", _schedule_injective)


def row_reductions_rule():
    """The dlight rule for reduction + injective PrimFuncs over rows (softmax, layer_norm)."""
    return _dlight_rule("RowReductions", _schedule_row_reductions)


def matmul_rows_rule():
    """The dlight rule for a matmul PrimFunc (one reduction of a product) and the elementwise blocks after it."""
    return _dlight_rule("MatmulRows", _schedule_matmul_rows)


def generic_rules() -> list:
    """The rules, in the order they are tried, that schedule what no tuned kernel covers: ours, and dlight's CPU
    rules for GEMV and other reductions."""
    from tvm.s_tir import dlight

    # GEMV first: a matrix-vector product parallelises over its outputs, not over its one row
    return [row_reductions_rule(), dlight.cpu.GEMV(), matmul_rows_rule(), dlight.cpu.Reduction(), injective_rule()]


def _dlight_rule(name: str, schedule):
    """A dlight CPU rule (an instance) that schedules a PrimFunc's normalised blocks with ``schedule(sch,
    blocks, target)``, which returns None for a PrimFunc that is not its kind (as does a schedule that fails)."""
    from tvm import s_tir
    from tvm.s_tir.dlight.analysis import normalize_prim_func
    from tvm.s_tir.dlight.cpu.base import CPUScheduleRule

    class Rule(CPUScheduleRule):
        def apply(self, func, target, _tunable):
            if not self.is_target_available(target):
                return None
            sch = s_tir.Schedule(func)
            blocks = normalize_prim_func(sch)
            try:
                return schedule(sch, blocks, target) if blocks else None
            except s_tir.ScheduleError:  # a PrimFunc of a shape the rule did not foresee: it declines
                return None

    Rule.__name__ = Rule.__qualname__ = name
    return Rule()


def _schedule_injective(sch, blocks, target):
    from tvm.s_tir.dlight.base.common_schedules import try_inline
    from tvm.target.codegen import llvm_get_vector_width

    if not all(block.is_injective() for block in blocks):
        return None
    blocks = try_inline(sch, blocks)
    lanes = max(llvm_get_vector_width(target) // 32, 4)
    for block in blocks:
        _parallel_vectorized(sch, block.block_rv, lanes)
    return sch


def _schedule_row_reductions(sch, blocks, target):
    if len(blocks) < 2 or all(b.is_injective() for b in blocks) or not blocks[-1].is_injective():
        return None
    blocks = _inline_elementwise(sch, blocks)
    rows = min(len(k) - len(k.lstrip("S")) for k in (b.dom_kind() for b in blocks))
    last = sch.get_loops(blocks[-1].block_rv)
    if not rows or rows >= len(last):
        return None
    outer = sch.fuse(*last[:rows]) if rows > 1 else last[0]
    sch.parallel(outer)
    for block in reversed(blocks[:-1]):
        sch.compute_at(block.block_rv, outer, preserve_unit_loops=True)
    return sch


def _inline_elementwise(sch, blocks) -> list:
    """``blocks`` with the elementwise ones inlined where they are read, except those reading a reduction's result
    (a row's mean or inverse root, computed once per row). TVM's rms_norm copies the weight and the row and
    squares it in blocks of their own, each a pass over the row: a Llama block's two RMSNorms (4 x 64 x 256) took
    43 us so, 21 us inlined (Zen 4)."""
    from tvm.s_tir.dlight.base.common_schedules import try_inline

    reduced = {region.source for block in blocks if not block.is_injective()
               for region in sch.get(block.block_rv).writes}
    elementwise = [block for block in blocks if block.is_injective()
                   and not any(region.source in reduced for region in sch.get(block.block_rv).reads)]
    kept = try_inline(sch, list(elementwise))
    return [block for block in blocks if block not in elementwise or block in kept]


def _schedule_matmul_rows(sch, blocks, target):
    from tvm.target.codegen import llvm_get_vector_width

    product, rest = blocks[0], blocks[1:]
    kinds = product.dom_kind()
    if len(kinds) < 3 or kinds.count("R") != 1 or not kinds.endswith("R") or not _is_product_sum(sch, product) \
            or not all(block.is_injective() for block in rest):
        return None
    spatial = sch.get_loops(rest[-1].block_rv) if rest else sch.get_loops(product.block_rv)[:-1]
    if len(spatial) < 2:
        return None
    rows = sch.fuse(*spatial[:-1]) if len(spatial) > 2 else spatial[0]
    sch.parallel(rows)
    for block in reversed(blocks[:-1] if rest else []):
        sch.compute_at(block.block_rv, rows, preserve_unit_loops=True)
    lanes = max(llvm_get_vector_width(target) // 32, 4)
    *_, cols, k = sch.get_loops(product.block_rv)
    width = _vector_width(sch.get(cols).extent, lanes)
    if width:
        outer, inner = sch.split(cols, [None, width])
        sch.reorder(outer, k, inner)
        sch.vectorize(inner)  # before the init is split off: the update block alone is not a reduction block
        init = sch.decompose_reduction(product.block_rv, k)
        sch.vectorize(sch.get_loops(init)[-1])
    for block in rest:
        *_, last = sch.get_loops(block.block_rv)
        if _vector_width(sch.get(last).extent, lanes):
            sch.vectorize(sch.split(last, [None, lanes])[1])
    return sch


def _is_product_sum(sch, block) -> bool:
    """Whether the block accumulates a product of two buffer loads (a matmul's update)."""
    from tvm import tirx
    from tvm.ir.expr import TensorLoad

    body = sch.get(block.block_rv).body
    if not isinstance(body, tirx.BufferStore) or not isinstance(body.value, tirx.Add):
        return False
    product = body.value.b
    return isinstance(product, tirx.Mul) and all(isinstance(x, TensorLoad) for x in (product.a, product.b))


def _vector_width(extent, lanes: int) -> int:
    """The widest of 4, 2, 1 vectors that divides a static ``extent``; 0 for a symbolic or indivisible one."""
    from tvm import tirx

    if not isinstance(extent, tirx.IntImm):
        return 0
    return next((v * lanes for v in (4, 2, 1) if int(extent) % (v * lanes) == 0), 0)


def _parallel_vectorized(sch, block, lanes: int) -> None:
    """The loops but the innermost run in parallel, fused, and a static innermost in vectors. The vector split's
    outer loop stays serial, and so does the last outer loop when rows are short (a head's 64 values): fused into
    the parallel loop, each of their iterations recomputes its indices with divisions by the symbolic extents
    (0.28 ms for a 16 x 64 x 768 head transpose, 0.14 ms so)."""
    from tvm import tirx

    loops = sch.get_loops(block)
    if not loops:
        return
    *outer, inner = loops
    extent = sch.get(inner).extent
    static = isinstance(extent, tirx.IntImm)
    if static and int(extent) % lanes == 0 and int(extent) >= lanes:
        inner, vector = sch.split(inner, [None, lanes])
        sch.vectorize(vector)
    if static and int(extent) < SHORT_ROW and len(outer) > 1:
        outer = outer[:-1]
    if not outer:
        outer = [inner]
    sch.parallel(sch.fuse(*outer) if len(outer) > 1 else outer[0])
