"""Schedules for the model's operators that are not matmuls, valid for every shape in range.

dlight's CPU rules cover reductions over a static axis (layer_norm) and GEMV. Reductions over a symbolic axis
(attention's softmax over seq) get ``SymbolicRows`` here: dlight splits such an axis into predicated vectors,
which TVM scalarises with an index expression per element (0.9 ms for a 12 x 128 x 128 softmax); one parallel
loop over the rows with each row's loops left plain lets LLVM vectorise them, remainder included. Elementwise
operators, bias and GELU epilogues, transposes and reshape copies get ``Injective``: the loops but the innermost
fused and run in parallel, the innermost vectorised when it is static (a symbolic innermost axis is left to
LLVM). Without them they run as serial scalar loops."""
from __future__ import annotations


def injective_rule():
    """The dlight rule for PrimFuncs whose blocks are all spatial."""
    return _dlight_rule("Injective", _schedule_injective)


def symbolic_rows_rule():
    """The dlight rule for reduction + injective PrimFuncs over rows whose last axis is symbolic (softmax)."""
    return _dlight_rule("SymbolicRows", _schedule_symbolic_rows)


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


def _schedule_symbolic_rows(sch, blocks, target):
    from tvm import tirx

    if len(blocks) < 2 or all(b.is_injective() for b in blocks) or not blocks[-1].is_injective():
        return None
    rows = min(len(k) - len(k.lstrip("S")) for k in (b.dom_kind() for b in blocks))
    last = sch.get_loops(blocks[-1].block_rv)
    if not rows or rows >= len(last) or isinstance(sch.get(last[-1]).extent, tirx.IntImm):
        return None  # a static row length: dlight's Reduction vectorises it
    outer = sch.fuse(*last[:rows]) if rows > 1 else last[0]
    sch.parallel(outer)
    for block in reversed(blocks[:-1]):
        sch.compute_at(block.block_rv, outer, preserve_unit_loops=True)
    return sch


def _parallel_vectorized(sch, block, lanes: int) -> None:
    from tvm import tirx

    loops = sch.get_loops(block)
    if not loops:
        return
    *outer, inner = loops
    extent = sch.get(inner).extent
    if isinstance(extent, tirx.IntImm) and int(extent) % lanes == 0 and int(extent) >= lanes:
        inner_outer, vector = sch.split(inner, [None, lanes])
        outer.append(inner_outer)
        sch.vectorize(vector)
    elif not outer:
        outer = [inner]
    sch.parallel(sch.fuse(*outer) if len(outer) > 1 else outer[0])
