"""Schedules for the model's operators that are not matmuls, valid for every shape in range.

dlight's CPU rules cover reductions (softmax, layer_norm) and GEMV; elementwise operators, bias and GELU
epilogues, transposes and reshape copies get ``Injective`` here: the loops but the innermost fused and run in
parallel, the innermost vectorised when it is static (a symbolic innermost axis is left to LLVM). Without it
they run as serial scalar loops."""
from __future__ import annotations


def injective_rule():
    """The dlight rule (a class instance) for PrimFuncs whose blocks are all spatial."""
    from tvm import s_tir
    from tvm.s_tir.dlight.analysis import normalize_prim_func
    from tvm.s_tir.dlight.base.common_schedules import try_inline
    from tvm.s_tir.dlight.cpu.base import CPUScheduleRule
    from tvm.target.codegen import llvm_get_vector_width

    class Injective(CPUScheduleRule):
        def apply(self, func, target, _tunable):
            if not self.is_target_available(target):
                return None
            sch = s_tir.Schedule(func)
            blocks = normalize_prim_func(sch)
            if not blocks or not all(block.is_injective() for block in blocks):
                return None
            blocks = try_inline(sch, blocks)
            lanes = max(llvm_get_vector_width(target) // 32, 4)
            for block in blocks:
                _parallel_vectorized(sch, block.block_rv, lanes)
            return sch

    return Injective()


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
