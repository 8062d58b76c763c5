"""A micro-kernel's register-tile schedule applied to the user's own symbolic PrimFunc (the meta-schedule
route): its records then replay on the function meta-schedule was given."""
from __future__ import annotations

from dataclasses import replace

from ..errors import InvalidShapeError
from ..spec.symbolic import DynamicWorkload
from ..target import CpuTarget
from .loop_plan import microkernel_plan
from .microkernel import MICRO_ANNOTATION, MicroKernel
from .padding import pad_to_tiles
from .panels import PanelPack
from .register_tile import schedule_register_tiles


def check_one_index_dtype(prim_func) -> None:
    """Scheduling the PrimFunc itself (the meta-schedule route) packs weight panels with a layout map, which
    TVM rejects over loops mixing int32 and int64: say so before scheduling."""
    buffers = list(prim_func.params)
    dtypes = {str(d.ty) for buf in buffers for d in buf.shape}
    if len(dtypes) > 1:
        shapes = ", ".join(f"{buf.name}{[f'{d}:{d.ty}' for d in buf.shape]}" for buf in buffers)
        raise InvalidShapeError(f"extents mix index dtypes {sorted(dtypes)} ({shapes}): declare them with one, "
                                "e.g. te.create_prim_func(..., index_dtype_override='int64') or an int32 te.var")


def schedule_symbolic(prim_func, workload: DynamicWorkload, micro: MicroKernel, target: CpuTarget):
    """The micro-kernel's schedule applied to the user's PrimFunc: pad_einsum to whole tiles (symbolic
    extents become ceil(m / MR) * MR), A's padding inlined, B packed into NR panels per parallel iteration,
    the padded output tile kept in registers and written back predicated."""
    from tvm.s_tir import Schedule

    a_name, b_name, out_name = (p.name for p in prim_func.params)
    sch = Schedule(prim_func)
    block = sch.get_child_blocks(sch.get_sblock("root"))[0]
    sch.annotate(block, MICRO_ANNOTATION, micro.key)
    n_static = workload.n if isinstance(workload.n, int) else None
    pad_cols = micro.nr if n_static is None or n_static % micro.nr else 1
    outer = len(sch.get_loops(block)) - 3
    padded = pad_to_tiles(sch, block, (a_name, b_name, out_name), [1] * outer + [micro.mr, pad_cols, 1])
    read = [region.source.name for region in sch.get(block).reads].index(padded.rhs or b_name)
    rhs_dims = ("b",) * outer + (("n", "k") if workload.transpose_b else ("k", "n"))
    # one index dtype over B's loops, or TVM rejects the layout map: checked by symbolic_workload
    pack = PanelPack(read, rhs_dims, micro.nr, source=padded.rhs)
    plan = replace(microkernel_plan(micro, batched=outer > 0, packs_b=True), writeback="plain")
    loops = dict(zip(("b",) * outer + ("m", "n", "k"), sch.get_loops(block)))
    schedule_register_tiles(sch, block, loops, plan, target.lanes(), pack=pack, writeback=padded.out)
    return sch
