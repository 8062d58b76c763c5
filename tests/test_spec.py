"""The spec language: validation, canonical form, and recognition from real PrimFuncs."""
import pytest
import tvm
from hypothesis import given
from hypothesis import strategies as st
from tvm import te, topi
from tvm.script import tirx as T

from tvm_morello import InvalidShapeError, UnsupportedDtypeError, UnsupportedOperatorError, UnsupportedTargetError
from tvm_morello.spec import COL, ROW, Layout, Level, Matmul, MemoryLimits, Operand, canonicalize, panel
from tvm_morello.spec.recognize import recognize
from tvm_morello.target import resolve_target

from tvm_morello.spec.operators import batch_matmul, dense, matmul

LIMITS = MemoryLimits(32, 512)
layouts = st.sampled_from([ROW, COL, panel(16), panel(32)])
operands = st.builds(Operand, st.sampled_from(list(Level)), layouts)
matmuls = st.builds(
    Matmul,
    st.integers(1, 4), st.integers(1, 64), st.integers(1, 64), st.integers(1, 64),
    operands, operands, operands, st.just(LIMITS), st.booleans(), st.booleans(),
)


@given(matmuls)
def test_canonicalize_is_idempotent(spec):
    once = canonicalize(spec)
    assert canonicalize(once) == once
    assert (once.b, once.m, once.k, once.n) == (spec.b, spec.m, spec.k, spec.n)


def test_canonical_form_merges_equivalent_layouts():
    single_row = Matmul(1, 4, 1, 16, Operand(), Operand(Level.GLOBAL, panel(16)), Operand(), LIMITS)
    same_as_row = Matmul(1, 4, 1, 16, Operand(), Operand(Level.GLOBAL, ROW), Operand(), LIMITS)
    assert canonicalize(single_row) == canonicalize(same_as_row)
    spans_two_panels = Matmul(1, 4, 1, 32, Operand(), Operand(Level.GLOBAL, panel(16)), Operand(), LIMITS)
    assert canonicalize(spans_two_panels).rhs.layout == panel(16)  # two strided runs, not one row
    wide = Matmul(1, 4, 8, 16, Operand(), Operand(Level.GLOBAL, panel(16)), Operand(), LIMITS)
    assert canonicalize(wide) != canonicalize(Matmul(1, 4, 8, 16, Operand(), Operand(), Operand(), LIMITS))


@pytest.mark.parametrize("dims", [(0, 4, 4, 4), (1, 0, 4, 4), (1, 4, -2, 4), (1, 4, 4, 0)])
def test_empty_dimension_is_rejected(dims):
    with pytest.raises(InvalidShapeError, match="dimension"):
        Matmul(*dims, Operand(), Operand(), Operand(), LIMITS)


def test_non_fp32_operand_is_rejected():
    with pytest.raises(UnsupportedDtypeError, match="float16"):
        Matmul(1, 4, 4, 4, Operand(dtype="float16"), Operand(), Operand(), LIMITS)


def test_bad_layout_is_rejected():
    with pytest.raises(ValueError, match="layout"):
        Layout("diagonal")


@pytest.mark.parametrize(
    "make, expected",
    [
        (lambda: dense(32, 64, 48), (1, 32, 64, 48, "row", "col")),
        (lambda: matmul(8, 16, 32), (1, 8, 16, 32, "row", "row")),
        (lambda: dense(8, 16, 64, prepacked=32), (1, 8, 16, 64, "row", "panel32")),
        (lambda: batch_matmul(3, 5, 16, 32), (3, 5, 16, 32, "row", "col")),
        (lambda: batch_matmul(3, 5, 16, 32, transpose_b=False), (3, 5, 16, 32, "row", "row")),
    ],
)
def test_recognises_te_and_topi_operators(make, expected, cpu):
    spec = recognize(make().func, cpu).spec
    assert (spec.b, spec.m, spec.k, spec.n, str(spec.lhs.layout), str(spec.rhs.layout)) == expected


def test_recognises_tvmscript_matmul(cpu):
    @T.prim_func(s_tir=True)
    def mm(a: T.Buffer((16, 32), "float32"), b: T.Buffer((32, 48), "float32"), c: T.Buffer((16, 48), "float32")):
        for i, j, k in T.grid(16, 48, 32):
            with T.sblock("C"):
                vi, vj, vk = T.axis.remap("SSR", [i, j, k])
                with T.init():
                    c[vi, vj] = T.float32(0)
                c[vi, vj] = c[vi, vj] + a[vi, vk] * b[vk, vj]

    spec = recognize(mm, cpu).spec
    assert (spec.m, spec.k, spec.n, str(spec.rhs.layout)) == (16, 32, 48, "row")


def test_recognises_relax_legalized_matmul(cpu):
    from tvm import relax
    from tvm.script import relax as R

    @tvm.script.ir_module
    class Model:
        @R.function
        def main(x: R.Tensor((8, 64), "float32"), w: R.Tensor((64, 32), "float32")):
            return R.matmul(x, w)

    legalized = relax.transform.LegalizeOps()(Model)
    funcs = [f for f in legalized.functions.values() if isinstance(f, tvm.tirx.PrimFunc)]
    spec = recognize(funcs[0], cpu).spec
    assert (spec.m, spec.k, spec.n) == (8, 64, 32)


def test_unsupported_operator_names_the_problem(cpu):
    x = te.placeholder((8, 8), name="X")
    relu = te.compute((8, 8), lambda i, j: te.max(x[i, j], 0.0), name="relu")
    with pytest.raises(UnsupportedOperatorError, match="relu"):
        recognize(te.create_prim_func([x, relu]), cpu)
    y = topi.nn.softmax(x)
    with pytest.raises(UnsupportedOperatorError, match="compute blocks"):
        recognize(te.create_prim_func([x, y]), cpu)


def test_fp16_matmul_is_rejected(cpu):
    x, w = te.placeholder((8, 8), "float16", name="X"), te.placeholder((8, 8), "float16", name="W")
    r = te.reduce_axis((0, 8), "k")
    y = te.compute((8, 8), lambda i, j: te.sum(x[i, r] * w[j, r], axis=r), name="Y")
    with pytest.raises(UnsupportedDtypeError, match="float16"):
        recognize(te.create_prim_func([x, w, y]), cpu)


@pytest.mark.parametrize("target", ["cuda", {"kind": "cuda"}, "not-a-target-kind"])
def test_bad_target_is_rejected(target):
    with pytest.raises(UnsupportedTargetError):
        resolve_target(target)


def test_llvm_target_without_cpu_gets_the_host_cpu(host):
    resolved = resolve_target({"kind": "llvm"})
    assert resolved == host and resolved.mcpu not in ("", "generic")
    assert resolved.vector_bits in (256, 512)
