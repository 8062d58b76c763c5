"""A matmul block padded to whole tiles before it is tiled, so that no predicate reaches the outer-product kernel.

A tile that does not divide its extent makes TVM predicate every statement under it: inside that kernel it is
a branch per row and k (dense 1500x512x2048 ran at 0.6x the padded shape's speed) or, on a vector's own lanes,
a scalarised kernel (a 197-wide attention batch_matmul ran at 6 GFLOP/s). ``pad_einsum`` instead computes the
padded product and copies its valid part out: A's padding is inlined (a select per scalar it broadcasts), B's is
kept as a copy (the pack's source; a select would be on a vector's lanes), and the output copy is the register
tile's write-back."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PaddedBlocks:
    """What padding left for the schedule: B's padded copy (a block name, when B was padded) and the block
    storing the valid part of the padded output (None when nothing was padded)."""

    rhs: str | None = None
    out: object | None = None  # a tvm.s_tir.SBlockRV


def pad_to_tiles(sch, block, buffers: tuple[str, str, str], factors) -> PaddedBlocks:
    """Pad ``block``'s loops to multiples of ``factors`` (one per loop, 1 = as is), ``buffers`` being its
    (lhs, rhs, out) names."""
    factors = list(factors)
    if all(isinstance(f, int) and f == 1 for f in factors):
        return PaddedBlocks()
    sch.pad_einsum(block, factors)
    lhs, rhs, out = (_block_or_none(sch, f"{name}_pad") for name in buffers)
    if lhs is not None:
        sch.compute_inline(lhs)
    return PaddedBlocks(f"{buffers[1]}_pad" if rhs is not None else None, out)


def _block_or_none(sch, name: str):
    try:
        return sch.get_sblock(name)
    except Exception:  # get_sblock raises when pad_einsum padded no such buffer
        return None
