"""Schedules for the model's operators that are not matmuls, valid for every shape in range.

Row reductions (softmax over seq, layer_norm over the hidden size) get ``RowReductions``: one parallel loop over
the rows, each row's loops left plain for LLVM to vectorise (the model is compiled with float reassociation, so
its sums vectorise too), remainder included. dlight's CPU Reduction rule instead splits a symbolic axis into
predicated vectors, which TVM scalarises (0.9 ms for a 12 x 128 x 128 softmax, 0.27 ms so), and sums a static
one in a serial scalar chain (two layer_norms at 1024 x 768: 2.1 ms, 0.4 ms so). Elementwise operators, bias
and GELU epilogues, transposes and reshape copies get ``Injective``: the outer loops fused and run in parallel,
the innermost vectorised when it is static (a symbolic innermost axis is left to LLVM). Without them they run
as serial scalar loops."""
from __future__ import annotations

SHORT_ROW = 256  # innermost extents below which the row loop around them stays out of the parallel loop


def injective_rule():
    """The dlight rule for PrimFuncs whose blocks are all spatial."""
    return _dlight_rule("Injective", _schedule_injective)


def row_reductions_rule():
    """The dlight rule for reduction + injective PrimFuncs over rows (softmax, layer_norm)."""
    return _dlight_rule("RowReductions", _schedule_row_reductions)


def _dlight_rule(name: str, schedule):
    """A dlight CPU rule (an instance) that schedules a PrimFunc's normalised blocks with ``schedule(sch,
    blocks, target)``, which returns None for a PrimFunc that is not its kind."""
    from tvm import s_tir
    from tvm.s_tir.dlight.analysis import normalize_prim_func
    from tvm.s_tir.dlight.cpu.base import CPUScheduleRule

    class Rule(CPUScheduleRule):
        def apply(self, func, target, _tunable):
            if not self.is_target_available(target):
                return None
            sch = s_tir.Schedule(func)
            blocks = normalize_prim_func(sch)
            return schedule(sch, blocks, target) if blocks else None

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
    rows = min(len(k) - len(k.lstrip("S")) for k in (b.dom_kind() for b in blocks))
    last = sch.get_loops(blocks[-1].block_rv)
    if not rows or rows >= len(last):
        return None
    outer = sch.fuse(*last[:rows]) if rows > 1 else last[0]
    sch.parallel(outer)
    for block in reversed(blocks[:-1]):
        sch.compute_at(block.block_rv, outer, preserve_unit_loops=True)
    return sch


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
