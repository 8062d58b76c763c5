"""The model's executable: its matmuls call the tuned dispatchers (compiled apart, imported), every other operator
is legalized, fused and scheduled for shapes of any size (``codegen.operators``)."""
from __future__ import annotations

from typing import Mapping, Sequence

from ..dynamic.plan import OperatorPlan
from ..spec.epilogue import Epilogue
from ..spec.symbolic import VarRange
from ..target import CpuTarget
from .elementwise_forms import sigmoid_as_exp
from .guard import with_range_checks
from .softmax_calls import replace_softmax_calls


def schedule_operators(mod, target: CpuTarget):
    """Softmaxes call ``codegen.softmax``'s kernel; legalize, fuse and schedule every other PrimFunc with
    ``codegen.operators.generic_rules``; what none applies to keeps TVM's default lowering."""
    from tvm import relax
    from tvm.s_tir import dlight

    from ..codegen.operators import generic_rules

    # erf, exp and tanh as the polynomials TVM vectorises (libm's are called per lane): BERT's GELU at T = 128
    # took 2.3 ms, 0.14 ms so; sigmoid through exp
    mod = sigmoid_as_exp(replace_softmax_calls(mod, target.lanes()))
    mod = relax.get_pipeline("zero")(relax.transform.FastMathTransform()(mod))
    with target.tvm_target():
        return dlight.ApplyDefaultSchedule(*generic_rules())(mod)


def build_model(mod, plans: Sequence[OperatorPlan], target: CpuTarget, ranges: Mapping[str, VarRange],
                kernel_funcs=None, epilogues: Mapping[str, Sequence[Epilogue]] | None = None):
    """The Relax executable of ``mod`` (matmuls already replaced), its ``main`` checking ``ranges``, with
    the plans' kernel modules imported (and their dispatchers fused with ``epilogues``)."""
    import tvm

    from ..library.modules import build_modules

    scheduled = with_range_checks(schedule_operators(mod, target), ranges)
    # reassociation lets LLVM vectorise the row reductions' sums (the matmul kernels keep their own targets)
    executable = tvm.compile(scheduled, target=target.tvm_target(reassociate=True))
    if plans:
        _, kernel_modules = build_modules(plans, target, kernel_funcs, epilogues, called=extern_calls(mod))
        for kernels, kernel_target in kernel_modules:
            executable.mod.import_module(tvm.tirx.build(kernels, target=kernel_target))
    return executable


def extern_calls(mod) -> set[str]:
    """The names of the external functions (our dispatchers) ``mod``'s Relax functions call."""
    from tvm import relax

    names: set[str] = set()

    def visit(expr) -> None:
        if isinstance(expr, relax.ExternFunc):
            names.add(str(expr.global_symbol))

    for func in mod.functions.values():
        if isinstance(func, relax.Function):
            relax.analysis.post_order_visit(func.body, visit)
    return names
