"""A synthesised program as tvm.s_tir.Schedule primitives on the PrimFunc it was recognised from."""
from __future__ import annotations

from ..search.program import Program
from ..spec.recognize import RecognizedMatmul
from ..target import CpuTarget
from .loop_plan import plan_loops
from .panels import PanelPack
from .register_tile import schedule_register_tiles


def apply_program(sch, recognized: RecognizedMatmul, program: Program, target: CpuTarget) -> None:
    """Apply ``program`` to ``sch`` (which holds the recognised PrimFunc), in place."""
    plan = plan_loops(program)
    block = sch.get_sblock(recognized.block)
    loops = dict(zip(recognized.loop_roles, sch.get_loops(block)))
    pack = None
    if plan.pack_width:
        pack = PanelPack(recognized.rhs_read, recognized.rhs_dims, plan.pack_width,
                         pad=recognized.spec.n % plan.pack_width != 0,
                         vectorize="blocks" if plan.pack_vectorized else "")
    schedule_register_tiles(sch, block, loops, plan, target.lanes(), pack=pack)
