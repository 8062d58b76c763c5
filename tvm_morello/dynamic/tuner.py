"""Joint tuning of dynamic workloads: plan every workload's runs, measure them (recorded, resumable), plan the
kernels and the dispatcher from the measurements."""
from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Mapping, Sequence

from ..codegen.microkernel import MicroKernel
from ..measure.kernels import KernelMeasurer, Measurement
from ..spec.symbolic import DynamicWorkload
from ..target import CpuTarget, require_host, resolve_target
from .config import TuningConfig
from .jobs import TuningJobs, plan_jobs, worth_throughput_runs
from .plan import OperatorPlan
from .planning import fastest_runs, plan_from_measurements, plan_from_ranking, rank_kernels
from .summary import summary_table

# Close calls are settled, the kernels ranked again, and the calls that ranking contests settled in turn: a
# shape's kernel can change to one never run there. BERT-base's FFN down at m = 8 (its weight read among 340 MB,
# Zen 4): the 8 x 32 tile beat the 4 x 32 there, then the new plan gave m = 8 to the 4 x 64 tile, predicted
# within 5% of it, which ran 1.05x slower (A/B).
CLOSE_CALL_ROUNDS = 2


def tune_workload(planned: TuningJobs, target: CpuTarget, measurer: KernelMeasurer, config: TuningConfig,
                  progress=None) -> OperatorPlan:
    """Measure the planned runs (through ``measurer``: the screening runs, then the throughput runs of the kernels
    worth them) and turn them into a plan.

    The runs do not join the stored calibration of the CPU (``cost.store``), unlike MorelloSearch's. Tried: each
    run as the Morello program with its kernel's loop nest (Zen 4, 2026-12-06): one set of affine constants cannot
    rank both kinds of code. Fitted with BERT-base's tune-dynamic runs, the constants picked a calibration
    workload's program 5.8x slower than its best (1.22x on calibrate's runs alone); weighting the runs down to
    where the static ranking held left the micro-kernels mis-ranked up to 14x."""
    start = time.perf_counter()
    workload = planned.workload
    if progress is not None:
        progress.set_description(f"tuning {workload.name}")
    measurements = measurer.measure(workload, planned.panel, planned.screening, progress)
    throughput = worth_throughput_runs(planned, measurements, target.cores, config.throughput_keep,
                                       config.min_repeat_ms / 1e3)
    if progress is not None and len(throughput) < len(planned.throughput):
        progress.total -= len(planned.throughput) - len(throughput)
        progress.refresh()
    if throughput:
        measurements += measurer.measure(workload, planned.panel, throughput, progress)
    micros = list(planned.micros)
    ranked = rank_kernels(workload, target, planned.panel, micros, measurements, config)
    settled: list[tuple[MicroKernel, dict]] = []
    for _ in range(CLOSE_CALL_ROUNDS):
        close = [job for job in ranked.contested(micros, config.close_margin, config.close_calls, workload.flops)
                 if job not in settled]
        if not close:
            break
        if progress is not None:
            progress.total += 2 * len(close)
            progress.refresh()
        measurements = fastest_runs(measurements + measurer.measure(workload, planned.panel, close, progress,
                                                                    records=2))
        settled += close
        ranked = rank_kernels(workload, target, planned.panel, micros, measurements, config)
    plan = plan_from_ranking(workload, planned.panel, micros, measurements, ranked, config)
    plan.provenance["close_calls"] = [{"kernel": micro.key, "shape": dict(env)} for micro, env in settled]
    plan.provenance["tuning_seconds"] = planned.planning_seconds + time.perf_counter() - start
    plan.provenance["database"] = str(measurer.records_for(workload))
    plan.provenance["work_dir"] = str(measurer.work_dir)
    return plan


def tune_dynamic(workloads: Sequence[DynamicWorkload], target=None, *, work_dir: str | Path | None = None,
                 config: TuningConfig | None = None, show_progress: bool = True,
                 print_summary: bool | None = None) -> list[OperatorPlan]:
    """Tune every workload (records go to a JSONDatabase in ``work_dir``, a constant weight's streamed runs to
    its folder ``records_dir``) on this host; prints a summary table (``print_summary``, by default when showing
    progress)."""
    from tqdm.auto import tqdm

    target = resolve_target(target)
    require_host(target, "tune")
    config = config or TuningConfig()
    work_dir = Path(work_dir or tempfile.mkdtemp(prefix="tvm_morello_dynamic_"))
    measurer = KernelMeasurer(target, work_dir, number=config.number, repeat=config.repeat,
                              min_repeat_ms=config.min_repeat_ms, streamed_bytes=config.streamed_weight_bytes)
    planned = [plan_jobs(wl, target, config)
               for wl in tqdm(workloads, desc="choosing micro-kernels", unit="op", disable=not show_progress)]
    runs = sum(len(p.jobs) for p in planned)
    with tqdm(total=runs, desc="tuning", unit="run", disable=not show_progress) as progress:
        plans = [tune_workload(p, target, measurer, config, progress) for p in planned]
    if show_progress if print_summary is None else print_summary:
        print(summary_table(plans))
    return plans


def replan(plan: OperatorPlan, envs: Sequence[Mapping[str, int]], target: CpuTarget, config: TuningConfig,
           measurer: KernelMeasurer) -> OperatorPlan:
    """Measure every candidate of ``plan`` at ``envs`` (shapes where its library lost to numpy) and plan again:
    the set cover then sees measured times of every kernel there instead of predictions, and may take in the
    kernel that wins there."""
    start = time.perf_counter()
    workload, prov = plan.workload, plan.provenance
    micros = [MicroKernel.from_key(key) for key in prov["candidates"]]
    earlier = [Measurement(MicroKernel.from_key(m["kernel"]), tuple(sorted(m["shape"].items())), m["seconds"],
                           m["gflops"]) for m in prov["measurements"]]
    have = {(m.micro, m.env) for m in earlier}
    jobs = [(micro, dict(env)) for env in envs for micro in micros if (micro, tuple(sorted(env.items()))) not in have]
    added = measurer.measure(workload, plan.panel, jobs) if jobs else []
    replanned = plan_from_measurements(workload, target, plan.panel, micros, earlier + added, config)
    replanned.provenance.update(database=prov.get("database"), work_dir=prov.get("work_dir"),
                                replanned_at=[dict(env) for env in envs],
                                speed_check_before_replan=prov.get("speed_check"),
                                tuning_seconds=prov.get("tuning_seconds", 0.0) + time.perf_counter() - start)
    return replanned
