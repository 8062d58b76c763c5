"""Shape-generic micro-kernels: symbolic PrimFuncs over whole register tiles (padding rows clamp their reads,
B panels are zero-padded, a tile wider than the panels past the last one reads it again), so only each tile's
write-back is predicated and every shape is exact."""
from __future__ import annotations

from ..spec.epilogue import Epilogue
from ..spec.symbolic import DynamicWorkload
from ..target import CpuTarget
from .epilogue import apply_epilogue, epilogue_inputs
from .loop_plan import microkernel_plan
from .microkernel import MICRO_ANNOTATION, MicroKernel
from .panels import PanelPack, ceildiv, i64, pack_compute, panel_index_map, panel_shape
from .register_tile import schedule_register_tiles

ACC_BLOCK, STORE_BLOCK, PACK_BLOCK = "acc", "Y", "pack"
# Prepacked weights are stored in panels 2 vectors wide (128-byte rows on AVX-512); a tuned tile reads whole
# rows of one panel or of several side by side, each a sequential stream. Measured (Zen 4, weights read among
# copies spanning 340 MB or 28 MB): at m = 8 an 8 x 32 tile ran at 1.07x the m = 4 time over 128-byte rows,
# 1.55x over 256-byte rows (reading half of each) and 1.28x over 64-byte panels (two of them); a 4 x 64 tile ran
# within 5% as fast over two 128-byte panels as over one 256-byte panel (m = 1..256); at m = 1 a 1 x 16 tile
# reading half of each 128-byte row ran 2x slower than a 1 x 64 tile, yet one tuning run measured it fastest
# (its speed depends on whether L2 still holds the other half), so tiles narrower than a panel are not tuned.
WEIGHT_PANEL_VECTORS = 2
WEIGHT_TILE_VECTORS = 4  # the widest register tile over prepacked weights (wider ones hold fewer rows)
BATCH_UNITS_PER_CORE = 4  # batch matrices per core above which dot-form kernels parallelise over the batch alone


def _symbols(workload: DynamicWorkload) -> dict:
    from tvm import te

    return {name: te.var(name, "int64") for name in workload.var_names}


def _extent_expr(workload_dim, symbols):
    return symbols[workload_dim] if isinstance(workload_dim, str) else i64(workload_dim)


def _raw_b(workload: DynamicWorkload, lead, k, n):
    from tvm import te

    return te.placeholder(lead + ((n, k) if workload.transpose_b else (k, n)), name="B")


def kernel_workload(workload: DynamicWorkload, micro: MicroKernel, panel: int, epilogue: Epilogue | None = None):
    """The unscheduled symbolic PrimFunc ``micro``'s register tile is scheduled on.

    Parameters are A, then B (prepacked panels if ``constant_b``, else raw), the epilogue's vectors and tensors
    (if any), then the output. An epilogue's stages sit between the accumulator and the output block.
    """
    from tvm import te

    symbols = _symbols(workload)
    m, k, n = (_extent_expr(d, symbols) for d in (workload.m, workload.k, workload.n))
    lead = (_extent_expr(workload.batch, symbols),) if workload.batch else ()
    a = te.placeholder(lead + (m, k), name="A")
    if workload.constant_b:
        b_param = te.placeholder(panel_shape(lead, k, n, panel), name="Bp")
        b_panels = b_param
    else:
        b_param = _raw_b(workload, lead, k, n)
        b_panels = (pack_compute(b_param, lead, k, n, panel, PACK_BLOCK, transpose_b=workload.transpose_b,
                                 zero_pad=False) if workload.packs_b() else None)
    cols = n
    if b_panels is not None:  # whole tiles: padded columns are computed, never stored
        tile_cols = max(panel, micro.nr)
        cols = ceildiv(n, tile_cols) * tile_cols
    to_panels = panel_index_map(("b",) * len(lead) + ("n", "k"), panel)
    last_panel = _overhanging_panel(workload, micro, panel, n)
    r = te.reduce_axis((i64(0), k), "k")

    def acc_body(*idx):
        bb, i, j = idx[:-2], idx[-2], idx[-1]
        lhs = a[(*bb, te.min(i, m - 1), r)]
        if b_panels is None:
            rhs = b_param[(*bb, r, j)]
        else:
            *batch, p, kk, c = to_panels(*bb, j, r)
            rhs = b_panels[(*batch, p if last_panel is None else te.min(p, last_panel), kk, c)]
        return te.sum(lhs * rhs, axis=r)

    acc = te.compute(lead + (ceildiv(m, micro.mr) * micro.mr, cols), acc_body, name=ACC_BLOCK)
    shape, inputs = lead + (m, n), []
    if epilogue is not None:
        vectors, tensors = epilogue_inputs(epilogue, shape)
        inputs = vectors + tensors
        result = apply_epilogue(epilogue, te.compute(shape, lambda *idx: acc[idx], name="acc_out"), vectors, tensors)
        out = te.compute(shape, lambda *idx: result[idx], name=STORE_BLOCK)
    else:
        out = te.compute(shape, lambda *idx: acc[idx], name=STORE_BLOCK)
    return te.create_prim_func([a, b_param, *inputs, out]).with_attr("tirx.noalias", True)


def _overhanging_panel(workload: DynamicWorkload, micro: MicroKernel, panel: int, n):
    """The last panel's index when ``micro``'s tiles, several panels wide, can reach past it (their columns
    there are never stored), else None: no clamp in the kernel."""
    if micro.nr <= panel:
        return None
    if isinstance(workload.n, int) and -(-workload.n // panel) % (micro.nr // panel) == 0:
        return None
    return ceildiv(n, panel) - 1


def supports_dot(workload: DynamicWorkload, lanes: int) -> bool:
    """The dot form reads B[n, k] rows in whole vectors: B an activation stored transposed, k a static
    multiple of the vector lanes."""
    return (workload.transpose_b and not workload.constant_b and isinstance(workload.k, int)
            and workload.k % lanes == 0)


def dot_kernel_workload(workload: DynamicWorkload, micro: MicroKernel, lanes: int):
    """out[b?, i, j] = sum over lanes of acc[b?, i, j, :], where acc accumulates A[i, k-vector] * B[j, k-vector]
    over the k-vectors: the reads clamp padding rows and columns, so whole MR x NR tiles need no checks."""
    from tvm import te

    if not supports_dot(workload, lanes):
        raise ValueError(f"{workload.name}: the dot form needs an activation B[n, k] with static k % {lanes} == 0")
    symbols = _symbols(workload)
    m, n = _extent_expr(workload.m, symbols), _extent_expr(workload.n, symbols)
    lead = (_extent_expr(workload.batch, symbols),) if workload.batch else ()
    a = te.placeholder(lead + (m, i64(workload.k)), name="A")
    b = te.placeholder(lead + (n, i64(workload.k)), name="B")
    kv = te.reduce_axis((i64(0), i64(workload.k // lanes)), "kv")

    def acc_body(*idx):
        bb, i, j, lane = idx[:-3], idx[-3], idx[-2], idx[-1]
        kk = kv * lanes + lane
        return te.sum(a[(*bb, te.min(i, m - 1), kk)] * b[(*bb, te.min(j, n - 1), kk)], axis=kv)

    acc = te.compute(lead + (ceildiv(m, micro.mr) * micro.mr, ceildiv(n, micro.nr) * micro.nr, i64(lanes)),
                     acc_body, name=ACC_BLOCK)
    lane = te.reduce_axis((i64(0), i64(lanes)), "lane")
    out = te.compute(lead + (m, n), lambda *idx: te.sum(acc[(*idx, lane)], axis=lane), name=STORE_BLOCK)
    return te.create_prim_func([a, b, out]).with_attr("tirx.noalias", True)


def dot_parallel_over_batch(workload: DynamicWorkload, cores: int) -> bool:
    """Whether the dot form parallelises over the batch alone: when it holds several matrices per core.
    Fusing the row tiles into the parallel loop costs two integer divisions per tile, 10-25% of a
    short-sequence QKᵀ (measured at T = 4..24, batch 192)."""
    return workload.smallest_batch() >= BATCH_UNITS_PER_CORE * cores


def schedule_microkernel(sch, workload: DynamicWorkload, micro: MicroKernel, target: CpuTarget,
                         epilogue: Epilogue | None = None) -> None:
    """The register-tile schedule of ``microkernel_plan`` on the kernel workload: its accumulator block is the
    register tile, its output block the write-back (``epilogue``'s stages inlined into it), its pack block
    (activations) B's panels."""
    if epilogue is not None:  # (a kernel without one keeps a trace without the block lookup)
        _inline_epilogue(sch)
    acc = sch.get_sblock(ACC_BLOCK)
    sch.annotate(acc, MICRO_ANNOTATION, micro.key)
    roles = ("b",) * bool(workload.batch) + (("m", "n", "lane", "k") if micro.dot else ("m", "n", "k"))
    loops = dict(zip(roles, sch.get_loops(acc)))
    packs_b = not micro.dot and not workload.constant_b and workload.packs_b()
    plan = microkernel_plan(micro, batched=bool(workload.batch), packs_b=packs_b,
                            parallel_over_batch=dot_parallel_over_batch(workload, target.cores))
    pack = PanelPack(1, source=PACK_BLOCK, vectorize="rows" if workload.transpose_b else "") if packs_b else None
    schedule_register_tiles(sch, acc, loops, plan, target.lanes(), pack=pack, writeback=sch.get_sblock(STORE_BLOCK))


def _inline_epilogue(sch) -> None:
    """Inline every block between the accumulator and the output (an epilogue's stages) into the output."""
    for block in sch.get_child_blocks(sch.get_sblock("root")):
        if sch.get(block).name_hint not in (ACC_BLOCK, STORE_BLOCK, PACK_BLOCK):
            sch.compute_inline(block)


def kernel_target(micro: MicroKernel, target: CpuTarget):
    """The TVM target a micro-kernel is compiled for. Dot-form kernels let LLVM reassociate float adds, so a
    tile's lane sums become vector shuffle trees instead of 16 dependent scalar adds through the stack
    (1.3-1.6x on attention scores at short sequences); outer-product kernels keep the strict order."""
    return target.tvm_target(reassociate=micro.dot)


def kernel_panel(workload: DynamicWorkload, micro: MicroKernel, panel: int) -> int:
    """Panel width the kernel reads B in: the library's shared width for prepacked weights, else NR
    (activations are packed per call, one NR-wide panel per parallel iteration)."""
    return panel if workload.constant_b else micro.nr


def kernel_workload_mod(workload: DynamicWorkload, micro: MicroKernel, panel: int, target: CpuTarget,
                        epilogue: Epilogue | None = None):
    """The IRModule a micro-kernel's trace replays on (the meta-schedule workload of its records); with an
    epilogue, the kernel that finishes its output with it (outer-product kernels only)."""
    import tvm

    if micro.dot:
        if epilogue is not None:
            raise ValueError(f"{workload.name}: dot-form kernels take no epilogue ({micro.key})")
        return tvm.IRModule({"main": dot_kernel_workload(workload, micro, target.lanes())})
    return tvm.IRModule({"main": kernel_workload(workload, micro, kernel_panel(workload, micro, panel), epilogue)})


def kernel_schedule(workload: DynamicWorkload, micro: MicroKernel, panel: int, target: CpuTarget,
                    epilogue: Epilogue | None = None):
    """A traced schedule of the kernel (``.mod`` is the scheduled IRModule, ``.trace`` the record)."""
    from tvm.s_tir import Schedule

    sch = Schedule(kernel_workload_mod(workload, micro, panel, target, epilogue))
    schedule_microkernel(sch, workload, micro, target, epilogue)
    return sch


def pack_weights_func(workload: DynamicWorkload, panel: int):
    """B as the user holds it -> the panel layout ``constant_b`` kernels read (run once, at load time)."""
    from tvm import te
    from tvm.s_tir import Schedule

    symbols = _symbols(workload)
    k, n = _extent_expr(workload.k, symbols), _extent_expr(workload.n, symbols)
    lead = (_extent_expr(workload.batch, symbols),) if workload.batch else ()
    b_raw = _raw_b(workload, lead, k, n)
    packed = pack_compute(b_raw, lead, k, n, panel, "Bp", transpose_b=workload.transpose_b, zero_pad=True)
    sch = Schedule(te.create_prim_func([b_raw, packed]))
    sch.parallel(sch.get_loops(sch.get_sblock("Bp"))[0])
    return sch.mod["main"]


def weight_panel(lanes: int) -> int:
    """The width prepacked weights are stored in: ``WEIGHT_PANEL_VECTORS`` vectors."""
    return WEIGHT_PANEL_VECTORS * lanes


def choose_panel(workload: DynamicWorkload, micros: list[MicroKernel], lanes: int) -> int:
    """One panel width for every candidate, so a weight is packed once for all kernels: for prepacked weights
    ``WEIGHT_PANEL_VECTORS`` vectors, which each NR divides or is a multiple of; for activations the widest NR,
    which every NR divides (dot-form kernels read B unpacked and take no part)."""
    panelled = [mk for mk in micros if not mk.dot] or micros
    widths = sorted({mk.nr for mk in panelled})
    if workload.constant_b:
        panel = weight_panel(lanes)
        if any(panel % nr and nr % panel for nr in widths):
            raise ValueError(f"register tile widths {widths} neither divide nor are multiples of the {panel}-wide panel")
        return panel
    if any(widths[-1] % nr for nr in widths):
        raise ValueError(f"register tile widths {widths} do not all divide {widths[-1]}")
    return widths[-1]
