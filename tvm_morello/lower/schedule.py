"""Turn a synthesised program into tvm.s_tir.Schedule primitives on the PrimFunc it was recognised from."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..search.program import Program
from ..search.rewrites import CacheView, PackRhs, RegisterOut, Select, SplitK, TileOut, ToAccum
from ..spec.recognize import RecognizedMatmul
from ..target import CpuTarget

SPATIAL = ("b", "m", "n")


@dataclass
class LoopPlan:
    """The loop nest a program's main path describes: tile sizes per dimension and where each move sits."""

    sizes: dict[str, list[int]] = field(default_factory=lambda: {d: [] for d in ("b", "m", "n", "k")})
    order: list[tuple[str, int]] = field(default_factory=list)  # (dimension, level) outermost first
    parallel_groups: list[list[tuple[str, int]]] = field(default_factory=list)
    pack_at: int | None = None  # index into order of the loop the pack sits under (-1: root)
    pack_width: int = 0
    pack_kernel: str = ""
    registers_at: int | None = None
    kernel: str = ""


def plan_loops(program: Program) -> LoopPlan:
    """Read the main path: each tile or split adds loop levels; moves remember the loop they sit under."""
    plan = LoopPlan()
    for node in program.main_path():
        action, spec = node.action, node.spec
        if isinstance(action, TileOut):
            group = []
            for dim in SPATIAL:
                extent, size = getattr(spec, dim), getattr(action, dim)
                if size < extent:
                    plan.sizes[dim].append(size)
                    entry = (dim, len(plan.sizes[dim]) - 1)
                    plan.order.append(entry)
                    group.append(entry)
            if action.parallel and group:
                plan.parallel_groups.append(group)
        elif isinstance(action, SplitK):
            plan.sizes["k"].append(action.k)
            plan.order.append(("k", len(plan.sizes["k"]) - 1))
        elif isinstance(action, PackRhs):
            plan.pack_at, plan.pack_width = len(plan.order) - 1, action.width
            plan.pack_kernel = str(node.children[0].action)
        elif isinstance(action, RegisterOut):
            plan.registers_at = len(plan.order) - 1
        elif isinstance(action, Select):
            plan.kernel = str(action.kernel)
        elif not isinstance(action, (CacheView, ToAccum)):
            raise NotImplementedError(f"no lowering for rewrite {action}")
    return plan


def _split_factors(extent: int, sizes: list[int]) -> list[int]:
    """Factors for sch.split: the outer count pads a non-dividing first tile; inner tiles divide."""
    bounds = [extent] + sizes
    factors = [math.ceil(bounds[0] / bounds[1])] if sizes else []
    factors += [bounds[i] // bounds[i + 1] for i in range(1, len(sizes))]
    return factors + [sizes[-1]] if sizes else [extent]


def _rhs_index_map(rhs_dims: tuple[str, ...], width: int):
    """Index map from the rhs buffer's axes to panel layout [.., n / width, k, n % width]."""
    def panel_map(*axes):
        named = dict(zip(rhs_dims, axes))
        batch = [named[d] for d in rhs_dims if d in ("b", "0")]
        return (*batch, named["n"] // width, named["k"], named["n"] % width)

    return panel_map


def _own_loops(sch, copy, consumer, roles: tuple[str, ...]) -> dict[str, object]:
    """The loops a copy block iterates itself (not its consumer's), by the buffer axis each one walks."""
    from tvm.tirx.analysis import undefined_vars

    shared = {sch.get(loop).loop_var.name for loop in sch.get_loops(consumer)}
    loops = sch.get_loops(copy)
    realize = sch.get(loops[-1]).body  # a copy block is a perfect nest: the innermost body is its realize
    used_by = [{v.name for v in undefined_vars(value)} for value in realize.iter_values]
    own = {}
    for loop in loops:
        name = sch.get(loop).loop_var.name
        if name not in shared:
            own.update({role: loop for role, names in zip(roles, used_by) if name in names})
    return own


def _vectorize_pack(sch, packed, consumer, rhs_dims: tuple[str, ...], lanes: int) -> None:
    """Lower pack_panels_vector: walk lanes x lanes blocks (n, k) and store lane-wide panel rows."""
    loops = _own_loops(sch, packed, consumer, rhs_dims)
    n_outer, n_lane = sch.split(loops["n"], [None, lanes])
    k_outer, k_inner = sch.split(loops["k"], [None, lanes])
    sch.reorder(n_outer, k_outer, k_inner, n_lane)
    sch.vectorize(n_lane)


def apply_program(sch, recognized: RecognizedMatmul, program: Program, target: CpuTarget) -> None:
    """Apply ``program`` to ``sch`` (which holds the recognised PrimFunc), in place."""
    plan = plan_loops(program)
    block = sch.get_sblock(recognized.block)
    loops = dict(zip(recognized.loop_roles, sch.get_loops(block)))
    spec = recognized.spec
    extents = {"b": spec.b, "m": spec.m, "n": spec.n, "k": spec.k}

    levels: dict[str, list] = {}
    for dim, loop in loops.items():
        if dim not in extents:
            continue
        levels[dim] = list(sch.split(loop, _split_factors(extents[dim], plan.sizes[dim]))) if plan.sizes[dim] else [loop]
    ordered = [levels[d][i] for d, i in plan.order]
    inner = [levels[d][-1] for d in ("b", "m", "k", "n") if d in levels]
    if plan.kernel == "broadcast_fma":
        inner = [levels[d][-1] for d in ("k", "b", "m", "n") if d in levels]
    unit = [loops[r] for r in loops if r not in extents]
    sch.reorder(*unit, *ordered, *inner)

    for group in plan.parallel_groups:
        fused = sch.fuse(*[levels[d][i] for d, i in group]) if len(group) > 1 else levels[group[0][0]][group[0][1]]
        sch.parallel(fused)
        for d, i in group:  # later references to these levels mean the fused loop
            levels[d][i] = fused
        ordered = [levels[d][i] for d, i in plan.order]

    if plan.pack_width:
        packed = sch.cache_read(block, recognized.rhs_read, "global")
        if plan.pack_at is not None and plan.pack_at >= 0:
            sch.compute_at(packed, ordered[plan.pack_at])
        sch.transform_layout(
            block, ("read", recognized.rhs_read), _rhs_index_map(recognized.rhs_dims, plan.pack_width),
            pad_value=0.0 if spec.n % plan.pack_width else None,
        )
        if plan.pack_kernel == "pack_panels_vector":
            _vectorize_pack(sch, packed, block, recognized.rhs_dims, target.lanes())
    if plan.registers_at is not None:
        local = sch.cache_write(block, 0, "local")
        if plan.registers_at >= 0:
            sch.reverse_compute_at(local, ordered[plan.registers_at])
        store_inner = sch.get_loops(local)[-1]
        if spec.n % target.lanes() == 0 and plan.sizes["n"] and plan.sizes["n"][-1] % target.lanes() == 0:
            _, vector = sch.split(store_inner, [None, target.lanes()])
            sch.vectorize(vector)
    if plan.kernel == "broadcast_fma":
        lanes = target.lanes()
        if "m" in levels:
            sch.unroll(levels["m"][-1])
        if "n" in levels:
            outer, vector = sch.split(levels["n"][-1], [None, lanes])
            sch.unroll(outer)
            sch.vectorize(vector)
    first_k = next((ordered[j] for j, (d, _) in enumerate(plan.order) if d == "k"), levels["k"][-1])
    sch.decompose_reduction(block, first_k)
