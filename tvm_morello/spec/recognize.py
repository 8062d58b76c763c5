"""Recognise a matmul-family block in a TIR PrimFunc (TE, TVMScript, TOPI, Relax-legalized), with static extents
(a Morello spec) or symbolic ones (a DynamicWorkload): one recogniser for both routes."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from ..errors import InvalidShapeError, UnsupportedDtypeError, UnsupportedOperatorError
from .operand import COL, ROW, Layout, Level, Operand, panel
from .spec import Matmul, MemoryLimits
from .symbolic import Dim, DynamicWorkload, VarRange, ranges_of


@dataclass(frozen=True)
class MatmulBlock:
    """A PrimFunc's matmul block: out[b?, m, n] += lhs * rhs, its extents static (ints) or symbolic (names)."""

    block: str
    loop_roles: tuple[str, ...]  # role ("b", "m", "n", "k", "0" for a unit batch axis) of each loop around it
    lhs_read: int  # index of lhs in the block's reads
    rhs_read: int
    lhs_dims: tuple[str, ...]  # role of each lhs buffer axis, e.g. ("m", "k")
    rhs_dims: tuple[str, ...]  # e.g. ("n", "k") for dense
    lhs_layout: Layout
    rhs_layout: Layout
    buffers: tuple[str, str, str]  # lhs, rhs, out
    batch: int  # product of the batch extents (1 without one)
    batch_axes: int
    m: Dim
    k: Dim
    n: Dim


@dataclass(frozen=True)
class RecognizedMatmul:
    """Where the spec's dimensions live in the PrimFunc: the block, its loop per role, its operand reads."""

    spec: Matmul
    block: str
    loop_roles: tuple[str, ...]  # role ("b", "m", "n", "k" or "unit") of each loop around the block
    lhs_read: int  # index of lhs in the block's reads
    rhs_read: int
    rhs_dims: tuple[str, ...]  # role of each rhs buffer axis, e.g. ("n", "k") for dense
    buffers: tuple[str, str, str]  # lhs, rhs, out


def _only_compute_block(func):
    from tvm.s_tir import Schedule

    sch = Schedule(func)
    blocks = [sch.get(rv) for rv in sch.get_child_blocks(sch.get_sblock("root"))]
    if len(blocks) != 1:
        names = [b.name_hint for b in blocks]
        raise UnsupportedOperatorError(
            f"PrimFunc has {len(blocks)} compute blocks {names}; tvm-morello supports a single "
            "matmul/dense/batch_matmul block (out[b?, m, n] += lhs * rhs)"
        )
    return blocks[0]


def _var_name(expr):
    from tvm import tirx

    return expr.name if isinstance(expr, tirx.Var) else None


def _axis_roles(indices, roles_by_var) -> tuple[str, ...] | None:
    """Role of each buffer axis; a panel axis pair (n // w, n % w) is reported as ('n/w', 'n%w')."""
    from tvm import tirx

    roles = []
    for index in indices:
        name = _var_name(index)
        if name is not None:
            roles.append(roles_by_var.get(name, "?"))
        elif isinstance(index, (tirx.FloorDiv, tirx.FloorMod)) and _var_name(index.a) and isinstance(index.b, tirx.IntImm):
            op = "/" if isinstance(index, tirx.FloorDiv) else "%"
            roles.append(f"{roles_by_var.get(_var_name(index.a), '?')}{op}{int(index.b)}")
        elif isinstance(index, tirx.IntImm) and int(index) == 0:
            roles.append("0")
        else:
            return None
    return tuple(roles)


def _layout(roles: tuple[str, ...], rows: str, cols: str) -> Layout | None:
    roles = tuple(r for r in roles if r not in ("b", "0"))
    if roles == (rows, cols):
        return ROW
    if roles == (cols, rows):
        return COL
    if len(roles) == 3 and roles[1] == rows and roles[0].startswith(f"{cols}/") and roles[2].startswith(f"{cols}%"):
        width = int(roles[0].split("/")[1])
        if int(roles[2].split("%")[1]) == width:
            return panel(width)
    return None


def _extent(expr, what: str) -> Dim:
    from tvm import tirx

    if isinstance(expr, tirx.IntImm):
        return int(expr)
    if isinstance(expr, tirx.Var):
        return str(expr.name)
    raise UnsupportedOperatorError(f"{what} extent {expr}: only integers and plain symbolic variables are supported")


def match_block(func) -> MatmulBlock:
    """The matmul block of a PrimFunc computing out[b?, m, n] (+)= sum_k lhs * rhs; raises if it is anything else."""
    from tvm import tirx
    from tvm.ir.expr import TensorLoad

    if isinstance(func, tirx.PrimFunc) is False:
        raise UnsupportedOperatorError(f"expected a tvm.tirx.PrimFunc, got {type(func).__name__}")
    block = _only_compute_block(func)
    kinds = [int(iv.iter_type) for iv in block.iter_vars]  # 0 = data parallel, 2 = reduction
    if kinds.count(2) != 1 or len(kinds) not in (3, 4, 5) or any(k not in (0, 2) for k in kinds):
        raise UnsupportedOperatorError(
            f"block {block.name_hint!r} has iterators {kinds} (0=spatial, 2=reduce); a matmul needs 2-3 spatial "
            "and exactly one reduction iterator"
        )
    body = block.body
    if not isinstance(body, tirx.BufferStore) or not isinstance(body.value, tirx.Add):
        raise UnsupportedOperatorError(f"block {block.name_hint!r} is not an accumulation out = out + a * b")
    product = body.value.b
    if not isinstance(product, tirx.Mul) or not all(isinstance(x, TensorLoad) for x in (product.a, product.b)):
        raise UnsupportedOperatorError(f"block {block.name_hint!r} does not multiply two buffer loads")
    for name, dtype in ((body.buffer.name, body.buffer.dtype), (product.a.source.name, product.a.ty), (product.b.source.name, product.b.ty)):
        if str(dtype) != "float32":
            raise UnsupportedDtypeError(f"buffer {name!r} has dtype {dtype}; supported: float32")

    extent_of = {iv.var.name: _extent(iv.dom.extent, f"block {block.name_hint!r}: iterator {iv.var.name}")
                 for iv in block.iter_vars}
    spatial_names = [iv.var.name for iv, k in zip(block.iter_vars, kinds) if k == 0]
    reduce_name = next(iv.var.name for iv, k in zip(block.iter_vars, kinds) if k == 2)
    names = [_var_name(i) for i in body.indices]
    if None in names or sorted(names) != sorted(spatial_names):
        raise UnsupportedOperatorError(f"output indices {list(body.indices)} are not a permutation of the spatial iterators")
    roles_by_var = {reduce_name: "k", names[-2]: "m", names[-1]: "n"}
    batch_names = [extra for extra in names[:-2] if extent_of[extra] != 1]
    for extra in names[:-2]:
        roles_by_var[extra] = "b" if extra in batch_names else "0"
    if len(batch_names) > 1:
        raise UnsupportedOperatorError("more than one batch dimension is not supported")
    batch = extent_of[batch_names[0]] if batch_names else 1
    if isinstance(batch, str):
        raise UnsupportedOperatorError(f"symbolic batch {batch!r}: the batch dimension must be static")

    a_roles = _axis_roles(product.a.indices, roles_by_var)
    b_roles = _axis_roles(product.b.indices, roles_by_var)
    if a_roles is None or b_roles is None:
        raise UnsupportedOperatorError(f"block {block.name_hint!r} indexes its inputs with non-affine expressions")
    read_names = [region.source.name for region in block.reads]
    lhs, rhs = product.a.source.name, product.b.source.name
    if any(r.startswith("n") for r in a_roles):  # operands written the other way round
        a_roles, b_roles, lhs, rhs = b_roles, a_roles, rhs, lhs
    lhs_layout, rhs_layout = _layout(a_roles, "m", "k"), _layout(b_roles, "k", "n")
    if lhs_layout is None or rhs_layout is None or lhs_layout.kind == "panel":
        raise UnsupportedOperatorError(
            f"block {block.name_hint!r}: operand axes {a_roles} x {b_roles} are not a supported matmul layout"
        )
    m, n, k = extent_of[names[-2]], extent_of[names[-1]], extent_of[reduce_name]
    if any(isinstance(d, int) and d < 1 for d in (m, n, k, batch)):
        raise InvalidShapeError(f"block {block.name_hint!r} has an empty dimension (b={batch}, m={m}, k={k}, n={n})")
    loop_roles = tuple(roles_by_var.get(iv.var.name, "?") for iv in block.iter_vars)
    return MatmulBlock(block.name_hint, loop_roles, read_names.index(lhs), read_names.index(rhs), a_roles, b_roles,
                       lhs_layout, rhs_layout, (lhs, rhs, body.buffer.name), batch, len(names) - 2, m, k, n)


def recognize(func, target) -> RecognizedMatmul:
    """The spec of a PrimFunc computing out[b?, m, n] (+)= sum_k lhs * rhs with all of ``target``'s memory (a
    CpuTarget); raises if it is anything else or has symbolic extents."""
    found = match_block(func)
    symbolic = [d for d in (found.m, found.k, found.n) if isinstance(d, str)]
    if symbolic:
        raise UnsupportedOperatorError(
            f"block {found.block!r} has symbolic extent {symbolic[0]}; static synthesis needs concrete shapes "
            "(use tvm_morello.dynamic for symbolic ones)"
        )
    limits: MemoryLimits = target.memory_limits()
    spec = Matmul(found.batch, found.m, found.k, found.n, Operand(Level.GLOBAL, found.lhs_layout),
                  Operand(Level.GLOBAL, found.rhs_layout), Operand(), limits)
    return RecognizedMatmul(spec, found.block, found.loop_roles, found.lhs_read, found.rhs_read, found.rhs_dims,
                            found.buffers)


def from_prim_func(func, ranges: Mapping[str, VarRange | tuple[int, int]], *, name: str | None = None,
                   constant_b: bool | None = None) -> DynamicWorkload:
    """The DynamicWorkload of a symbolic dense / batch_matmul PrimFunc with parameters (A[b?, m, k], B[b?, n, k]
    or B[b?, k, n], out); ``constant_b`` defaults to "B is a 2-D weight of static extents"."""
    found = match_block(func)
    params = [p.name for p in func.params]
    if tuple(params) != found.buffers:
        raise UnsupportedOperatorError(f"PrimFunc parameters {params}: expected (A, B, out) of a matmul, in that "
                                       f"order (the block reads {found.buffers[0]} x {found.buffers[1]})")
    if found.batch_axes > 1 or len(found.lhs_dims) != len(found.rhs_dims) or found.lhs_layout != ROW \
            or found.rhs_layout.kind == "panel":
        raise UnsupportedOperatorError(f"operand axes {found.lhs_dims} x {found.rhs_dims}: expected A[b?, m, k] and "
                                       "B[b?, n, k] or B[b?, k, n]")
    batch = found.batch if found.batch_axes else 0
    if constant_b is None:
        constant_b = not batch and isinstance(found.k, int) and isinstance(found.n, int)
    return DynamicWorkload(name or ("batch_matmul" if batch else "dense"), batch, found.m, found.k, found.n,
                           ranges_of(ranges), transpose_b=found.rhs_layout == COL, constant_b=constant_b)
