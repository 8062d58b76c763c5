"""The model's executable: its dense layers call the tuned dispatchers (compiled apart, imported), every other
operator is legalized, fused and given TVM's CPU rules for shapes of any size (``s_tir.dlight.cpu``)."""
from __future__ import annotations

from typing import Sequence

from ..dynamic.plan import OperatorPlan
from ..target import CpuTarget


def schedule_operators(mod, target: CpuTarget):
    """Legalize, fuse and schedule every PrimFunc the dlight CPU rules apply to (reductions: softmax,
    layer_norm; GEMV); the rest keep TVM's default lowering."""
    import tvm
    from tvm import relax
    from tvm.s_tir import dlight

    mod = relax.get_pipeline("zero")(mod)
    with target.tvm_target():
        return dlight.ApplyDefaultSchedule(dlight.cpu.GEMV(), dlight.cpu.Reduction())(mod)


def build_model(mod, plans: Sequence[OperatorPlan], target: CpuTarget, kernel_funcs=None):
    """The Relax executable of ``mod`` (dense layers already replaced) with the plans' kernel modules imported."""
    import tvm

    from ..library.modules import build_modules

    executable = tvm.compile(schedule_operators(mod, target), target=target.tvm_target())
    if plans:
        _, kernel_modules = build_modules(plans, target, kernel_funcs)
        for kernels, kernel_target in kernel_modules:
            executable.mod.import_module(tvm.tirx.build(kernels, target=kernel_target))
    return executable
