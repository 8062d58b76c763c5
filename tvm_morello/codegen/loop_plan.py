"""The loop nest a register-tile schedule builds, read from a synthesised program or from a micro-kernel.

Both describe the same thing: tile sizes per dimension, the order of the tile loops, which of them are fused
(and run in parallel), where B's panel pack and the register tile's write-back sit, and the inner kernel.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Mapping

from ..search.program import Program
from ..search.rewrites import CacheView, PackRhs, RegisterOut, Select, SplitK, TileOut, ToAccum
from .microkernel import MicroKernel

SPATIAL = ("b", "m", "n")
# innermost loops per kernel, outermost first: the outer-product kernel broadcasts A over NR-wide B vectors
# for each k; the dot kernel keeps a k-vector per output and sums its lanes at the write-back; any other kernel
# (scalar loops) keeps the matmul's own order
INNER_ORDER = {"broadcast_fma": ("k", "b", "m", "n"), "dot": ("k", "b", "m", "n", "lane")}
DEFAULT_INNER_ORDER = ("b", "m", "k", "n")

Level = tuple[str, int]  # (dimension, index of its tile loop, outermost 0)


@dataclass(frozen=True)
class LoopGroup:
    """Tile loops fused into one; ``parallel`` runs the fused loop across the cores."""

    levels: tuple[Level, ...]
    parallel: bool = True


@dataclass(frozen=True)
class LoopPlan:
    """A register-tile loop nest.

    ``sizes[d]`` are dimension d's tile sizes, outermost first (each split adds a loop around the tile);
    ``order`` lists the tile loops outermost first, a dimension left whole appearing as its level 0; the
    innermost loops follow in ``INNER_ORDER[kernel]``. ``pack_at`` / ``registers_at`` index ``order``: the loop
    B's panels are packed under / the register tile is written back under (-1: outside every loop).
    ``writeback`` is how that write-back is vectorised: "vectors" (only when its rows are whole vectors),
    "unrolled" (rows unrolled, lane-wide and predicated columns), "lanes" (the dot form's lane sum unrolled, for
    kernels LLVM may reassociate), "lane_tree" (the dot form's lane sum as vectorised halvings: static extents)
    or "plain" (left to LLVM).
    """

    sizes: Mapping[str, tuple[int, ...]]  # every dimension the nest has; () = left whole
    order: tuple[Level, ...]
    groups: tuple[LoopGroup, ...] = ()
    pack_at: int | None = None
    pack_width: int = 0
    pack_vectorized: bool = False
    registers_at: int | None = None
    kernel: str = ""
    writeback: str = "vectors"

    def inner_order(self) -> tuple[str, ...]:
        return INNER_ORDER.get(self.kernel, DEFAULT_INNER_ORDER)


def plan_loops(program: Program) -> LoopPlan:
    """Read a program's main path: each tile or split adds loop levels; moves remember the loop they sit under."""
    sizes: dict[str, list[int]] = {d: [] for d in ("b", "m", "n", "k")}
    order: list[Level] = []
    groups: list[LoopGroup] = []
    found: dict[str, object] = {}
    for node in program.main_path():
        action, spec = node.action, node.spec
        if isinstance(action, TileOut):
            group = []
            for dim in SPATIAL:
                extent, size = getattr(spec, dim), getattr(action, dim)
                if size < extent:
                    sizes[dim].append(size)
                    group.append((dim, len(sizes[dim]) - 1))
            order.extend(group)
            if action.parallel and group:
                groups.append(LoopGroup(tuple(group)))
        elif isinstance(action, SplitK):
            sizes["k"].append(action.k)
            order.append(("k", len(sizes["k"]) - 1))
        elif isinstance(action, PackRhs):
            found.update(pack_at=len(order) - 1, pack_width=action.width,
                         pack_vectorized=str(node.children[0].action) == "pack_panels_vector")
        elif isinstance(action, RegisterOut):
            found["registers_at"] = len(order) - 1
            if action.dot:
                found["writeback"] = "lane_tree"
        elif isinstance(action, Select):
            found["kernel"] = str(action.kernel)
        elif not isinstance(action, (CacheView, ToAccum)):
            raise NotImplementedError(f"no lowering for rewrite {action}")
    return LoopPlan({d: tuple(s) for d, s in sizes.items()}, tuple(order), tuple(groups), **found)


def in_k_vectors(plan: LoopPlan, width: int) -> LoopPlan:
    """A dot-form plan over steps of ``width`` k (the partial sums each output holds): the matmul's k is split
    into (steps, width) before it is tiled, so its k tile sizes count steps; the kernel's own k tile, one vector,
    becomes one step."""
    return replace(plan, sizes={**plan.sizes, "k": tuple(max(1, size // width) for size in plan.sizes.get("k", ()))})


def microkernel_plan(micro: MicroKernel, *, batched: bool, packs_b: bool, parallel_over_batch: bool = False) -> LoopPlan:
    """The loop nest of a shape-generic kernel.

    Outer-product form (BLIS): column panels outermost, fused with the batch into the parallel loop, B's panel
    packed there (``packs_b``), row tiles inside, the MR x NR tile written back per row tile. Dot form: row tiles
    outermost (fused with the batch unless ``parallel_over_batch``), the tile written back per column tile.
    A serial kernel fuses the same loops without running them in parallel.
    """
    batch: tuple[Level, ...] = (("b", 0),) if batched else ()
    sizes = {"b": (), "m": (micro.mr,), "n": (micro.nr,), "k": ()}
    if micro.dot:
        order = (*batch, ("m", 0), ("n", 0))
        fused = batch if batched and parallel_over_batch else (*batch, ("m", 0))
        return LoopPlan(sizes, order, (LoopGroup(fused, micro.parallel),), registers_at=len(order) - 1,
                        kernel="dot", writeback="lanes")
    order = (*batch, ("n", 0), ("m", 0))
    return LoopPlan(sizes, order, (LoopGroup((*batch, ("n", 0)), micro.parallel),),
                    pack_at=len(batch) if packs_b else None, pack_width=micro.nr if packs_b else 0,
                    registers_at=len(order) - 1, kernel="broadcast_fma", writeback="unrolled")
