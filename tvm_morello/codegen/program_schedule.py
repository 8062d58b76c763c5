"""A synthesised program as tvm.s_tir.Schedule primitives on the PrimFunc it was recognised from."""
from __future__ import annotations

from ..search.program import Program
from ..spec.recognize import RecognizedMatmul
from ..target import CpuTarget
from .loop_plan import in_k_vectors, plan_loops
from .panels import PanelPack
from .register_tile import schedule_register_tiles


def apply_program(sch, recognized: RecognizedMatmul, program: Program, target: CpuTarget) -> None:
    """Apply ``program`` to ``sch`` (which holds the recognised PrimFunc), in place."""
    plan = plan_loops(program)
    block = sch.get_sblock(recognized.block)
    loops = dict(zip(recognized.loop_roles, sch.get_loops(block)))
    if plan.kernel == "dot":
        accumulators, loops = split_lanes(sch, block, loops, target.lanes())
        schedule_register_tiles(sch, accumulators, loops, in_k_vectors(plan, target.lanes()), target.lanes(),
                                writeback=block)
        return
    pack = None
    if plan.pack_width:
        pack = PanelPack(recognized.rhs_read, recognized.rhs_dims, plan.pack_width,
                         pad=recognized.spec.n % plan.pack_width != 0,
                         vectorize="blocks" if plan.pack_vectorized else "")
    schedule_register_tiles(sch, block, loops, plan, target.lanes(), pack=pack)


def split_lanes(sch, block, loops: dict, lanes: int):
    """The dot form on a matmul block: k becomes (k-vectors, lanes) and the lanes a spatial axis of a new
    accumulator block (``rfactor``), whose lanes ``block`` then sums. Returns the accumulator block and its loops
    by role."""
    k_vectors, lane = sch.split(loops["k"], [None, lanes])
    out_axes = len(sch.get(block).writes[0].region)
    accumulators = sch.rfactor(lane, out_axes)
    roles = [role for role in loops for role in ((role, "lane") if role == "k" else (role,))]
    return accumulators, dict(zip(roles, sch.get_loops(accumulators)))
