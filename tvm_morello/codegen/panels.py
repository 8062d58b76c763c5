"""B's panel layout, the one place it is defined: [b?, n, k] or [b?, k, n] becomes [b?, ceil(n / w), k, w], so a
register tile reads w consecutive columns of one k as whole vectors.

The schedule packs B into it (``pack_panels``: a copy re-laid out, or a workload's own pack block, placed under
a tile loop); kernels of prepacked weights read it as a parameter, filled once by ``pack_weights_func``."""
from __future__ import annotations

from dataclasses import dataclass


def panel_index_map(rhs_dims: tuple[str, ...], width: int):
    """Index map from B's axes (their roles, e.g. ("n", "k") or ("b", "k", "n")) to the panel layout."""

    def to_panels(*axes):
        named = dict(zip(rhs_dims, axes))
        batch = [named[d] for d in rhs_dims if d in ("b", "0")]
        return (*batch, named["n"] // width, named["k"], named["n"] % width)

    return to_panels


def i64(value: int):
    from tvm import tirx

    return tirx.IntImm("int64", value)


def ceildiv(a, b: int):
    """ceil(a / b) of a (possibly symbolic) int64 extent."""
    from tvm import tirx

    return tirx.floordiv(a + (b - 1), i64(b))


def panel_shape(lead: tuple, k, n, width: int) -> tuple:
    """The panel buffer's shape for B of extents k x n (ints or int64 expressions) behind ``lead`` batch axes."""
    return (*lead, ceildiv(n, width), k, i64(width))


@dataclass(frozen=True)
class PanelPack:
    """How B reaches the register tile in panels.

    ``read`` is B's index among the matmul block's reads. With ``rhs_dims`` (the role of each B axis) the pack
    is a copy of B re-laid out by the schedule: a new ``cache_read``, or the copy block ``source`` the workload
    already has (pad_einsum's padded B), with zero ``pad`` columns when ``width`` does not divide n. Without
    ``rhs_dims`` the block ``source`` already writes panels (a kernel workload's own pack). ``vectorize``:
    "blocks" walks lanes x lanes (n, k) blocks and stores lane-wide panel rows; "rows" vectorises the pack's
    innermost loop (B read from [n, k] rows, a vector of one k per step).
    """

    read: int
    rhs_dims: tuple[str, ...] = ()
    width: int = 0
    source: str | None = None
    pad: bool = False
    vectorize: str = ""


def pack_panels(sch, block, pack: PanelPack, at_loop, lanes: int) -> None:
    """Create or take B's pack, place it under ``at_loop`` (None: before the nest) and lay it out in panels."""
    copy = sch.get_sblock(pack.source) if pack.source else sch.cache_read(block, pack.read, "global")
    if at_loop is not None:
        sch.compute_at(copy, at_loop)
    if pack.rhs_dims:
        sch.transform_layout(block, ("read", pack.read), panel_index_map(pack.rhs_dims, pack.width),
                             pad_value=0.0 if pack.pad else None)
    if pack.vectorize == "blocks":
        loops = _own_loops(sch, copy, block, pack.rhs_dims)
        n_outer, n_lane = sch.split(loops["n"], [None, lanes])
        k_outer, k_inner = sch.split(loops["k"], [None, lanes])
        sch.reorder(n_outer, k_outer, k_inner, n_lane)
        sch.vectorize(n_lane)
    elif pack.vectorize == "rows":
        sch.vectorize(sch.get_loops(copy)[-1])


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


def pack_compute(b_raw, lead: tuple, k, n, width: int, name: str, *, transpose_b: bool, zero_pad: bool):
    """The te computation of B's panels from B as the user holds it. Columns beyond n repeat column n - 1, or
    are zero with ``zero_pad``: a kernel never stores the outputs they feed, so the per-call pack skips the
    select (a conditional load there would scalarise the vectorised pack)."""
    from tvm import te, tirx

    def body(*idx):
        bb, p, kk, c = idx[:-3], idx[-3], idx[-2], idx[-1]
        col = p * width + c
        safe = te.min(col, n - 1)
        value = b_raw[(*bb, safe, kk)] if transpose_b else b_raw[(*bb, kk, safe)]
        return tirx.Select(col < n, value, tirx.const(0.0, "float32")) if zero_pad else value

    return te.compute(panel_shape(lead, k, n, width), body, name=name)


def pack_panels_array(b, width: int, *, transpose_b: bool):
    """A constant weight (numpy, [n, k] with ``transpose_b`` else [k, n]) in the panel layout, zero beyond n:
    what ``pack_weights_func`` computes, done once when a model is compiled."""
    import numpy as np

    kn = np.asarray(b).T if transpose_b else np.asarray(b)
    k, n = kn.shape
    panels = -(-n // width)
    padded = np.zeros((k, panels * width), kn.dtype)
    padded[:, :n] = kn
    return np.ascontiguousarray(padded.reshape(k, panels, width).transpose(1, 0, 2))


def unpack_panels_array(packed, n: int):
    """A weight in the panel layout [n / width, k, width] back as [k, n]: the inverse of ``pack_panels_array``."""
    panels, k, width = packed.shape
    return packed.transpose(1, 0, 2).reshape(k, panels * width)[:, :n]
