"""Recognise a symbolic dense / batch_matmul PrimFunc as a DynamicWorkload."""
from __future__ import annotations

from ..errors import InvalidShapeError, UnsupportedOperatorError
from .shapes import DynamicWorkload


def _dim(expr, what: str):
    from tvm import tirx

    if isinstance(expr, tirx.IntImm):
        return int(expr)
    if isinstance(expr, tirx.Var):
        return str(expr.name)
    raise UnsupportedOperatorError(f"{what} extent {expr}: only integers and plain symbolic variables are supported")


def check_one_index_dtype(prim_func) -> None:
    """Scheduling the PrimFunc itself (the meta-schedule route) packs weight panels with a layout map, which
    TVM rejects over loops mixing int32 and int64: say so before scheduling."""
    buffers = list(prim_func.params)
    dtypes = {str(d.ty) for buf in buffers for d in buf.shape}
    if len(dtypes) > 1:
        shapes = ", ".join(f"{buf.name}{[f'{d}:{d.ty}' for d in buf.shape]}" for buf in buffers)
        raise InvalidShapeError(f"extents mix index dtypes {sorted(dtypes)} ({shapes}): declare them with one, "
                                "e.g. te.create_prim_func(..., index_dtype_override='int64') or an int32 te.var")


def _index_vars(region) -> list:
    return [r.min for r in region]


def match_matmul(prim_func, ranges, *, name: str | None = None, constant_b: bool | None = None) -> DynamicWorkload:
    """A PrimFunc (A, B, out) whose single block is out[b?, i, j] += A[b?, i, k] * B[b?, j, k] (or B[b?, k, j])."""
    from tvm.s_tir import Schedule

    params = list(prim_func.params)
    if len(params) != 3:
        raise UnsupportedOperatorError(f"PrimFunc with {len(params)} parameters: expected (A, B, out) of a matmul")
    sch = Schedule(prim_func)
    blocks = sch.get_child_blocks(sch.get_sblock("root"))
    if len(blocks) != 1:
        raise UnsupportedOperatorError(f"PrimFunc with {len(blocks)} blocks: expected a single matmul block")
    block = sch.get(blocks[0])
    reduce_vars = [iv.var for iv in block.iter_vars if int(iv.iter_type) == 2]
    if len(reduce_vars) != 1 or len(block.reads) != 2 or len(block.writes) != 1:
        raise UnsupportedOperatorError(f"block {block.name_hint!r} is not a matmul (one reduction, two reads, one write)")
    a_buf, b_buf, out_buf = params
    reads = {r.source.name: _index_vars(r.region) for r in block.reads}
    if set(reads) != {a_buf.name, b_buf.name} or block.writes[0].source.name != out_buf.name:
        raise UnsupportedOperatorError(f"block {block.name_hint!r} does not read (A, B) and write out in parameter order")
    rank = len(a_buf.shape)
    if rank not in (2, 3) or len(b_buf.shape) != rank or len(out_buf.shape) != rank:
        raise UnsupportedOperatorError(f"operand ranks {len(a_buf.shape)}, {len(b_buf.shape)}, {len(out_buf.shape)}: "
                                       "expected all 2 (dense) or all 3 (batch_matmul)")
    b_index = reads[b_buf.name]
    transpose_b = b_index[-1].same_as(reduce_vars[0])
    if not transpose_b and not b_index[-2].same_as(reduce_vars[0]):
        raise UnsupportedOperatorError("B is not indexed by the reduction variable in its last two dimensions")
    m, k = _dim(a_buf.shape[-2], "m"), _dim(a_buf.shape[-1], "k")
    n = _dim(out_buf.shape[-1], "n")
    batch = _dim(a_buf.shape[0], "batch") if rank == 3 else 0
    if isinstance(batch, str):
        raise UnsupportedOperatorError(f"symbolic batch {batch!r}: the batch dimension must be static")
    if constant_b is None:
        constant_b = rank == 2 and isinstance(k, int) and isinstance(n, int)
    return DynamicWorkload(name or ("dense" if rank == 2 else "batch_matmul"), batch, m, k, n, ranges,
                           transpose_b=transpose_b, constant_b=constant_b)
