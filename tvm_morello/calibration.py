"""``tvm-morello calibrate``: measure the DP's programs on this host and store the cost constants fitted to them.

The workloads span what the cost model must rank: GEMV-like, small, odd and large M, long K, wide N, a prepacked
weight and both attention batch_matmuls. None is a benchmark shape. Round 1 synthesises with the constants the
host has now; round 2 with the fit of round 1, so the final fit also sees the programs it would pick itself.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from .cost import fit_features, program_cost, program_features, shipped_constants
from .cost.store import Sample, StoredFit, refit
from .measure.timing import build_all, time_built
from .spec.operators import Workload, batch_matmul, dense
from .target import CpuTarget

ROUNDS, MIN_SECONDS = 3, 0.05  # each program timed in turn with its workload's others, median of 3

WORKLOADS: tuple[Callable[[], Workload], ...] = (
    lambda: dense(4, 1024, 1024),
    lambda: dense(24, 1024, 512),
    lambda: dense(100, 512, 1024),
    lambda: dense(256, 1024, 256),
    lambda: dense(64, 2048, 512),
    lambda: dense(512, 512, 512),
    lambda: dense(96, 512, 512, prepacked=64),
    lambda: batch_matmul(8, 96, 64, 96),
    lambda: batch_matmul(8, 96, 96, 64),
)

Measured = tuple  # (workload, program, seconds)


@dataclass(frozen=True)
class WorkloadQuality:
    """How well constants rank one workload's measured programs: the measured slowdown of the one they
    model cheapest against the fastest measured."""

    workload: str
    programs: int
    best_gflops: float
    top1_slowdown_before: float
    top1_slowdown_after: float


def top1_slowdown(programs: Sequence, seconds: Sequence[float], constants, target: CpuTarget) -> float:
    modelled = [program_cost(p, constants, target) for p in programs]
    return float(seconds[int(np.argmin(modelled))] / min(seconds))


def measure_programs(target: CpuTarget, constants, workloads: Sequence[Workload], top_k: int, known: set,
                     progress: Callable[[str], None]) -> list[Measured]:
    """Synthesise each workload's top-k under ``constants``, then build, check and time the programs not in
    ``known`` (tree keys). One Synthesizer serves every workload: their sub-specs overlap."""
    from .codegen import lower_program
    from .search import Synthesizer
    from .spec.recognize import recognize

    synthesizer = Synthesizer(target, constants, top_k)
    fresh = []
    for workload in workloads:
        for program in synthesizer.solve(recognize(workload.func, target).spec):
            if program.tree_key() not in known:
                known.add(program.tree_key())
                fresh.append((workload, program, lower_program(workload.func, program, target)))
    progress(f"synthesised {len(fresh)} new programs; building and timing them")
    libs = build_all([schedule for _, _, schedule in fresh], target)  # one worker pool for the whole round
    measured = []
    for workload in workloads:
        mine = [(program, lib) for (w, program, _), lib in zip(fresh, libs) if w is workload]
        if mine:
            seconds = time_built(workload, [lib for _, lib in mine], [p for p, _ in mine],
                                 rounds=ROUNDS, min_seconds=MIN_SECONDS)
            measured += [(workload, program, t) for (program, _), t in zip(mine, seconds)]
    return measured


def measure_rounds(target: CpuTarget, *, top_k: int = 8, rounds: int = 2, progress: Callable[[str], None] = print,
                   after_round: Callable[[list], None] | None = None) -> list[Measured]:
    """``rounds`` rounds of the DP's top-k on the calibration workloads, measured here (``target`` must be the
    host, or an ISA the host runs when fitting a shipped default); each round uses the previous round's fit.
    ``after_round`` gets everything measured so far after each round."""
    if rounds < 1:
        raise ValueError(f"rounds={rounds}: need at least one round")
    workloads = [make() for make in WORKLOADS]
    constants = target.constants
    measured: list[Measured] = []
    known: set = set()
    for round_index in range(rounds):
        start = time.perf_counter()
        measured += measure_programs(target, constants, workloads, top_k, known, progress)
        constants = fit_features([program_features(p, target) for _, p, _ in measured], [s for _, _, s in measured],
                                 shipped_constants(target.isa), groups=[w.name for w, _, _ in measured])
        progress(f"round {round_index + 1}: {len(measured)} programs in all, {time.perf_counter() - start:.0f} s")
        if after_round is not None:
            after_round(measured)
    return measured


def as_samples(measured: Sequence[Measured], target: CpuTarget) -> list[Sample]:
    return [Sample.of(w.name, p, s, target, "calibrate") for w, p, s in measured]


def ranking_quality(measured: Sequence[Measured], before, after, target: CpuTarget) -> list[WorkloadQuality]:
    """Per workload, how well ``before`` and ``after`` constants pick among its measured programs."""
    quality = []
    for name in dict.fromkeys(w.name for w, _, _ in measured):
        rows = [(w, p, s) for w, p, s in measured if w.name == name]
        programs, seconds = [p for _, p, _ in rows], [s for _, _, s in rows]
        quality.append(WorkloadQuality(name, len(rows), rows[0][0].flops / min(seconds) / 1e9,
                                       top1_slowdown(programs, seconds, before, target),
                                       top1_slowdown(programs, seconds, after, target)))
    return quality


def calibrate_host(target: CpuTarget, *, top_k: int = 8, rounds: int = 2,
                   progress: Callable[[str], None] = print) -> tuple[StoredFit, list[WorkloadQuality]]:
    """Calibrate ``target`` (the host) from scratch and store the fit under its CPU identity. The fit is stored
    after every round, so an interrupted calibration keeps its finished rounds."""
    stored: list[StoredFit] = []

    def store(measured):
        stored.append(refit(target.identity, target.isa, as_samples(measured, target), "calibrate",
                            replace_stored=True))

    measured = measure_rounds(target, top_k=top_k, rounds=rounds, progress=progress, after_round=store)
    return stored[-1], ranking_quality(measured, target.constants, stored[-1].constants, target)


def quality_table(quality: Sequence[WorkloadQuality]) -> str:
    rows = ["| workload | programs | best GFLOP/s | top-1 slowdown, previous constants | top-1 slowdown, fitted |",
            "|---|---|---|---|---|"]
    rows += [f"| {q.workload} | {q.programs} | {q.best_gflops:.1f} | {q.top1_slowdown_before:.2f}x | "
             f"{q.top1_slowdown_after:.2f}x |" for q in quality]
    return "\n".join(rows)
