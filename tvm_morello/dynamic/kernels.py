"""Shape-generic micro-kernels: symbolic PrimFuncs over whole register tiles (padding rows clamp their reads,
B panels are zero-padded), so only each tile's write-back is predicated and every shape is exact."""
from __future__ import annotations

from ..target import CpuTarget
from .microkernels import MicroKernel
from .shapes import DynamicWorkload

ACC_BLOCK, STORE_BLOCK, PACK_BLOCK = "acc", "Y", "pack"
# Weight panel width in vectors. Measured (768 x 768, Zen 4): 4-vector panels let a 1-row tile run m = 1 in
# 14 us (numpy 16 us) against 22-26 us with 1- or 2-vector panels; 8-vector panels slowed large-m tiles.
WEIGHT_PANEL_VECTORS = 4
BATCH_UNITS_PER_CORE = 4  # batch matrices per core above which dot-form kernels parallelise over the batch alone


def _i64(value: int):
    from tvm import tirx

    return tirx.IntImm("int64", value)


def _ceildiv(a, b: int):
    from tvm import tirx

    return tirx.floordiv(a + (b - 1), _i64(b))


def _symbols(workload: DynamicWorkload) -> dict:
    from tvm import te

    return {name: te.var(name, "int64") for name in workload.var_names}


def _dim(workload_dim, symbols):
    return symbols[workload_dim] if isinstance(workload_dim, str) else _i64(workload_dim)


def _raw_b(workload: DynamicWorkload, lead, k, n):
    from tvm import te

    return te.placeholder(lead + ((n, k) if workload.transpose_b else (k, n)), name="B")


def _pack_compute(workload: DynamicWorkload, b_raw, lead, k, n, panel: int, name: str, *, zero_pad: bool):
    """B (raw layout) -> Bp[b?, ceil(n / panel), k, panel]. Columns beyond n repeat column n - 1, or are zero
    with ``zero_pad``: a kernel never stores the outputs they feed, so the per-call pack skips the select
    (a conditional load there would scalarise the vectorised pack)."""
    from tvm import te, tirx

    def body(*idx):
        bb, p, kk, c = idx[:-3], idx[-3], idx[-2], idx[-1]
        col = p * panel + c
        safe = te.min(col, n - 1)
        value = b_raw[(*bb, safe, kk)] if workload.transpose_b else b_raw[(*bb, kk, safe)]
        return tirx.Select(col < n, value, tirx.const(0.0, "float32")) if zero_pad else value

    return te.compute(lead + (_ceildiv(n, panel), k, _i64(panel)), body, name=name)


def kernel_workload(workload: DynamicWorkload, mr: int, panel: int):
    """The unscheduled symbolic PrimFunc one register-tile height ``mr`` is scheduled on.

    Parameters are A, then B (prepacked panels if ``constant_b``, else raw), then the output.
    """
    from tvm import te

    symbols = _symbols(workload)
    m, k, n = (_dim(d, symbols) for d in (workload.m, workload.k, workload.n))
    lead = (_i64(workload.batch),) if workload.batch else ()
    a = te.placeholder(lead + (m, k), name="A")
    if workload.constant_b:
        b_param = te.placeholder(lead + (_ceildiv(n, panel), k, _i64(panel)), name="Bp")
        b_panels = b_param
    else:
        b_param = _raw_b(workload, lead, k, n)
        b_panels = (_pack_compute(workload, b_param, lead, k, n, panel, PACK_BLOCK, zero_pad=False)
                    if workload.packs_b() else None)
    cols = _ceildiv(n, panel) * panel if b_panels is not None else n
    r = te.reduce_axis((_i64(0), k), "k")

    def acc_body(*idx):
        bb, i, j = idx[:-2], idx[-2], idx[-1]
        lhs = a[(*bb, te.min(i, m - 1), r)]
        rhs = b_panels[(*bb, j // panel, r, j % panel)] if b_panels is not None else b_param[(*bb, r, j)]
        return te.sum(lhs * rhs, axis=r)

    acc = te.compute(lead + (_ceildiv(m, mr) * mr, cols), acc_body, name=ACC_BLOCK)
    out = te.compute(lead + (m, n), lambda *idx: acc[idx], name=STORE_BLOCK)
    return te.create_prim_func([a, b_param, out]).with_attr("tirx.noalias", True)


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
    m, n = _dim(workload.m, symbols), _dim(workload.n, symbols)
    lead = (_i64(workload.batch),) if workload.batch else ()
    a = te.placeholder(lead + (m, _i64(workload.k)), name="A")
    b = te.placeholder(lead + (n, _i64(workload.k)), name="B")
    kv = te.reduce_axis((_i64(0), _i64(workload.k // lanes)), "kv")

    def acc_body(*idx):
        bb, i, j, lane = idx[:-3], idx[-3], idx[-2], idx[-1]
        kk = kv * lanes + lane
        return te.sum(a[(*bb, te.min(i, m - 1), kk)] * b[(*bb, te.min(j, n - 1), kk)], axis=kv)

    acc = te.compute(lead + (_ceildiv(m, micro.mr) * micro.mr, _ceildiv(n, micro.nr) * micro.nr, _i64(lanes)),
                     acc_body, name=ACC_BLOCK)
    lane = te.reduce_axis((_i64(0), _i64(lanes)), "lane")
    out = te.compute(lead + (m, n), lambda *idx: te.sum(acc[(*idx, lane)], axis=lane), name=STORE_BLOCK)
    return te.create_prim_func([a, b, out]).with_attr("tirx.noalias", True)


def dot_parallel_over_batch(workload: DynamicWorkload, cores: int) -> bool:
    """Whether the dot form parallelises over the batch alone: when it holds several matrices per core.
    Fusing the row tiles into the parallel loop costs two integer divisions per tile, 10-25% of a
    short-sequence QKᵀ (measured at T = 4..24, batch 192)."""
    return workload.batch >= BATCH_UNITS_PER_CORE * cores


def schedule_dot_microkernel(sch, workload: DynamicWorkload, micro: MicroKernel, target: CpuTarget) -> None:
    """Parallel over the batch (or (batch, row tiles) when the batch is small); per MR x NR tile the
    k-vector accumulators stay in registers, the lanes are summed at the tile's write-back."""
    acc = sch.get_sblock(ACC_BLOCK)
    store = sch.get_sblock(STORE_BLOCK)
    sch.set_scope(acc, 0, "local")
    loops = sch.get_loops(acc)
    outer, (i, j, lane, kv) = loops[:-4], loops[-4:]
    io, ii = sch.split(i, [None, micro.mr])
    jo, ji = sch.split(j, [None, micro.nr])
    sch.reorder(*outer, io, jo, kv, ii, ji, lane)
    if outer and dot_parallel_over_batch(workload, target.cores):
        par = sch.fuse(*outer) if len(outer) > 1 else outer[0]
    else:
        par = sch.fuse(*outer, io) if outer else io
    if micro.parallel:
        sch.parallel(par)
    sch.reverse_compute_at(store, jo)
    sch.unroll(sch.get_loops(store)[-1])
    sch.unroll(ii)
    sch.unroll(ji)
    sch.vectorize(lane)
    sch.decompose_reduction(acc, kv)


def schedule_microkernel(sch, workload: DynamicWorkload, micro: MicroKernel, target: CpuTarget) -> None:
    """BLIS-style schedule: parallel over (batch, column panels), MR x NR tile in registers, NR split into
    vectors (unrolled) and MR unrolled, the tile's write-back placed at the row-tile loop."""
    lanes = target.lanes()
    acc = sch.get_sblock(ACC_BLOCK)
    store = sch.get_sblock(STORE_BLOCK)
    sch.set_scope(acc, 0, "local")
    loops = sch.get_loops(acc)
    outer, (i, j, kk) = loops[:-3], loops[-3:]
    io, ii = sch.split(i, [None, micro.mr])
    jo, ji = sch.split(j, [None, micro.nr])
    sch.reorder(*outer, jo, io, kk, ii, ji)
    par = sch.fuse(*outer, jo) if outer else jo
    if micro.parallel:
        sch.parallel(par)
    if not workload.constant_b and workload.packs_b():
        pack = sch.get_sblock(PACK_BLOCK)
        sch.compute_at(pack, par)
        if workload.transpose_b:  # gather the panel's columns (B rows) one k at a time, a vector per step
            sch.vectorize(sch.get_loops(pack)[-1])
    sch.reverse_compute_at(store, io)
    # the tile's rows are written in whole vectors when only the row index is predicated (static n, whole
    # panels: 3-10% on A·V, whose k = T is short); with a symbolic n TVM scalarises the predicated vectors
    *rows, cols = sch.get_loops(store)[-2:] if micro.mr > 1 else sch.get_loops(store)[-1:]
    store_outer, store_vec = sch.split(cols, [None, lanes])
    for row in rows:
        sch.unroll(row)
    sch.unroll(store_outer)
    sch.vectorize(store_vec)
    vec_outer, vec = sch.split(ji, [None, lanes])
    sch.unroll(ii)
    sch.unroll(vec_outer)
    sch.vectorize(vec)
    sch.decompose_reduction(acc, kk)


def kernel_target(micro: MicroKernel, target: CpuTarget):
    """The TVM target a micro-kernel is compiled for. Dot-form kernels let LLVM reassociate float adds, so a
    tile's lane sums become vector shuffle trees instead of 16 dependent scalar adds through the stack
    (1.3-1.6x on attention scores at short sequences); outer-product kernels keep the strict order."""
    return target.tvm_target(reassociate=micro.dot)


def kernel_panel(workload: DynamicWorkload, micro: MicroKernel, panel: int) -> int:
    """Panel width the kernel reads B in: the library's shared width for prepacked weights, else NR
    (activations are packed per call, one NR-wide panel per parallel iteration)."""
    return panel if workload.constant_b else micro.nr


def kernel_workload_mod(workload: DynamicWorkload, micro: MicroKernel, panel: int, target: CpuTarget):
    """The IRModule a micro-kernel's trace replays on (the meta-schedule workload of its records)."""
    import tvm

    if micro.dot:
        return tvm.IRModule({"main": dot_kernel_workload(workload, micro, target.lanes())})
    return tvm.IRModule({"main": kernel_workload(workload, micro.mr, kernel_panel(workload, micro, panel))})


def kernel_schedule(workload: DynamicWorkload, micro: MicroKernel, panel: int, target: CpuTarget):
    """A traced schedule of the kernel (``.mod`` is the scheduled IRModule, ``.trace`` the record)."""
    from tvm.s_tir import Schedule

    sch = Schedule(kernel_workload_mod(workload, micro, panel, target))
    if micro.dot:
        schedule_dot_microkernel(sch, workload, micro, target)
    else:
        schedule_microkernel(sch, workload, micro, target)
    return sch


def pack_weights_func(workload: DynamicWorkload, panel: int):
    """B as the user holds it -> the panel layout ``constant_b`` kernels read (run once, at load time)."""
    from tvm import te
    from tvm.s_tir import Schedule

    symbols = _symbols(workload)
    k, n = _dim(workload.k, symbols), _dim(workload.n, symbols)
    lead = (_i64(workload.batch),) if workload.batch else ()
    b_raw = _raw_b(workload, lead, k, n)
    packed = _pack_compute(workload, b_raw, lead, k, n, panel, "Bp", zero_pad=True)
    sch = Schedule(te.create_prim_func([b_raw, packed]))
    sch.parallel(sch.get_loops(sch.get_sblock("Bp"))[0])
    return sch.mod["main"]


def choose_panel(workload: DynamicWorkload, micros: list[MicroKernel], lanes: int) -> int:
    """One panel width every candidate's NR divides, so a weight is packed once for all kernels: the widest
    NR, and at least ``WEIGHT_PANEL_VECTORS`` vectors for prepacked weights (dot-form kernels read B
    unpacked and take no part)."""
    panelled = [mk for mk in micros if not mk.dot] or micros
    widest = max(mk.nr for mk in panelled)
    if workload.constant_b:
        widest = max(widest, WEIGHT_PANEL_VECTORS * lanes)
    if any(widest % mk.nr for mk in panelled):
        raise ValueError(f"register tile widths {sorted({mk.nr for mk in panelled})} do not all divide {widest}")
    return widest
