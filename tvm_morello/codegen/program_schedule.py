"""A synthesised program as tvm.s_tir.Schedule primitives on the PrimFunc it was recognised from."""
from __future__ import annotations

from dataclasses import replace

from ..search.program import Program
from ..spec.recognize import RecognizedMatmul
from ..target import CpuTarget
from .loop_plan import LoopPlan, in_k_vectors, plan_loops
from .microkernel import RESERVED_VREGS
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
        width = dot_chains(plan, recognized.spec, target) * target.lanes()
        accumulators, loops = split_lanes(sch, block, loops, width)
        schedule_register_tiles(sch, accumulators, loops, in_k_vectors(plan, width), target.lanes(), writeback=block)
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


def dot_chains(plan: LoopPlan, spec, target: CpuTarget) -> int:
    """Vectors of partial sums per output in a dot-form tile: enough that the tile's columns (rhs rows, the
    weights a GEMV streams) keep ``target.stream_bytes_in_flight`` loading while each chain waits on its FMA, as
    long as k and its tiles divide into them and the accumulators fit the registers. A 1 x 1 GEMV tile with one
    chain reads its weights at the speed of the FMA latency, not of memory."""
    lanes, vector_bytes = target.lanes(), target.vector_bits // 8
    columns, outputs = _innermost(plan, spec, "n"), _innermost(plan, spec, "m") * _innermost(plan, spec, "n")
    k_extents = [spec.k, *(size for size in plan.sizes.get("k", ()) if size > lanes)]
    chains = 1
    while (columns * chains * vector_bytes < target.stream_bytes_in_flight
           and outputs * chains * 2 + RESERVED_VREGS <= target.vector_registers
           and all(extent % (chains * 2 * lanes) == 0 for extent in k_extents)):
        chains *= 2
    return chains


def _innermost(plan: LoopPlan, spec, dim: str) -> int:
    sizes = plan.sizes.get(dim, ())
    return sizes[-1] if sizes else getattr(spec, dim)


def split_lanes(sch, block, loops: dict, width: int):
    """The dot form on a matmul block: k becomes (k-vectors, partial sums) and the partial sums, ``width`` per
    output (whole vectors), a spatial axis of a new accumulator block (``rfactor``), which ``block`` then sums.
    Returns the accumulator block and its loops by role."""
    k_vectors, lane = sch.split(loops["k"], [None, width])
    out_axes = len(sch.get(block).writes[0].region)
    accumulators = sch.rfactor(lane, out_axes)
    roles = [role for role in loops for role in ((role, "lane") if role == "k" else (role,))]
    return accumulators, dict(zip(roles, sch.get_loops(accumulators)))
