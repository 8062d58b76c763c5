"""The one register-tile schedule: a LoopPlan (from a program or a micro-kernel) applied to a matmul block,
for static and symbolic extents alike."""
from __future__ import annotations

from typing import Mapping

from .loop_plan import LoopPlan
from .panels import PanelPack, pack_panels

DIMS = ("b", "m", "n", "k", "lane")  # loop roles a plan may tile or order; any other role is a unit loop


def schedule_register_tiles(sch, block, loops: Mapping[str, object], plan: LoopPlan, lanes: int, *,
                            pack: PanelPack | None = None, writeback=None) -> None:
    """Tile ``block`` (a matmul, its loops by role) as ``plan`` says, in place.

    ``pack`` says where B's panels come from when the plan packs them. ``writeback`` is the block that copies
    the register tile out, when the workload already has one (the block's own output is then made local);
    without it the schedule adds one (``cache_write``).
    """
    n_extent = sch.get(loops["n"]).extent if "n" in loops else None
    levels = {dim: _split(sch, loop, plan.sizes.get(dim, ())) for dim, loop in loops.items() if dim in DIMS}
    ordered = [levels[d][i] for d, i in plan.order]
    inner = [levels[d][-1] for d in plan.inner_order() if d in levels and (d, len(levels[d]) - 1) not in plan.order]
    unit = [loop for role, loop in loops.items() if role not in DIMS]
    sch.reorder(*unit, *ordered, *inner)

    for group in plan.groups:
        first = levels[group.levels[0][0]][group.levels[0][1]]
        fused = sch.fuse(*[levels[d][i] for d, i in group.levels]) if len(group.levels) > 1 else first
        if group.parallel:
            sch.parallel(fused)
        for d, i in group.levels:  # later references to these levels mean the fused loop
            levels[d][i] = fused
    ordered = [levels[d][i] for d, i in plan.order]

    if plan.pack_at is not None and pack is not None:
        pack_panels(sch, block, pack, ordered[plan.pack_at] if plan.pack_at >= 0 else None, lanes)
    if plan.registers_at is not None:
        if writeback is None:
            writeback = sch.cache_write(block, 0, "local")
        else:
            sch.set_scope(block, 0, "local")
        stages = _halve_lanes(sch, writeback) if plan.writeback == "lane_tree" else [writeback]
        if plan.registers_at >= 0:
            for stage in stages:
                sch.reverse_compute_at(stage, ordered[plan.registers_at])
        if plan.writeback == "lane_tree":
            depth = _depth_below(sch, writeback, ordered[plan.registers_at] if plan.registers_at >= 0 else None)
            for i, stage in enumerate(stages):  # every halving's adds are vectors; the last pair's are scalars
                *tile, last = sch.get_loops(stage)[depth:]
                for loop in tile:
                    sch.unroll(loop)
                (sch.unroll if i == len(stages) - 1 else sch.vectorize)(last)
        else:
            _vectorize_writeback(sch, writeback, plan, lanes, n_extent)
    _schedule_kernel(sch, plan, levels, lanes)
    first_k = next((ordered[j] for j, (d, _) in enumerate(plan.order) if d == "k"), levels["k"][-1])
    sch.decompose_reduction(block, first_k)


def _split(sch, loop, sizes: tuple[int, ...]) -> list:
    """The loop's levels, outermost first: one per tile size around the innermost tile (a first tile that does
    not divide the extent pads it; inner tiles divide the tile around them)."""
    if not sizes:
        return [loop]
    factors = [None] + [outer // inner for outer, inner in zip(sizes, sizes[1:])] + [sizes[-1]]
    return list(sch.split(loop, factors))


def _halve_lanes(sch, writeback) -> list:
    """The dot form's write-back, out = sum of each output's partial sums (its vectors' lanes), as a tree: each
    halving adds the upper half to the lower (vector adds; a block of its own, made by ``rfactor``, kept in
    registers) down to the last pair, which ``writeback`` adds and stores: log2(partial sums) dependent adds per
    output instead of one scalar add each. Returns the blocks in order, ``writeback`` last, each with its
    iterators ordered (output, pair, half) so the loops made for it end with the vector."""
    out_axes = len(sch.get(writeback).writes[0].region)
    _reorder_iters(sch, writeback, vector_first=False)
    stages, width = [], int(sch.get(sch.get_loops(writeback)[-1]).extent)  # lanes x the output's chains
    while width > 2:
        pairs, half = sch.split(sch.get_loops(writeback)[-1], [2, width // 2])
        stage = sch.rfactor(half, out_axes)
        sch.set_scope(stage, 0, "local")
        _reorder_iters(sch, stage, vector_first=True)
        _reorder_iters(sch, writeback, vector_first=False)  # rfactor put its reduction first again
        stages.append(stage)
        width //= 2
    return [*stages, writeback]


def _reorder_iters(sch, block, vector_first: bool) -> None:
    """Spatial iterators first, reductions after; ``vector_first``: the first iterator (what ``rfactor`` made
    spatial) goes last."""
    iters = sch.get(block).iter_vars
    first = [0] if vector_first else []
    rest = [i for i in range(len(iters)) if i not in first]
    order = sorted(rest, key=lambda i: (int(iters[i].iter_type) != 0, i)) + first
    if order != list(range(len(iters))):
        sch.reorder_block_iter_var(block, order)


def _depth_below(sch, block, loop) -> int:
    """How many of ``block``'s loops enclose ``loop`` (itself included): 0 when ``loop`` is None."""
    if loop is None:
        return 0
    target = sch.get(loop)
    return 1 + next(i for i, rv in enumerate(sch.get_loops(block)) if sch.get(rv).same_as(target))


def _vectorize_writeback(sch, writeback, plan: LoopPlan, lanes: int, n_extent) -> None:
    loops = sch.get_loops(writeback)
    if plan.writeback == "lanes":  # the dot form's sum over a k-vector's lanes, left to LLVM to reassociate
        sch.unroll(loops[-1])
    elif plan.writeback == "unrolled":
        # the tile's rows are written in whole vectors when only the row index is predicated (static n, whole
        # panels: 3-10% on A·V, whose k = T is short); with a symbolic n TVM scalarises the predicated vectors
        *rows, cols = loops[-2:] if plan.sizes["m"][-1] > 1 else loops[-1:]
        cols_outer, vector = sch.split(cols, [None, lanes])
        for row in rows:
            sch.unroll(row)
        sch.unroll(cols_outer)
        sch.vectorize(vector)
    elif plan.writeback == "vectors" and _whole_vectors(n_extent, plan.sizes.get("n", ()), lanes):
        _, vector = sch.split(loops[-1], [None, lanes])
        sch.vectorize(vector)


def _whole_vectors(n_extent, tile: tuple[int, ...], lanes: int) -> bool:
    """Whether every row of the write-back is whole vectors: a static n and an n tile that are lane multiples."""
    from tvm import tirx

    return isinstance(n_extent, tirx.IntImm) and int(n_extent) % lanes == 0 and bool(tile) and tile[-1] % lanes == 0


def _schedule_kernel(sch, plan: LoopPlan, levels: dict, lanes: int) -> None:
    """The innermost tile: the outer-product kernel unrolls its rows and its NR columns into vectors; the dot
    kernel unrolls rows and columns around one k-vector per output."""
    if plan.kernel == "broadcast_fma":
        if "m" in levels:
            sch.unroll(levels["m"][-1])
        if "n" in levels:
            outer, vector = sch.split(levels["n"][-1], [None, lanes])
            sch.unroll(outer)
            sch.vectorize(vector)
    elif plan.kernel == "dot":
        sch.unroll(levels["m"][-1])
        sch.unroll(levels["n"][-1])
        chains, vector = sch.split(levels["lane"][-1], [None, lanes])  # independent chains of vector FMAs
        sch.unroll(chains)
        sch.vectorize(vector)
