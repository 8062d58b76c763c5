"""Compile the dispatching IRModule, verify it against numpy (and time it), write one .so plus its JSON manifest;
``tune_and_export`` runs the whole job from workloads to the library."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ..dynamic.config import TuningConfig
from ..dynamic.plan import OperatorPlan
from ..dynamic.summary import point_speedup, summary_table
from ..dynamic.tuner import replan, tune_dynamic
from ..measure.kernels import KernelMeasurer
from ..spec.symbolic import DynamicWorkload
from ..target import CpuTarget, resolve_target
from .manifest import build_manifest, manifest_path, write_manifest
from .modules import build_modules
from .speed import check_speed
from .verify import VerificationReport, verify_library


REPLAN_BELOW = 0.9  # a checked shape where the library is slower than this fraction of numpy's speed is re-planned
REPLAN_SHAPES = 3  # at most this many such shapes per operator (each costs a run of every candidate)


@dataclass(frozen=True)
class ExportedLibrary:
    """Where the library and its manifest were written, and what verification checked."""

    library: Path
    manifest: Path
    verification: VerificationReport


def compile_library(plans: Sequence[OperatorPlan], target: CpuTarget, kernel_funcs=None):
    """The Relax executable of ``plans``: dispatch and pack entries, with the separately compiled kernel
    module imported (``export_library`` bundles both into one .so)."""
    import tvm

    entries, kernel_modules = build_modules(plans, target, kernel_funcs)
    executable = tvm.compile(entries, target=target.tvm_target())
    for kernels, kernel_target in kernel_modules:
        executable.mod.import_module(tvm.tirx.build(kernels, target=kernel_target))
    return executable


@dataclass(frozen=True)
class CheckedLibrary:
    """A compiled library of ``plans`` that passed verification, not yet written."""

    plans: tuple[OperatorPlan, ...]
    executable: object
    verification: VerificationReport


def checked_library(plans: Sequence[OperatorPlan], target: CpuTarget, *, kernel_funcs=None,
                    random_per_region: int = 2, speed_points: int = 0) -> CheckedLibrary:
    """Compile and verify every dispatch region (raises VerificationError on a mismatch).

    The kernels are the traces the tuner measured (``measured_kernels``) unless ``kernel_funcs`` maps (operator,
    kernel index) to PrimFuncs of its own. With ``speed_points`` each operator is also timed against numpy at that
    many shapes (``speed.check_speed``); the results go into its provenance and so into the manifest."""
    executable = compile_library(plans, target, measured_kernels(plans, target) if kernel_funcs is None else kernel_funcs)
    report = verify_library(executable, plans, random_per_region=random_per_region)
    if speed_points:
        record_speed(executable, plans, speed_points)
    return CheckedLibrary(tuple(plans), executable, report)


def write_library(checked: CheckedLibrary, target: CpuTarget, path: str | Path) -> ExportedLibrary:
    """Write ``path`` (.so) and the manifest beside it (same name, .json)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    checked.executable.export_library(str(path))
    manifest = build_manifest(checked.plans, target, path, checked.verification.to_json())
    return ExportedLibrary(path, write_manifest(manifest, manifest_path(path)), checked.verification)


def export_library(plans: Sequence[OperatorPlan], target: CpuTarget, path: str | Path, *, kernel_funcs=None,
                   random_per_region: int = 2, speed_points: int = 0) -> ExportedLibrary:
    """Compile, verify (writing nothing on a mismatch), then write ``path`` (.so) and its manifest
    (``checked_library``, ``write_library``)."""
    return write_library(checked_library(plans, target, kernel_funcs=kernel_funcs,
                                         random_per_region=random_per_region, speed_points=speed_points), target, path)


def record_speed(executable, plans: Sequence[OperatorPlan], speed_points: int, streamed_bytes: int = 0) -> None:
    """Time each operator of ``executable`` against numpy at ``speed_points`` shapes, a constant weight read
    among ``streamed_bytes`` (``speed.check_speed``); into its provenance."""
    import tvm
    from tvm import relax

    vm = relax.VirtualMachine(executable, tvm.cpu())
    for plan, check in zip(plans, check_speed(vm, plans, speed_points, streamed_bytes=streamed_bytes)):
        plan.provenance["speed_check"] = check.to_json()


def replan_losing(plans: Sequence[OperatorPlan], target: CpuTarget, config: TuningConfig, say=print
                  ) -> list[OperatorPlan] | None:
    """Where a plan's speed check found shapes below ``REPLAN_BELOW`` of numpy, measure every candidate at the
    worst of them and plan that operator again (its kernel set may grow there), once. None when none lost."""
    losing = [losing_shapes(plan) for plan in plans]
    if not any(losing):
        return None
    for plan, envs in zip(plans, losing):
        if envs:
            say(f"{plan.workload.name} runs below {REPLAN_BELOW}x numpy at {envs}: measuring every candidate there "
                "and planning it again ...")
    measurer = KernelMeasurer(target, plans[0].provenance["work_dir"], number=config.number, repeat=config.repeat,
                              min_repeat_ms=config.min_repeat_ms, streamed_bytes=config.streamed_weight_bytes)
    return [replan(plan, envs, target, config, measurer) if envs else plan for plan, envs in zip(plans, losing)]


def checked_plans(plans: Sequence[OperatorPlan], target: CpuTarget, config: TuningConfig, say=print
                  ) -> list[OperatorPlan]:
    """``plans`` compiled and timed against numpy (``record_speed``), re-planned where they lose
    (``replan_losing``), each re-planned operator kept only if it is faster (``keep_faster``): what a model
    compiles with (``tune_and_export`` checks the library it writes)."""
    if not config.speed_points:
        return list(plans)
    streamed = config.streamed_weight_bytes
    say(f"timing the tuned kernels against numpy at {config.speed_points} shapes per operator"
        + (f", each weight read among {streamed / 2**20:.3g} MB of copies as in the model" if streamed else "") + " ...")
    record_speed(compile_library(plans, target, measured_kernels(plans, target)), plans, config.speed_points,
                 streamed)
    replanned = replan_losing(plans, target, config, say)
    if replanned is None:
        return list(plans)
    record_speed(compile_library(replanned, target, measured_kernels(replanned, target)), replanned,
                 config.speed_points, streamed)
    return keep_faster(plans, replanned, say)


def keep_faster(plans: Sequence[OperatorPlan], replanned: Sequence[OperatorPlan], say=print) -> list[OperatorPlan]:
    """Per operator, the re-planned plan unless its speed check's times are slower than the first plan's at the
    same shapes (geomean). A re-plan fits the cost model again, so it may change kernels far from the shapes it
    measured; on a noisy machine a spurious loss can make it worse overall."""
    chosen = []
    for old, new in zip(plans, replanned):
        ratio = _speed_ratio(old, new)
        if ratio is not None and ratio < 1.0:
            say(f"{old.workload.name}: the new plan ran {1 / ratio:.2f}x slower at the checked shapes; keeping the "
                "first")
            chosen.append(old)
        else:
            chosen.append(new)
    return chosen


def _speed_ratio(old: OperatorPlan, new: OperatorPlan) -> float | None:
    """Geomean of old seconds / new seconds over the shapes both speed checks timed (None: no such shape)."""
    def seconds(plan):
        points = plan.provenance.get("speed_check", {}).get("points", [])
        return {tuple(sorted(p["shape"].items())): p["seconds"] for p in points}

    before, after = seconds(old), seconds(new)
    shared = [shape for shape in before if shape in after]
    if old is new or not shared:
        return None
    return math.exp(sum(math.log(before[s] / after[s]) for s in shared) / len(shared))


def load_library(path: str | Path):
    """(VirtualMachine, manifest) for an exported library; uses plain TVM only (see the manifest's "loading")."""
    import tvm
    from tvm import relax

    from .manifest import read_manifest

    vm = relax.VirtualMachine(tvm.runtime.load_module(str(path)), tvm.cpu())
    return vm, read_manifest(manifest_path(path))


def tune_and_export(workloads: Sequence[DynamicWorkload], out: str | Path, target=None, *,
                    work_dir: str | Path | None = None, config: TuningConfig | None = None,
                    show_progress: bool = True):
    """Tune, verify, time against numpy and write ``out`` (.so) plus ``out`` with .json (the manifest); prints the
    summary table with the library's measured worst point.

    Where the library runs below ``REPLAN_BELOW`` of numpy at a checked shape, every candidate is measured at the
    worst such shapes and that operator is planned again (its kernel set may grow there), once."""
    target = resolve_target(target)
    config = config or TuningConfig()
    say = print if show_progress else (lambda *args: None)
    plans = tune_dynamic(workloads, target, work_dir=work_dir, config=config, show_progress=show_progress,
                         print_summary=False)
    say(f"compiling, verifying and timing the library against numpy at {config.speed_points} shapes per operator ...")
    library = checked_library(plans, target, speed_points=config.speed_points)
    replanned = replan_losing(plans, target, config, say)
    if replanned is not None:
        second = checked_library(replanned, target, speed_points=config.speed_points)
        chosen = keep_faster(plans, replanned, say)
        if all(c is r for c, r in zip(chosen, replanned)):
            library = second
        elif any(c is r for c, r in zip(chosen, replanned)):  # some operators of each: timed already
            library = checked_library(chosen, target)
        plans = chosen
    exported = write_library(library, target, out)
    if show_progress:
        print(summary_table(plans))
    return exported


def losing_shapes(plan: OperatorPlan, below: float = REPLAN_BELOW, most: int = REPLAN_SHAPES) -> list[dict]:
    """The checked shapes (``speed_check``) where the library ran below ``below`` of numpy, worst first."""
    points = plan.provenance.get("speed_check", {}).get("points", [])
    return [p["shape"] for p in sorted((p for p in points if point_speedup(p) < below), key=point_speedup)][:most]


def measured_kernels(plans: Sequence[OperatorPlan], target: CpuTarget) -> dict:
    """Each plan's kernels as the dynamic tuner measured them (the traces its database recorded), by (operator
    name, kernel index); a plan without a database keeps the schedules ``build_modules`` makes."""
    from tvm.s_tir import meta_schedule as ms

    from ..measure.kernels import recorded_kernel

    funcs = {}
    for plan in plans:
        work_dir = plan.provenance.get("database")
        if not work_dir or not Path(work_dir, "database_workload.json").exists():
            continue
        database = ms.database.JSONDatabase(work_dir=str(work_dir))
        for index in plan.tree.kernels_used():
            func = recorded_kernel(database, plan.workload, plan.kernels[index], plan.panel, target)
            if func is not None:
                funcs[(plan.workload.name, index)] = func
    return funcs
