"""Fit the affine cost model's constants on this machine and save them as the package default.

Measures the DP's top-k programs on a few shapes (twice: the second round synthesises with the first
round's constants, so the fit sees the programs it would actually pick), fits the constants by
non-negative least squares, and reports how well each set of constants ranks the measured programs.

    python scripts/calibrate.py [--top-k 12] [--rounds 2] [--out tvm_morello/cost/calibrated.json]
"""
from __future__ import annotations

import argparse
import json

import tvm_morello  # noqa: F401  (threads before tvm)
import numpy as np
from scipy.stats import spearmanr

from tvm_morello.cost import CostConstants, fit_constants, program_cost
from tvm_morello.cost.constants import CALIBRATED_FILE
from tvm_morello.ops import batch_matmul, dense
from tvm_morello.synth import measure_candidates, synthesize_workload
from tvm_morello.target import detect_cpu

WORKLOADS = [
    lambda: dense(16, 768, 768),
    lambda: dense(128, 768, 768),
    lambda: dense(128, 3072, 768),
    lambda: dense(256, 512, 1024),
    lambda: batch_matmul(12, 128, 64, 128),
]


def ranking_quality(programs, seconds, constants, target):
    """Spearman rank correlation of modelled cost and measured time, and top-1 slowdown vs the best."""
    modelled = [program_cost(p, constants, target) for p in programs]
    rho = spearmanr(modelled, seconds).statistic if len(set(modelled)) > 1 else 0.0
    return float(rho), float(seconds[int(np.argmin(modelled))] / min(seconds))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--top-k", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", default=str(CALIBRATED_FILE))
    args = parser.parse_args()
    target = detect_cpu()
    constants = CostConstants()
    programs, seconds, groups = [], [], []
    for round_index in range(args.rounds):
        for make in WORKLOADS:
            workload = make()
            report = synthesize_workload(workload, target, top_k=args.top_k, constants=constants)
            measure_candidates(report, target)
            times = [workload.flops / g / 1e9 for g in report.gflops]
            known = {p.render() for p in programs}
            for candidate, t in zip(report.candidates, times):
                if candidate.program.render() not in known:
                    programs.append(candidate.program)
                    seconds.append(t)
                    groups.append(workload.name)
            print(f"round {round_index}: {workload.name}: best {max(report.gflops):.1f} GFLOP/s, "
                  f"top-1 {report.gflops[0]:.1f}", flush=True)
        constants = fit_constants(programs, seconds, target, prior=constants)
    rows = []
    for name in dict.fromkeys(groups):
        members = [i for i, g in enumerate(groups) if g == name]
        group_programs, group_seconds = [programs[i] for i in members], [seconds[i] for i in members]
        before = ranking_quality(group_programs, group_seconds, CostConstants(), target)
        after = ranking_quality(group_programs, group_seconds, constants, target)
        rows.append({"workload": name, "programs": len(members), "spearman_hand": before[0],
                     "top1_slowdown_hand": before[1], "spearman_fitted": after[0], "top1_slowdown_fitted": after[1]})
        print(f"{name}: {len(members)} programs; spearman hand {before[0]:.2f} -> fitted {after[0]:.2f}; "
              f"top-1 slowdown hand {before[1]:.2f}x -> fitted {after[1]:.2f}x")
    constants.save(args.out)
    print(json.dumps(rows, indent=1))
    print(f"saved {args.out}: {constants}")


if __name__ == "__main__":
    main()
