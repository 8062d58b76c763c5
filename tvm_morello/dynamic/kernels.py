"""Shape-generic micro-kernels: symbolic PrimFuncs over whole register tiles (padding rows clamp their reads,
B panels are zero-padded), so only each tile's write-back is predicated and every shape is exact."""
from __future__ import annotations

from ..target import CpuTarget
from .microkernels import MicroKernel
from .shapes import DynamicWorkload

ACC_BLOCK, STORE_BLOCK, PACK_BLOCK = "acc", "Y", "pack"


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


def _pack_compute(workload: DynamicWorkload, b_raw, lead, k, n, panel: int, name: str):
    """B (raw layout) -> Bp[b?, ceil(n / panel), k, panel], zero beyond column n."""
    from tvm import te, tirx

    def body(*idx):
        bb, p, kk, c = idx[:-3], idx[-3], idx[-2], idx[-1]
        col = p * panel + c
        safe = te.min(col, n - 1)
        value = b_raw[(*bb, safe, kk)] if workload.transpose_b else b_raw[(*bb, kk, safe)]
        return tirx.if_then_else(col < n, value, tirx.const(0.0, "float32"))

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
        b_panels = _pack_compute(workload, b_param, lead, k, n, panel, PACK_BLOCK) if workload.packs_b() else None
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
        if workload.transpose_b:  # read B rows contiguously along k; the panel is small and stays in L1
            kk_pack, col = sch.get_loops(pack)[-2:]
            sch.reorder(col, kk_pack)
    sch.reverse_compute_at(store, io)
    vec_outer, vec = sch.split(ji, [None, lanes])
    sch.unroll(ii)
    sch.unroll(vec_outer)
    sch.vectorize(vec)
    sch.decompose_reduction(acc, kk)


def kernel_panel(workload: DynamicWorkload, micro: MicroKernel, panel: int) -> int:
    """Panel width the kernel reads B in: the library's shared width for prepacked weights, else NR
    (activations are packed per call, one NR-wide panel per parallel iteration)."""
    return panel if workload.constant_b else micro.nr


def kernel_workload_mod(workload: DynamicWorkload, micro: MicroKernel, panel: int):
    """The IRModule a micro-kernel's trace replays on (the meta-schedule workload of its records)."""
    import tvm

    return tvm.IRModule({"main": kernel_workload(workload, micro.mr, kernel_panel(workload, micro, panel))})


def kernel_schedule(workload: DynamicWorkload, micro: MicroKernel, panel: int, target: CpuTarget):
    """A traced schedule of the kernel (``.mod`` is the scheduled IRModule, ``.trace`` the record)."""
    from tvm.s_tir import Schedule

    sch = Schedule(kernel_workload_mod(workload, micro, panel))
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
    packed = _pack_compute(workload, b_raw, lead, k, n, panel, "Bp")
    sch = Schedule(te.create_prim_func([b_raw, packed]))
    sch.parallel(sch.get_loops(sch.get_sblock("Bp"))[0])
    return sch.mod["main"]


def choose_panel(workload: DynamicWorkload, micros: list[MicroKernel]) -> int:
    """One panel width every candidate's NR divides, so a weight is packed once for all kernels."""
    widest = max(mk.nr for mk in micros)
    if any(widest % mk.nr for mk in micros):
        raise ValueError(f"register tile widths {sorted({mk.nr for mk in micros})} do not all divide {widest}")
    return widest
