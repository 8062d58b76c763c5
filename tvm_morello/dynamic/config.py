"""The dynamic tuner's budgets and knobs."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TuningConfig:
    """Budgets and knobs of the joint tuning.

    Parameters
    ----------
    max_candidates : micro-kernels measured per operator (an even spread of the candidates); None = all.
    candidate_source : "auto", "dp" or "hardware" (see ``candidate_microkernels``).
    shapes_per_kernel : concrete shapes each candidate is measured at (best-adapted shape first).
    throughput_keep : a parallel kernel is run at its best-adapted (largest, costliest) shape only if, at its
        screening runs, it reaches this fraction of the best kernel's normalised speed (``worth_throughput_runs``).
    max_shapes : tuning shapes per operator the cost model ranks kernels on.
    cap : most kernels one operator's library may contain. The greedy cover takes the kernels covering the
        most shape weight first, so at a tight cap the few smallest shapes (little weight, but the ones where
        a serial kernel saves the thread-pool launch) are the ones left on a slow kernel.
    top_k, tolerance : which kernels count as good for a shape in the set cover (10% let a kernel 5-10%
        slower on most attention shapes cover them alone).
    run_slack : with one symbolic variable, how much slower than its best chosen kernel (relative, plus one
        dispatcher branch) a shape's kernel may be so that it joins its neighbours' run (fewer branches).
    number, repeat, min_repeat_ms : the runner's evaluator settings. TVM raises ``number`` until a repeat lasts
        ``min_repeat_ms``, so short calls are timed as often as before with 1, and a long call (a 180 MB weight at
        m = 512: 0.2 s) runs 3 times instead of 9.
    serial_kernel : also measure serial (no parallel loop) kernels for tiny shapes.
    dot_kernels : also measure the dot-form kernels where B is an activation stored [n, k] (tiny ``A Bᵀ``).
    close_calls, close_margin : after the first plan, the ``close_calls`` heaviest groups of shapes where the plan's
        kernel and the best other candidate are predicted within ``close_margin`` of each other get both kernels
        run at the group's median shape until each has two runs there (in alternation), and the operator is
        planned again: one run slowed by a neighbour cannot settle a close call (``Ranking.contested``). The
        smallest shape's call, when close, is run so too, and the ``SMALL_END``-th smallest shape's, close or not;
        the calls the new plan contests are run in a second round (``tuner.CLOSE_CALL_ROUNDS``). 0 skips it.
    speed_points : shapes per operator at which the tuned library is timed against numpy before it is written
        (an operator that loses somewhere is planned again there, once); 0 skips the check.
    streamed_weight_bytes : the weights an operator's weight is read among, call after call (a model's matmul
        weights); the runs of prepacked-weight kernels go through copies of their weight spanning this many bytes,
        so they find it where the model leaves it (``KernelMeasurer``). 0: the operator's weight alone, called over
        and over. Measured (a 1-layer BERT-base's 28 MB, Zen 4): at m = 1 the 1-row tile streamed 0.98 of a plain
        read's speed, the 2-row tile 0.82; on one weight in cache both ran alike and the tuner kept the 2-row one.
    seed : seeds the booster, the tree and the verification inputs.
    """

    max_candidates: int | None = 8
    candidate_source: str = "auto"
    shapes_per_kernel: int = 3
    throughput_keep: float = 0.75
    max_shapes: int = 64
    cap: int = 6
    top_k: int = 1
    tolerance: float = 0.05
    run_slack: float = 0.03
    number: int = 1
    repeat: int = 3
    min_repeat_ms: int = 40
    serial_kernel: bool = True
    dot_kernels: bool = True
    close_calls: int = 3
    close_margin: float = 0.1
    speed_points: int = 12
    streamed_weight_bytes: int = 0
    seed: int = 0
