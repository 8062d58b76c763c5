"""Recognise a matmul-family spec in a TIR PrimFunc (TE, TVMScript, TOPI, Relax-legalized)."""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import InvalidShapeError, UnsupportedDtypeError, UnsupportedOperatorError
from .operand import COL, ROW, Layout, Level, Operand, panel
from .spec import Matmul, MemoryLimits


@dataclass(frozen=True)
class RecognizedMatmul:
    """Where the spec's dimensions live in the PrimFunc: the block, its loop per role, its operand reads."""

    spec: Matmul
    block: str
    loop_roles: tuple[str, ...]  # role ("b", "m", "n", "k" or "unit") of each loop around the block
    lhs_read: int  # index of lhs in the block's reads
    rhs_read: int
    rhs_dims: tuple[str, ...]  # role of each rhs buffer axis, e.g. ("n", "k") for dense


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


def recognize(func, target) -> RecognizedMatmul:
    """The spec of a PrimFunc computing out[b?, m, n] (+)= sum_k lhs * rhs with all of ``target``'s memory (a
    CpuTarget); raises if it is anything else."""
    from tvm import tirx
    from tvm.ir.expr import TensorLoad

    if isinstance(func, tirx.PrimFunc) is False:
        raise UnsupportedOperatorError(f"expected a tvm.tirx.PrimFunc, got {type(func).__name__}")
    block = _only_compute_block(func)
    kinds = [int(iv.iter_type) for iv in block.iter_vars]  # 0 = data parallel, 2 = reduction
    extents = []
    for iv in block.iter_vars:
        if not isinstance(iv.dom.extent, tirx.IntImm):
            raise UnsupportedOperatorError(
                f"block {block.name_hint!r} has symbolic extent {iv.dom.extent}; static synthesis needs "
                "concrete shapes (use tvm_morello.dynamic for symbolic ones)"
            )
        extents.append(int(iv.dom.extent))
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

    spatial = [(iv, e) for iv, e, k in zip(block.iter_vars, extents, kinds) if k == 0]
    reduce_var = next(iv for iv, k in zip(block.iter_vars, kinds) if k == 2)
    out_roles_raw = [_var_name(i) for i in body.indices]
    spatial_names = [iv.var.name for iv, _ in spatial]
    if None in out_roles_raw or sorted(out_roles_raw) != sorted(spatial_names):
        raise UnsupportedOperatorError(f"output indices {list(body.indices)} are not a permutation of the spatial iterators")
    roles_by_var = {reduce_var.var.name: "k"}
    extent_of = {iv.var.name: e for iv, e in spatial}
    extent_of[reduce_var.var.name] = extents[kinds.index(2)]
    names = out_roles_raw
    roles_by_var.update({names[-2]: "m", names[-1]: "n"})
    for extra in names[:-2]:
        roles_by_var[extra] = "b" if extent_of[extra] > 1 else "0"
    batch = 1
    for extra in names[:-2]:
        batch *= extent_of[extra]
    if sum(1 for n in names[:-2] if extent_of[n] > 1) > 1:
        raise UnsupportedOperatorError("more than one batch dimension is not supported")

    a_roles = _axis_roles(product.a.indices, roles_by_var)
    b_roles = _axis_roles(product.b.indices, roles_by_var)
    if a_roles is None or b_roles is None:
        raise UnsupportedOperatorError(f"block {block.name_hint!r} indexes its inputs with non-affine expressions")
    read_names = [region.source.name for region in block.reads]
    lhs_read, rhs_read = read_names.index(product.a.source.name), read_names.index(product.b.source.name)
    if any(r.startswith("n") for r in a_roles):  # operands written the other way round
        a_roles, b_roles = b_roles, a_roles
        lhs_read, rhs_read = rhs_read, lhs_read
    lhs_layout, rhs_layout = _layout(a_roles, "m", "k"), _layout(b_roles, "k", "n")
    if lhs_layout is None or rhs_layout is None or lhs_layout.kind == "panel":
        raise UnsupportedOperatorError(
            f"block {block.name_hint!r}: operand axes {a_roles} x {b_roles} are not a supported matmul layout"
        )
    m, n, k = extent_of[names[-2]], extent_of[names[-1]], extent_of[reduce_var.var.name]
    if min(m, n, k, batch) < 1:
        raise InvalidShapeError(f"block {block.name_hint!r} has an empty dimension (b={batch}, m={m}, k={k}, n={n})")
    limits: MemoryLimits = target.memory_limits()
    spec = Matmul(batch, m, k, n, Operand(Level.GLOBAL, lhs_layout), Operand(Level.GLOBAL, rhs_layout), Operand(), limits)
    loop_roles = tuple(roles_by_var[_var_name(v)] if _var_name(v) in roles_by_var else "?" for v in [iv.var for iv in block.iter_vars])
    return RecognizedMatmul(spec, block.name_hint, loop_roles, lhs_read, rhs_read, b_roles)
