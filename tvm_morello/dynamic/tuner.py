"""Joint tuning of a dynamic workload: measure micro-kernels, learn throughput, cover the shapes, fit the tree."""
from __future__ import annotations

import math
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from ..errors import MorelloError
from ..target import CpuTarget, require_host, resolve_target
from .cost_model import ThroughputModel, adaptation
from .dispatch import DispatchTree
from .kernels import WEIGHT_PANEL_VECTORS, choose_panel, supports_dot
from .measure import KernelMeasurer, Measurement
from .microkernels import MicroKernel, candidate_microkernels, dot_microkernels, serial_microkernels
from .plan import OperatorPlan
from .branch_order import BRANCH_S
from .set_cover import assign, assign_in_runs, greedy_set_cover
from .shapes import DynamicWorkload


@dataclass(frozen=True)
class TuningConfig:
    """Budgets and knobs of the joint tuning.

    Parameters
    ----------
    max_candidates : micro-kernels measured per operator (an even spread of the candidates); None = all.
    candidate_source : "auto", "dp" or "hardware" (see ``candidate_microkernels``).
    shapes_per_kernel : concrete shapes each candidate is measured at (best-adapted shape first).
    max_shapes : tuning shapes per operator the cost model ranks kernels on.
    cap : most kernels one operator's library may contain. The greedy cover takes the kernels covering the
        most shape weight first, so at a tight cap the few smallest shapes (little weight, but the ones where
        a serial kernel saves the thread-pool launch) are the ones left on a slow kernel.
    top_k, tolerance : which kernels count as good for a shape in the set cover (10% let a kernel 5-10%
        slower on most attention shapes cover them alone).
    run_slack : with one symbolic variable, how much slower than its best chosen kernel (relative, plus one
        dispatcher branch) a shape's kernel may be so that it joins its neighbours' run (fewer branches).
    number, repeat, min_repeat_ms : the runner's evaluator settings.
    serial_kernel : also measure serial (no parallel loop) kernels for tiny shapes.
    dot_kernels : also measure the dot-form kernels where B is an activation stored [n, k] (tiny ``A Bᵀ``).
    seed : seeds the booster, the tree and the verification inputs.
    """

    max_candidates: int | None = 8
    candidate_source: str = "auto"
    shapes_per_kernel: int = 3
    max_shapes: int = 64
    cap: int = 6
    top_k: int = 1
    tolerance: float = 0.05
    run_slack: float = 0.03
    number: int = 3
    repeat: int = 3
    min_repeat_ms: int = 40
    serial_kernel: bool = True
    dot_kernels: bool = True
    seed: int = 0


def _representative(dim, workload: DynamicWorkload) -> int:
    return dim if isinstance(dim, int) else workload.range_of(dim).hi


def workload_candidates(workload: DynamicWorkload, target: CpuTarget, config: TuningConfig) -> list[MicroKernel]:
    """Hardware-sized candidates usable by this workload: an unpacked B[k, n] needs NR to divide n; prepacked
    weights share one panel width, so NR is capped at ``WEIGHT_PANEL_VECTORS`` vectors."""
    k, n = _representative(workload.k, workload), _representative(workload.n, workload)
    if workload.constant_b:
        usable = lambda mk: mk.nr <= WEIGHT_PANEL_VECTORS * target.lanes()  # noqa: E731
    elif workload.packs_b():
        usable = None
    else:
        usable = lambda mk: n % mk.nr == 0  # noqa: E731
    micros = candidate_microkernels(target, k, n, limit=config.max_candidates, source=config.candidate_source,
                                    usable=usable)
    if not micros:
        raise MorelloError(f"{workload.name}: no register tile divides n={n}; supported are multiples of {target.lanes()}")
    if config.serial_kernel:
        micros.extend(mk for mk in serial_microkernels(target) if usable is None or usable(mk))
    if config.dot_kernels and supports_dot(workload, target.lanes()):
        micros.extend(dot_microkernels())
    return micros


def measurement_shapes(workload: DynamicWorkload, micro: MicroKernel, panel: int, shapes: Sequence[Mapping[str, int]],
                       cores: int, count: int) -> list[dict[str, int]]:
    """DietCode's choice first: the shape where ``micro`` is best adapted (largest such); then the smallest,
    the middle of the range on a log scale of flops, the largest, and the log-scale quartiles, so that
    throughput, overhead and occupancy can be learned and small shapes are not extrapolated to."""
    def score(env):
        return adaptation(workload, micro, panel, env, cores).factor(1.0), workload.flops(env)

    by_size = sorted(shapes, key=workload.flops)
    log_flops = np.log([workload.flops(env) for env in by_size])

    def at_log_fraction(fraction: float):
        goal = log_flops[0] + fraction * (log_flops[-1] - log_flops[0])
        return by_size[int(np.argmin(np.abs(log_flops - goal)))]

    ordered = [max(shapes, key=score), by_size[0], at_log_fraction(0.5), by_size[-1], at_log_fraction(0.25),
               at_log_fraction(0.75)]
    picked: list[dict[str, int]] = []
    for env in ordered:
        if dict(env) not in picked:
            picked.append(dict(env))
    return picked[:count]


def with_measured(cost: np.ndarray, shapes: Sequence[Mapping[str, int]], micros: Sequence[MicroKernel],
                  measurements: Sequence[Measurement]) -> np.ndarray:
    """The predicted cost matrix [shape, kernel] with every measured (shape, kernel) pair set to its
    measured time: the model only fills the gaps between measurements."""
    row = {tuple(sorted(env.items())): i for i, env in enumerate(shapes)}
    column = {micro: j for j, micro in enumerate(micros)}
    out = cost.copy()
    for meas in measurements:
        i, j = row.get(meas.env), column.get(meas.micro)
        if i is not None and j is not None:
            out[i, j] = meas.seconds
    return out


def plan_from_measurements(workload: DynamicWorkload, target: CpuTarget, panel: int, micros: Sequence[MicroKernel],
                           measurements: Sequence[Measurement], config: TuningConfig) -> OperatorPlan:
    """Fit the throughput model, predict every tuning shape's cost per kernel, choose the kernel set by
    greedy set cover and fit the dispatch tree on the resulting labels."""
    shapes, weights = workload.tuning_shapes(config.max_shapes)
    model = ThroughputModel(target.lanes(), target.cores, random_state=config.seed).fit(workload, panel, measurements)
    cost = with_measured(model.predict_seconds(workload, panel, micros, shapes), shapes, micros, measurements)
    chosen = greedy_set_cover(cost, weights, top_k=config.top_k, tolerance=config.tolerance, cap=config.cap)
    if len(workload.var_names) == 1:
        order = np.argsort([env[workload.var_names[0]] for env in shapes], kind="stable")
        labels = np.empty(len(shapes), dtype=int)
        labels[order] = assign_in_runs(cost[order], chosen, weights[order], slack_s=BRANCH_S,
                                       relative_slack=config.run_slack)
    else:
        labels = assign(cost, chosen)
    index = {column: i for i, column in enumerate(chosen)}
    x = np.array([[env[name] for name in workload.var_names] for env in shapes])
    y = np.array([index[c] for c in labels])
    tree = DispatchTree(workload.var_names, random_state=config.seed).fit(x, y, sample_weight=weights)
    predicted = cost[np.arange(len(shapes)), labels]
    flops = np.array([workload.flops(env) for env in shapes], dtype=float)
    provenance = {
        "candidates": [mk.key for mk in micros],
        "measurements": [{"kernel": m.micro.key, "shape": m.env_dict, "seconds": m.seconds, "gflops": m.gflops}
                         for m in measurements],
        "occupancy_alpha": model.alpha_,
        "tuning_shapes": len(shapes),
        "predicted_geomean_gflops": float(np.exp(np.average(np.log(flops / predicted / 1e9), weights=weights))),
        "predicted_best_single_geomean_gflops": float(max(
            np.exp(np.average(np.log(flops / cost[:, j] / 1e9), weights=weights)) for j in range(len(micros)))),
        "config": asdict(config),
    }
    return OperatorPlan(workload, panel, tuple(micros[c] for c in chosen), tree, provenance)


@dataclass(frozen=True)
class TuningJobs:
    """What tuning one workload will measure: its candidate micro-kernels, the weight panel they share, and the
    (kernel, shape) runs; planned for every workload before any is measured, so progress has a true total."""

    workload: DynamicWorkload
    micros: tuple[MicroKernel, ...]
    panel: int
    jobs: tuple[tuple[MicroKernel, Mapping[str, int]], ...]
    planning_seconds: float


def plan_jobs(workload: DynamicWorkload, target: CpuTarget, config: TuningConfig) -> TuningJobs:
    start = time.perf_counter()
    micros = workload_candidates(workload, target, config)
    panel = choose_panel(workload, micros, target.lanes())
    shapes, _ = workload.tuning_shapes(config.max_shapes)
    jobs = [(mk, env) for mk in micros
            for env in measurement_shapes(workload, mk, panel, shapes, target.cores, config.shapes_per_kernel)]
    return TuningJobs(workload, tuple(micros), panel, tuple(jobs), time.perf_counter() - start)


def tune_workload(planned: TuningJobs, target: CpuTarget, measurer: KernelMeasurer, config: TuningConfig,
                  progress=None) -> OperatorPlan:
    """Measure the planned runs (through ``measurer``) and turn them into a plan."""
    start = time.perf_counter()
    workload = planned.workload
    if progress is not None:
        progress.set_description(f"tuning {workload.name}")
    measurements = measurer.measure(workload, planned.panel, planned.jobs, progress)
    plan = plan_from_measurements(workload, target, planned.panel, list(planned.micros), measurements, config)
    plan.provenance["tuning_seconds"] = planned.planning_seconds + time.perf_counter() - start
    plan.provenance["database"] = str(measurer.work_dir)
    return plan


def tune_dynamic(workloads: Sequence[DynamicWorkload], target=None, *, work_dir: str | Path | None = None,
                 config: TuningConfig | None = None, show_progress: bool = True) -> list[OperatorPlan]:
    """Tune every workload (records go to a JSONDatabase in ``work_dir``) on this host; prints a summary table."""
    from tqdm.auto import tqdm

    target = resolve_target(target)
    require_host(target, "tune")
    config = config or TuningConfig()
    work_dir = Path(work_dir or tempfile.mkdtemp(prefix="tvm_morello_dynamic_"))
    measurer = KernelMeasurer(target, work_dir, number=config.number, repeat=config.repeat,
                              min_repeat_ms=config.min_repeat_ms)
    planned = [plan_jobs(wl, target, config)
               for wl in tqdm(workloads, desc="choosing micro-kernels", unit="op", disable=not show_progress)]
    runs = sum(len(p.jobs) for p in planned)
    with tqdm(total=runs, desc="tuning", unit="run", disable=not show_progress) as progress:
        plans = [tune_workload(p, target, measurer, config, progress) for p in planned]
    if show_progress:
        print(summary_table(plans))
    return plans


def summary_table(plans: Sequence[OperatorPlan]) -> str:
    """One row per operator: candidates, runs, chosen kernels, tree leaves, predicted speed, tuning time."""
    rows = ["| operator | candidates | runs | kernels | leaves | pred. GFLOP/s | best single | tuning s |",
            "|---|---|---|---|---|---|---|---|"]
    for plan in plans:
        prov = plan.provenance
        leaves = len(plan.tree.regions([plan.workload.range_of(n).lo for n in plan.workload.var_names],
                                       [plan.workload.range_of(n).hi for n in plan.workload.var_names]))
        rows.append(
            f"| {plan.workload.name} | {len(prov.get('candidates', []))} | {len(prov.get('measurements', []))} | "
            f"{', '.join(mk.key for mk in plan.kernels)} | {leaves} | {prov.get('predicted_geomean_gflops', math.nan):.1f} | "
            f"{prov.get('predicted_best_single_geomean_gflops', math.nan):.1f} | {prov.get('tuning_seconds', math.nan):.1f} |")
    return "\n".join(rows)


def tune_and_export(workloads: Sequence[DynamicWorkload], out: str | Path, target=None, *,
                    work_dir: str | Path | None = None, config: TuningConfig | None = None,
                    show_progress: bool = True):
    """Tune, verify and write ``out`` (.so) plus ``out`` with .json (the manifest)."""
    from ..export import export_library

    target = resolve_target(target)
    plans = tune_dynamic(workloads, target, work_dir=work_dir, config=config, show_progress=show_progress)
    return export_library(plans, target, out)
