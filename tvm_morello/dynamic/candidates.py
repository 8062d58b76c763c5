"""Micro-kernel candidates (register tiles MR x NR) sized by the hardware, never by the shapes."""
from __future__ import annotations

import functools
import multiprocessing
import warnings
from typing import Callable

from ..codegen.microkernel import MicroKernel
from ..target import CpuTarget

# no 3-row tiles: measured 6% slower per row than 4-6 rows (768 x 3072, Zen 4), a gap the planner's cost model did
# not see within its tolerance, so they ran m = 12 and 24 5-8% slower than the 4-row tile
MR_CHOICES = (1, 2, 4, 5, 6, 8)
NR_VECTORS = (1, 2, 4, 8)  # NR in vector registers (8 only fits small MR: GEMV-like shapes)


def serial_microkernels(target: CpuTarget) -> list[MicroKernel]:
    """Kernels for tiny shapes, without the thread pool's wake-up: one row one vector wide (least padding and
    packing), two rows four vectors wide (1.3-1.6x faster than it on attention's A·V at T <= 16), and four
    rows one vector wide (a further 10-15% on A·V at T = 8..12, where B is a single vector wide)."""
    lanes = target.lanes()
    return [MicroKernel(1, lanes, parallel=False), MicroKernel(2, 4 * lanes, parallel=False),
            MicroKernel(4, lanes, parallel=False)]


def dot_microkernels() -> list[MicroKernel]:
    """Dot-form tiles for tiny ``A Bᵀ`` shapes, each in parallel and serially: one output per tile (no padding;
    measured fastest for attention scores at T >= 5, 1.3-1.6x the 2 x 4 tile at T = 16..32), and two A rows
    against four B rows (each k-vector loaded once per two or four outputs; best at some T <= 8)."""
    return [MicroKernel(1, 1, dot=True), MicroKernel(2, 4, dot=True),
            MicroKernel(1, 1, parallel=False, dot=True), MicroKernel(2, 4, parallel=False, dot=True)]


def hardware_microkernels(target: CpuTarget) -> list[MicroKernel]:
    """Every register tile the vector register file holds (parallel kernels)."""
    lanes = target.lanes()
    tiles = [MicroKernel(mr, v * lanes) for mr in MR_CHOICES for v in NR_VECTORS]
    return [t for t in tiles if t.fits(target)]


def _dp_tiles(target: CpuTarget, k: int, n: int, top_k: int) -> list[tuple[int, int]]:
    from ..search import synthesize
    from ..spec import dense_spec

    lanes = target.lanes()
    tiles: list[tuple[int, int]] = []
    for panel in sorted({v * lanes for v in NR_VECTORS if n % (v * lanes) == 0} or {lanes}):
        spec = dense_spec(8, k, panel, prepacked=panel, target=target)
        for program in synthesize(spec, target, top_k=top_k):
            tile = program.register_tile()
            if tile is not None and tile not in tiles:
                tiles.append(tile)
    return tiles


def _dp_worker(queue, target, k, n, top_k) -> None:
    try:
        queue.put(("ok", _dp_tiles(target, k, n, top_k)))
    except Exception as err:  # reported to the parent, which falls back to the hardware list
        queue.put(("error", f"{type(err).__name__}: {err}"))


@functools.lru_cache(maxsize=64)
def dp_microkernels(target: CpuTarget, k: int, n: int, *, top_k: int = 8, timeout_s: float = 30.0) -> tuple[MicroKernel, ...] | None:
    """Distinct register tiles of the Morello DP's top-k programs on register/L1-sized dense specs
    (m = 8 rows, n = one panel, the real k); None if the DP fails or exceeds ``timeout_s``."""
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    worker = context.Process(target=_dp_worker, args=(queue, target, min(k, 4096), n, top_k), daemon=True)
    worker.start()
    worker.join(timeout_s)
    if worker.is_alive():
        worker.kill()
        worker.join()
        warnings.warn(f"Morello DP gave no register tiles within {timeout_s:.0f} s; using the hardware list", stacklevel=2)
        return None
    status, value = queue.get() if not queue.empty() else ("error", f"exit code {worker.exitcode}")
    if status != "ok":
        warnings.warn(f"Morello DP failed ({value}); using the hardware list", stacklevel=2)
        return None
    tiles = [MicroKernel(mr, nr) for mr, nr in value]
    return tuple(t for t in tiles if t.fits(target)) or None


def _spread(tiles: list[MicroKernel], limit: int) -> list[MicroKernel]:
    step = (len(tiles) - 1) / max(limit - 1, 1)
    return sorted({tiles[round(i * step)] for i in range(limit)})


def widest_tile_per_height(tiles: list[MicroKernel], n: int, lanes: int) -> list[MicroKernel]:
    """For every tile height, the tile with the most accumulators no wider than ``n``.

    Each row pass of a tile costs about the same per row whatever its height (768 x 3072, Zen 4: 21 us per row for
    4, 5, 6 and 8 rows), so a small m runs fastest on the height that pads it least: m = 5 took 107 us on the
    5 x 64 tile, 167 us on the 4 x 64 one (two passes), m = 6 126 us on 6 x 64. Heights of one or two rows serve
    GEMV-like shapes, bound by streaming B (768 x 768 at m = 1: 2 x 64 runs 14 us, 2 x 32 16 us).
    """
    best: dict[int, MicroKernel] = {}
    for tile in tiles:
        if tile.nr <= max(n, lanes) and (tile.mr not in best or tile.accumulators(lanes) > best[tile.mr].accumulators(lanes)):
            best[tile.mr] = tile
    return [best[mr] for mr in sorted(best)]


def candidate_microkernels(
    target: CpuTarget,
    k: int,
    n: int,
    *,
    limit: int | None = None,
    source: str = "auto",
    usable: Callable[[MicroKernel], bool] | None = None,
) -> list[MicroKernel]:
    """Register tiles to measure for a matmul of reduction depth ``k`` and width ``n``.

    ``source``: "dp" (the Morello DP's tiles in its cost order, falling back to hardware), "hardware" (every
    tile the register file holds), or "auto" (the DP's tiles, plus the widest tile of every height, so that
    each small m has a tile that pads it little). ``usable`` filters tiles first; ``limit`` keeps the DP's
    best (the per-height tiles come on top) or an even spread of the hardware list.
    """
    if source not in ("auto", "dp", "hardware"):
        raise ValueError(f"source={source!r}: expected 'auto', 'dp' or 'hardware'")
    keep = usable or (lambda tile: True)
    hardware = [t for t in hardware_microkernels(target) if keep(t)]
    ranked = [t for t in (dp_microkernels(target, k, n) or ()) if keep(t)] if source != "hardware" else []
    if not ranked:
        return hardware if limit is None or len(hardware) <= limit else _spread(hardware, limit)
    picked = ranked if limit is None else ranked[:limit]
    heights = widest_tile_per_height(hardware, n, target.lanes()) if source == "auto" else []
    return picked + [tile for tile in heights if tile not in picked]
