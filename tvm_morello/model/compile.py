"""``compile_model``: a user's model with symbolic dimensions into one tuned, verified library.

Import (ONNX or Relax) -> the ranges of its dimensions -> its matmuls (dense layers, attention's batched
matmuls), one workload per distinct shape -> DietCode tuning of each workload over its distribution -> the matmuls
replaced by dispatcher calls (weights packed once) -> the rest legalized, fused and scheduled for every shape ->
verified against TVM's untuned build at the ranges' ends and random points -> one .so and its manifest."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Mapping

from ..dynamic.config import TuningConfig
from ..dynamic.jobs import workload_candidates
from ..dynamic.plan import OperatorPlan
from ..dynamic.tuner import tune_dynamic
from ..errors import MorelloError, UnsupportedOperatorError
from ..library.export import checked_plans, measured_kernels
from ..library.manifest import build_manifest, manifest_path, write_manifest
from ..library.modules import called_ranks
from ..spec.symbolic import VarRange
from ..target import resolve_target
from .build import build_model, extern_calls
from .elementwise_forms import expand_integer_powers
from .epilogues import distinct_epilogues, find_fused_matmuls
from .latency import latency_points, measure_latency
from .locate import locate_mismatch
from .matmul_calls import find_matmul_calls, merge_workloads, replace_matmul_calls
from .norm_forms import normalizations_as_operators
from .source import load_model, model_ranges, static_parameters
from .verify import ModelVerification, check_points, onnx_runtime_runner, verify_model, vm_runner


@dataclass(frozen=True, repr=False)
class CompiledModel:
    """The compiled model: its executable (``main`` as the model's), where it was written, what was tuned.
    ``str()`` is the summary; ``repr()`` one line (the plans' provenance holds every measurement)."""

    executable: object  # tvm.relax.VMExecutable
    ranges: dict[str, VarRange]
    plans: tuple[OperatorPlan, ...]
    matmuls: int
    verification: ModelVerification
    library: Path | None = None
    manifest: Path | None = None
    timings: dict = field(default_factory=dict)
    epilogues: dict = field(default_factory=dict)  # workload name -> the epilogues its kernels run
    latency: tuple = ()  # ({dimension: value, ..., "ms": milliseconds per call}, ...) as measured
    untuned_matmuls: dict = field(default_factory=dict)  # workload name -> why no kernel of ours expresses it

    @property
    def epilogue_count(self) -> int:
        return sum(len(e) for e in self.epilogues.values())

    def __repr__(self) -> str:
        ranges = ", ".join(f"{name}={r.lo}..{r.hi}" for name, r in self.ranges.items())
        return (f"CompiledModel({ranges}; {self.matmuls} matmuls, {len(self.plans)} workloads, "
                f"{self.epilogue_count} distinct epilogues; library={str(self.library) if self.library else None})")

    def __str__(self) -> str:
        return self.summary()

    def summary(self) -> str:
        ranges = ", ".join(f"{name} in {r.lo}..{r.hi}" for name, r in self.ranges.items())
        lines = [f"model over {ranges}: {self.matmuls} matmuls in {len(self.plans)} distinct workloads (tuned, "
                 "dispatching by shape); every other operator: a schedule for any shape",
                 "| workload | ranges | kernels | tuning s | epilogues run in the kernels |", "|---|---|---|---|---|"]
        for plan in self.plans:
            fused = ", ".join(e.ops for e in self.epilogues.get(plan.workload.name, ())) or "-"
            lines.append(f"| {plan.workload.name} | {_ranges_text(plan.workload)} | {len(plan.tree.kernels_used())} | "
                         f"{plan.provenance.get('tuning_seconds', 0.0):.1f} | {fused} |")
        lines += [f"{name}: not tuned ({why}); TVM's generic schedule" for name, why in self.untuned_matmuls.items()]
        references = sorted({point["reference"] for point in self.verification.points})
        lines.append(f"verified at {len(self.verification.points)} points against {' and '.join(references)} "
                     f"(max abs error {self.verification.max_abs_error:.2g}); "
                     + ", ".join(f"{k} {v:.1f} s" for k, v in self.timings.items()))
        if self.latency:
            lines.append("measured latency: " + "; ".join(
                ", ".join(f"{k}={v}" for k, v in point.items() if k != "ms") + f": {point['ms']:.3g} ms"
                for point in self.latency))
        return "\n".join(lines)


def _ranges_text(workload) -> str:
    return ", ".join(f"{name} {r.lo}..{r.hi}" for name, r in workload.ranges)


def _check_inputs(func) -> None:
    from tvm import relax, tirx

    for param in func.params:
        info = param.ty
        if not isinstance(info, relax.TensorType) or info.shape is None:
            raise UnsupportedOperatorError(f"model input {param.name!r} is not a tensor of known rank")
        for dim in info.shape.values:
            if not isinstance(dim, (tirx.IntImm, tirx.Var)):
                raise UnsupportedOperatorError(f"model input {param.name!r} has dimension {dim}: inputs need "
                                               "integer or plain symbolic dimensions")


def compile_model(model, ranges: Mapping[str, VarRange | tuple[int, int]] | None = None, target=None, *,
                  out: str | Path | None = None, work_dir: str | Path | None = None,
                  config: TuningConfig | None = None, show_progress: bool = True,
                  params: Mapping[str, object] | None = None) -> CompiledModel:
    """Compile ``model`` (an .onnx path, an onnx.ModelProto or a Relax IRModule) for every assignment of its
    symbolic dimensions in ``ranges`` (default: the module's ``tir_var_*_bound`` attributes). A Relax module's
    weights are its constants: bound already, or passed as ``params`` (arrays by parameter name of ``main``).

    Tuning records go to ``work_dir`` (a resumed compile reuses them). With ``out`` the library (.so) and its
    manifest (.json beside it) are written, only after verification passed."""
    import tvm

    say = print if show_progress else (lambda *args, **kwargs: None)
    target = resolve_target(target)
    timings: dict[str, float] = {}
    start = time.perf_counter()
    loaded = load_model(model, params)
    mod = normalizations_as_operators(expand_integer_powers(loaded))
    func = mod["main"]
    _check_inputs(func)
    var_ranges = model_ranges(func, ranges)
    if static := static_parameters(func):
        say(f"inputs of a fixed shape: {', '.join(static)}; weights among them are inputs to every call, which no "
            "kernel of ours packs: pass them as params={name: array} to tune the matmuls reading them", flush=True)
    calls = find_matmul_calls(mod, var_ranges)
    workloads = merge_workloads(calls)
    say(f"{len(calls)} matmuls found, {len(workloads)} distinct workloads: "
        + ", ".join(f"{wl.name} ({_ranges_text(wl)})" for wl in workloads), flush=True)
    config = config or TuningConfig()
    if not config.streamed_weight_bytes:  # each matmul's weight is read among all of them, once per call of main
        config = replace(config, streamed_weight_bytes=sum(c.weight.nbytes for c in calls if c.weight is not None))
    workloads, untuned_matmuls = _expressible(workloads, target, config)
    for name, why in untuned_matmuls.items():
        say(f"{name}: {why}; it keeps TVM's generic schedule", flush=True)
    plans = tune_dynamic(workloads, target, work_dir=work_dir, config=config, show_progress=show_progress,
                         print_summary=False) if workloads else []
    # timed against numpy at the small end and a spread of every range, re-planned where a kernel loses
    plans = tuple(checked_plans(plans, target, config, say)) if plans else ()
    timings["tuning"] = time.perf_counter() - start
    start = time.perf_counter()
    say("building the model ...", flush=True)
    fused = [f for f in find_fused_matmuls(mod, var_ranges) if f.call.workload.name not in untuned_matmuls]
    rewritten = replace_matmul_calls(mod, var_ranges, plans, fused)
    epilogues = distinct_epilogues(fused)
    executable = build_model(rewritten, plans, target, var_ranges, measured_kernels(list(plans), target), epilogues)
    untuned = vm_runner(tvm.compile(loaded, target=target.tvm_target()))  # the model as given
    # written before any VM runs the executable: a VM's start-up records an empty memory scope for each of its
    # constants, which an export then saves and every later load prints as a warning (one per weight)
    staged = _export_unverified(executable, Path(out)) if out is not None else None
    timings["building"] = time.perf_counter() - start
    start = time.perf_counter()
    points = check_points(var_ranges)
    onnx_runtime = onnx_runtime_runner(model) if isinstance(model, (str, Path)) else None
    references = [("TVM's untuned build", untuned, points[:1] if onnx_runtime else points)]
    if onnx_runtime is not None:
        references.append(("ONNX Runtime", onnx_runtime, points))
    say(f"verifying against {' and '.join(name for name, _, _ in references)} ...", flush=True)
    weights = [c.weight.T if c.workload.transpose_b else c.weight for c in calls if c.weight is not None]
    try:
        verification = verify_model(vm_runner(executable), references, func, explain=lambda arrays: locate_mismatch(
            executable, arrays, plans, epilogues, weights))
        timings["verifying"] = time.perf_counter() - start
        say("timing the compiled model ...", flush=True)
        latency = measure_latency(executable, func, latency_points(var_ranges))
    except BaseException:  # a mismatch (or Ctrl-C) writes nothing
        if staged is not None:
            staged.unlink(missing_ok=True)
        raise
    library = manifest = None
    if staged is not None:
        library = Path(out)
        os.replace(staged, library)
        manifest = write_manifest(_manifest(library, var_ranges, plans, len(calls), verification, target, epilogues,
                                            extern_calls(rewritten), latency, untuned_matmuls), manifest_path(library))
    compiled = CompiledModel(executable, var_ranges, plans, len(calls), verification, library, manifest, timings,
                             epilogues, latency, untuned_matmuls)
    say(compiled.summary())
    return compiled


def _expressible(workloads, target, config) -> tuple[list, dict[str, str]]:
    """(the workloads our micro-kernels express, {name: why not} for the others): a model with such a matmul
    (e.g. attention's probs·V with a head narrower than a vector) still compiles, that matmul untuned."""
    kept, untuned = [], {}
    for workload in workloads:
        try:
            workload_candidates(workload, target, config)
        except MorelloError as err:
            untuned[workload.name] = str(err).removeprefix(f"{workload.name}: ")
            continue
        kept.append(workload)
    return kept, untuned


def _export_unverified(executable, library: Path) -> Path:
    """``executable`` written beside ``library`` under a hidden name; moved into place once verified."""
    library.parent.mkdir(parents=True, exist_ok=True)
    staged = library.with_name(f".{library.stem}.unverified.so")
    executable.export_library(str(staged))
    return staged


def _manifest(library: Path, ranges, plans, matmuls: int, verification: ModelVerification, target,
              epilogues, called, latency, untuned_matmuls) -> dict:
    """The library manifest (``library.manifest``) with what a model adds: its ranges, its matmuls and the
    epilogues their kernels run (with the dispatchers of them ``main`` calls), the matmuls left to TVM's schedule
    and why, its measured latency, how to call it."""
    manifest = build_manifest(plans, target, library, verification.to_json())
    by_name = {plan.workload.name: plan for plan in plans}

    def dispatchers(plan, epilogue) -> list[str]:
        return [plan.dispatcher_for(epilogue, rank) for rank in called_ranks(plan.dispatcher_for(epilogue), called)]

    manifest.update(
        kind="model", ranges={name: r.to_json() for name, r in ranges.items()}, matmuls=matmuls,
        epilogues={name: [{"ops": e.ops, "dispatchers": dispatchers(by_name[name], e)} for e in found]
                   for name, found in epilogues.items()},
        untuned_matmuls=dict(untuned_matmuls), latency_ms=list(latency),
        loading=f"{manifest['loading']}; out = vm['main'](*inputs)")
    return manifest
