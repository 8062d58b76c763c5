"""Fit the cost constants shipped for one vector ISA (``tvm_morello/cost/shipped/<isa>.json``), on this machine.

Users never need this: ``tvm-morello calibrate`` fits their own CPU and every run uses that fit. The shipped
fits serve CPUs nobody calibrated yet. ``--isa avx2`` on an AVX-512 host measures AVX2 code (``--mcpu``,
16 ymm registers) with this host's caches, which is how the AVX2 default can be fitted without an AVX2 machine.

    python scripts/calibrate.py --isa avx512 [--mcpu emeraldrapids] [--top-k 8] [--rounds 2]
"""
from __future__ import annotations

import argparse
import json
from datetime import date

import tvm_morello  # noqa: F401  (threads before tvm)

from tvm_morello.calibration import as_samples, measure_rounds, quality_table, ranking_quality
from tvm_morello.cost import fit_features, shipped_constants
from tvm_morello.cost.constants import SHIPPED_DIR
from tvm_morello.target import CpuTarget, detect_cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--isa", choices=["avx2", "avx512"], required=True)
    parser.add_argument("--mcpu", default=None, help="LLVM CPU the code is built for (default: the host's for its "
                                                     "own ISA, haswell for AVX2)")
    parser.add_argument("--top-k", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    host = detect_cpu()
    bits = 512 if args.isa == "avx512" else 256
    if bits > host.vector_bits:
        parser.error(f"this host ({host.describe()}) cannot run {args.isa} code")
    mcpu = args.mcpu or (host.mcpu if bits == host.vector_bits else "haswell")
    target = CpuTarget(mcpu, bits, host.cores, host.l1_bytes, host.l2_bytes, constants=shipped_constants(args.isa))
    print(f"fitting the shipped {args.isa} constants: {target.describe()}, measured on {host.describe()}")
    measured = measure_rounds(target, top_k=args.top_k, rounds=args.rounds)
    samples = as_samples(measured, target)
    constants = fit_features([s.features for s in samples], [s.seconds for s in samples], shipped_constants(args.isa),
                             groups=[s.workload for s in samples])
    print(quality_table(ranking_quality(measured, target.constants, constants, target)))
    path = SHIPPED_DIR / f"{args.isa}.json"
    doc = {"isa": args.isa, "fitted_on": f"{target.describe()} built for {mcpu}, measured on {host.describe()} "
                                         f"(scripts/calibrate.py, {date.today().isoformat()})",
           "constants": constants.as_dict()}
    path.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
