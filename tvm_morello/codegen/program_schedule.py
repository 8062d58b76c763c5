"""A synthesised program as tvm.s_tir.Schedule primitives on the PrimFunc it was recognised from."""
from __future__ import annotations

from dataclasses import replace

from ..search.program import Program
from ..spec.recognize import RecognizedMatmul
from ..target import CpuTarget
from .loop_plan import LoopPlan, in_k_vectors, plan_loops
from .padding import pad_to_tiles
from .panels import PanelPack
from .register_tile import schedule_register_tiles


def apply_program(sch, recognized: RecognizedMatmul, program: Program, target: CpuTarget) -> None:
    """Apply ``program`` to ``sch`` (which holds the recognised PrimFunc), in place."""
    plan = plan_loops(program)
    block = sch.get_sblock(recognized.block)
    if plan.kernel == "dot":
        # partial tiles stay predicated: the predicate is a branch per row, outside the k-vectors, and padding
        # measured slower (B's padded copy is a second pass over B where m is small)
        loops = dict(zip(recognized.loop_roles, sch.get_loops(block)))
        accumulators, loops = split_lanes(sch, block, loops, target.lanes())
        schedule_register_tiles(sch, accumulators, loops, in_k_vectors(plan, target.lanes()), target.lanes(),
                                writeback=block)
        return
    padding = tile_padding(recognized, plan)
    padded = pad_to_tiles(sch, block, recognized.buffers, padding)
    loops = dict(zip(recognized.loop_roles, sch.get_loops(block)))
    pack = None
    read = [region.source.name for region in sch.get(block).reads].index(padded.rhs or recognized.buffers[1])
    if plan.pack_width:
        n = recognized.spec.n + _padding_of(recognized, padding, "n")
        pack = PanelPack(read, recognized.rhs_dims, plan.pack_width, source=padded.rhs,
                         pad=n % plan.pack_width != 0, vectorize="blocks" if plan.pack_vectorized else "")
    elif padded.rhs is not None:  # B's padded copy, as stored, made per iteration of the outermost loop
        pack = PanelPack(read, source=padded.rhs, vectorize="rows")
        plan = replace(plan, pack_at=0 if plan.order else -1)
    schedule_register_tiles(sch, block, loops, plan, target.lanes(), pack=pack, writeback=padded.out)


def tile_padding(recognized: RecognizedMatmul, plan: LoopPlan) -> tuple[int, ...]:
    """Per loop of the matmul block, the multiple its extent is padded to: a spatial dimension's outermost tile
    when that tile does not divide it (then no tile is partial), else 1. A weight that arrives in panels is read
    at ``[j // width, k, j % width]``, which is no einsum access ``pad_einsum`` could pad: its partial tiles stay
    predicated (its n is whole panels, so only rows can be partial)."""
    if recognized.spec.rhs.layout.kind == "panel":
        return (1,) * len(recognized.loop_roles)
    extents = {"b": recognized.spec.b, "m": recognized.spec.m, "n": recognized.spec.n}
    factors = []
    for role in recognized.loop_roles:
        sizes = plan.sizes.get(role, ()) if role in extents else ()
        factors.append(sizes[0] if sizes and extents[role] % sizes[0] else 1)
    return tuple(factors)


def _padding_of(recognized: RecognizedMatmul, padding: tuple[int, ...], role: str) -> int:
    """How many elements padding adds to dimension ``role``."""
    extent = getattr(recognized.spec, role)
    factor = padding[recognized.loop_roles.index(role)] if role in recognized.loop_roles else 1
    return -extent % factor


def split_lanes(sch, block, loops: dict, lanes: int):
    """The dot form on a matmul block: k becomes (k-vectors, lanes) and the lanes a spatial axis of a new
    accumulator block (``rfactor``), whose lanes ``block`` then sums. Returns the accumulator block and its loops
    by role."""
    k_vectors, lane = sch.split(loops["k"], [None, lanes])
    out_axes = len(sch.get(block).writes[0].region)
    accumulators = sch.rfactor(lane, out_axes)
    roles = [role for role in loops for role in ((role, "lane") if role == "k" else (role,))]
    return accumulators, dict(zip(roles, sch.get_loops(accumulators)))
