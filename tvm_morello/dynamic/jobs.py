"""What tuning a dynamic workload measures: its candidate micro-kernels, the weight panel they share, and the
shapes each kernel is run at."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from ..codegen.kernel_funcs import WEIGHT_TILE_VECTORS, choose_panel, supports_dot, weight_panel
from ..codegen.microkernel import MicroKernel
from ..errors import MorelloError
from ..measure.kernels import Measurement
from ..spec.symbolic import SMALL_END, DynamicWorkload
from ..target import CpuTarget
from .candidates import candidate_microkernels, dot_microkernels, serial_microkernels
from .config import TuningConfig
from .cost_model import MIN_THROUGHPUT_SECONDS, adaptation, runs_by_kernel


def _representative(dim, workload: DynamicWorkload) -> int:
    return dim if isinstance(dim, int) else workload.range_of(dim).hi


def workload_candidates(workload: DynamicWorkload, target: CpuTarget, config: TuningConfig) -> list[MicroKernel]:
    """Hardware-sized candidates usable by this workload: an unpacked B[k, n] needs NR to divide n; prepacked
    weights share one panel width, read in whole panels by tiles of at most ``WEIGHT_TILE_VECTORS`` vectors."""
    k, n = _representative(workload.k, workload), _representative(workload.n, workload)
    if workload.constant_b:
        panel, widest = weight_panel(target.lanes()), WEIGHT_TILE_VECTORS * target.lanes()
        usable = lambda mk: mk.nr % panel == 0 and mk.nr <= widest  # noqa: E731
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
    throughput, overhead and occupancy can be learned and small shapes are not extrapolated to; ``count`` of
    these, and the ``SMALL_END``-th smallest shape besides: between the smallest and the middle the model
    extrapolates, and a small call's kernel decides a large share of its time. BERT-base's FFN down at m = 8
    (Zen 4, its weight read among 340 MB): predicted for a 5-row tile, making two passes, which the 8 x 32 tile
    ran 1.10x faster than (A/B).

    A serial kernel exists for the smallest calls (no thread-pool wake-up), so it is measured across the
    ``SMALL_END`` smallest shapes instead: smallest, their middle, their largest."""
    def score(env):
        return adaptation(workload, micro, panel, env, cores).factor(1.0), workload.flops(env)

    by_size = sorted(shapes, key=workload.flops)
    if not micro.parallel:
        small = by_size[:SMALL_END]
        return _distinct([small[0], small[len(small) // 2], small[-1]])[:count]
    log_flops = np.log([workload.flops(env) for env in by_size])

    def at_log_fraction(fraction: float):
        goal = log_flops[0] + fraction * (log_flops[-1] - log_flops[0])
        return by_size[int(np.argmin(np.abs(log_flops - goal)))]

    ordered = [max(shapes, key=score), by_size[0], at_log_fraction(0.5), by_size[-1], at_log_fraction(0.25),
               at_log_fraction(0.75)]
    return _distinct(_distinct(ordered)[:count] + [by_size[:SMALL_END][-1]])


def _distinct(envs) -> list[dict[str, int]]:
    picked: list[dict[str, int]] = []
    for env in envs:
        if dict(env) not in picked:
            picked.append(dict(env))
    return picked


@dataclass(frozen=True)
class TuningJobs:
    """What tuning one workload will measure: its candidate micro-kernels, the weight panel they share, and the
    (kernel, shape) runs; planned for every workload before any is measured, so progress has a true total.

    ``screening`` runs come first; each parallel kernel's run at its best-adapted shape (``throughput``, the
    costliest: the largest shape where it pads least) only follows for the kernels ``worth_throughput_runs``."""

    workload: DynamicWorkload
    micros: tuple[MicroKernel, ...]
    panel: int
    screening: tuple[tuple[MicroKernel, Mapping[str, int]], ...]
    throughput: tuple[tuple[MicroKernel, Mapping[str, int]], ...]
    planning_seconds: float

    @property
    def jobs(self) -> tuple[tuple[MicroKernel, Mapping[str, int]], ...]:
        return self.screening + self.throughput


def plan_jobs(workload: DynamicWorkload, target: CpuTarget, config: TuningConfig) -> TuningJobs:
    start = time.perf_counter()
    micros = workload_candidates(workload, target, config)
    panel = choose_panel(workload, micros, target.lanes())
    shapes, _ = workload.tuning_shapes(config.max_shapes)
    screening, throughput = [], []
    for mk in micros:
        envs = measurement_shapes(workload, mk, panel, shapes, target.cores, config.shapes_per_kernel)
        best_adapted, rest = (envs[0], envs[1:]) if mk.parallel else (None, envs)
        screening.extend((mk, env) for env in rest)
        if best_adapted is not None:
            throughput.append((mk, best_adapted))
    return TuningJobs(workload, tuple(micros), panel, tuple(screening), tuple(throughput), time.perf_counter() - start)


def worth_throughput_runs(planned: TuningJobs, screened: Sequence[Measurement], cores: int, keep: float,
                          repeat_s: float, min_screen_s: float = MIN_THROUGHPUT_SECONDS) -> list[tuple[MicroKernel, Mapping[str, int]]]:
    """The throughput runs worth making: a kernel's is skipped if, at its largest screening run, its padding- and
    occupancy-normalised speed is below ``keep`` of the best kernel's (it would not be chosen where the run is)
    and the run would take longer than ``repeat_s`` per call (shorter calls are repeated up to that long anyway).
    Only screening runs of at least ``min_screen_s`` judge a kernel: shorter ones time overheads, not throughput.

    Llama-2's FFN down (11008 x 4096, m = 1..512, Zen 4): the best-adapted runs at m ~ 512 took 3.9 s per call of
    all 12 parallel kernels, 2.9 s of it in the 7 kernels below 0.75 of the best at m = 27, none faster than
    180 GFLOP/s at m = 512 against 230 for the best."""
    wl = planned.workload

    def factor(micro, env) -> float:
        return adaptation(wl, micro, planned.panel, env, cores).factor(1.0)

    largest = runs_by_kernel(wl, [m for m in screened if m.micro.parallel and m.seconds >= min_screen_s])
    speed = {mk: meas.gflops / factor(mk, meas.env_dict) for mk, meas in largest.items()}
    best = max(speed.values(), default=0.0)

    def worth(micro, env) -> bool:
        if micro not in speed or speed[micro] >= keep * best:
            return True
        return wl.flops(env) / (speed[micro] * factor(micro, env) * 1e9) <= repeat_s

    return [(mk, env) for mk, env in planned.throughput if worth(mk, env)]
