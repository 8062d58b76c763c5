"""One-call tuning of a TIR module with MorelloSearch and the fast builder, on top of ms.tune_tir."""
from __future__ import annotations

from tvm.s_tir import meta_schedule as ms

from ..measure.builder import fast_builder
from ..target import resolve_target
from .intrinsics import cpu_tensor_intrinsics_only
from .strategy import MorelloSearch
from .space import MorelloSpace
from .workdir import repair_work_dir


def tune(
    mod,
    target,
    work_dir: str,
    max_trials: int,
    *,
    num_trials_per_iter: int = 16,
    strategy=None,
    builder=None,
    runner="local",
    num_tuning_cores: int | str = "physical",
    seed: int | None = None,
    **tune_tir_kwargs,
) -> ms.database.Database:
    """Tune ``mod`` (a PrimFunc or IRModule of PrimFuncs) and return the JSONDatabase in ``work_dir``.

    Parameters
    ----------
    target : anything ``resolve_target`` accepts; None is the host CPU with its real ``mcpu``.
    max_trials : new measurements over all tasks (``max_trials_global``); a resumed tune adds that many.
    num_trials_per_iter : candidates per batch; small batches let measurements steer the next batch sooner.
    strategy, builder : default to ``MorelloSearch()`` and ``fast_builder()``.
    runner : a meta-schedule runner (e.g. ``ms.runner.RPCRunner``) or "local".
    tune_tir_kwargs : passed on to ``ms.tune_tir`` unchanged.

    The design space defaults to ``MorelloSpace()`` (meta-schedule's own for static tasks; see ``MorelloSearch``).

    Only CPU tensor intrinsics are registered (see ``cpu_tensor_intrinsics_only``), which saves ~15 s.
    A ``work_dir`` left by a killed tune is repaired and resumed: its records are kept and not measured
    again. Compile the result with ``ms.tir_integration.compile_tir(database, mod, target)``.
    """
    repair_work_dir(work_dir)
    strategy = strategy if strategy is not None else MorelloSearch()
    tune_tir_kwargs.setdefault("space", MorelloSpace())
    with cpu_tensor_intrinsics_only():
        return ms.tune_tir(
            mod,
            resolve_target(target).tvm_target(),
            work_dir,
            max_trials_global=max_trials,
            num_trials_per_iter=num_trials_per_iter,
            builder=builder if builder is not None else fast_builder(),
            runner=runner,
            strategy=strategy,
            num_tuning_cores=num_tuning_cores,
            seed=seed,
            **tune_tir_kwargs,
        )
