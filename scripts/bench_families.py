"""Whole models beyond BERT (issue 15: the users' own models) -> benchmarks/families[_quick].{json,md}.

One decoder layer of GPT-2 small (768 hidden, 12 heads, 3072 FFN) and one of a TinyLlama-sized Llama (2048
hidden, 32 heads, 5632 FFN), from ``tvm_morello.example_models`` (the operators their exporters write: GPT-2's
LayerNorm written out, fused QKV and Split, a Where mask and a tanh GELU with Pow; Llama's RMSNorm, SiLU gate and
bias-free projections), random weights, dynamic ``batch`` and ``seq``, compiled by ``compile_model`` for batch
1..4 and seq 1..128. Timed exactly as ``bench_model`` times BERT (its worker: each runtime in a process of its
own, chunks of points interleaved, several rounds, a point keeping its fastest) against ONNX Runtime, OpenVINO
and, at a few points, TVM's default build; outputs compared with ONNX Runtime's.

    python scripts/bench_families.py            # both families, batch 1 and 4, T from 1 to 128
    python scripts/bench_families.py --quick    # 256-hidden layers, a few points: checks the script works
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_model import ANCHORS, RUNTIMES, TVM_DEFAULT_POINTS, compile_ours, measure_model  # noqa: E402
from benchlib import geomean, machine_info, markdown_table, target, targets_table, write_results  # noqa: E402

FAMILIES = {"gpt2": ("gpt2_block_onnx", {"hidden": 768, "heads": 12, "ffn": 3072}),
            "llama": ("llama_block_onnx", {"hidden": 2048, "heads": 32, "ffn": 5632})}
QUICK_SIZES = {"hidden": 256, "heads": 4, "ffn": 1024}
POINTS = [(1, t) for t in (1, 2, 4, 8, 16, 32, 64, 128)] + [(4, t) for t in (1, 16, 64, 128)]
QUICK_POINTS = [(1, 1), (1, 16), (2, 7), (2, 32)]


def measure(args) -> dict:
    import onnx

    from tvm_morello import example_models

    work = Path(args.work_dir or tempfile.mkdtemp(prefix="bench_families_"))
    work.mkdir(parents=True, exist_ok=True)
    ranges = {"batch": (1, 2), "seq": (1, 32)} if args.quick else {"batch": (1, 4), "seq": (1, 128)}
    points = QUICK_POINTS if args.quick else POINTS
    rounds = args.rounds or (1 if args.quick else 3)
    rows, compile_seconds, errors, sizes = [], {}, {}, {}
    for family, (builder, size) in FAMILIES.items():
        size = QUICK_SIZES if args.quick else size
        sizes[family] = size
        model, library = work / f"{family}.onnx", work / f"{family}.so"
        onnx.save(getattr(example_models, builder)(layers=1, **size), str(model))
        print(f"compiling one {family} layer ({size}) over {ranges} ...", flush=True)
        compile_seconds[family] = compile_ours(model, ranges, library, work / f"records_{family}")
        checks = [points[0], points[-1]]
        family_rows, errors[family] = measure_model(1, model, library, points, checks, work, args.seconds,
                                                    size["hidden"], rounds, args.chunk)
        rows += [{"family": family, **row} for row in family_rows]
    return {"machine": machine_info(), "quick": args.quick, "ranges": ranges, "rounds": rounds, "chunk": args.chunk,
            "sizes": sizes, "compile_seconds": compile_seconds, "max_abs_error_vs_onnxruntime": errors, "rows": rows}


def report(result: dict) -> None:
    rows, quick, machine = result["rows"], result["quick"], result["machine"]
    speedups = [r["speedup"] for r in rows if r["speedup"]]
    top = max(s for _, s in TVM_DEFAULT_POINTS)
    at_top = [r["vs_tvm_default"] for r in rows if r["vs_tvm_default"] and r["seq"] == top]
    targets = [target("worst point vs the faster of ONNX Runtime and OpenVINO (issue 15's goal, other families)",
                      min(speedups) if speedups else None, 1.1, "x"),
               target("geomean vs the faster of ONNX Runtime and OpenVINO (issue 15's goal, other families)",
                      geomean(speedups), 1.25, "x"),
               target(f"worst family vs TVM's default build at T={top}, batch 1", min(at_top) if at_top else None,
                      100, "x")]
    families = [{"family": f, "size": ", ".join(f"{k} {v}" for k, v in result["sizes"][f].items()),
                 "compile_s": result["compile_seconds"][f],
                 "geomean": geomean([r["speedup"] for r in rows if r["family"] == f and r["speedup"]]),
                 "worst": min((r["speedup"] for r in rows if r["family"] == f and r["speedup"]), default=None),
                 "error": result["max_abs_error_vs_onnxruntime"][f].get("tvm-morello")} for f in result["sizes"]]
    name = "families_quick" if quick else "families"
    markdown = "\n\n".join([
        f"# Whole models beyond BERT: GPT-2 and Llama layers from ONNX{' (quick)' if quick else ''}",
        f"Machine: {machine['cpu']}: {machine['target']}. Cost constants: {machine['cost_constants']}. One layer of "
        "each family (tvm_morello.example_models, random weights), compiled for "
        f"{', '.join(f'{k} {lo}..{hi}' for k, (lo, hi) in result['ranges'].items())}, timed as bench_model times "
        f"BERT: each runtime in its own process, chunks of {result['chunk']} points interleaved, {result['rounds']} "
        "round(s), a point keeping its fastest; numpy inputs and outputs for every runtime; ONNX Runtime with "
        f"{machine['cores']} intra-op threads, OpenVINO CPU f32 latency hint, TVM's default build at a few points.",
        "## Targets", targets_table(targets),
        "## Per family",
        markdown_table(families, [("family", "family", ""), ("size", "layer", ""),
                                  ("compile_s", "compile s (tuning included)", ".0f"),
                                  ("geomean", "geomean best anchor / ours", ".2f"), ("worst", "worst", ".2f"),
                                  ("error", "max abs error vs ONNX Runtime", ".2g")]),
        "## Latency",
        markdown_table(rows, [("family", "family", ""), ("batch", "batch", ""), ("seq", "T", "")]
                       + [(rt, f"{rt} ms", ".3g") for rt in RUNTIMES]
                       + [("speedup", "best anchor / ours", ".2f"), ("vs_tvm_default", "TVM default / ours", ".0f")])])
    write_results(name, {**result, "targets": targets, "families": families, "anchors": list(ANCHORS)}, markdown)
    print(targets_table(targets))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--work-dir", default=None, help="models, libraries and records (default: a temporary one)")
    parser.add_argument("--from-json", default=None, metavar="JSON",
                        help="write the report again from an earlier run's families[_quick].json, measuring nothing")
    parser.add_argument("--seconds", type=float, default=0.3)
    parser.add_argument("--rounds", type=int, default=None, help="passes over every point (default 3, quick 1)")
    parser.add_argument("--chunk", type=int, default=12, help="points each runtime times per turn")
    args = parser.parse_args()
    report(json.loads(Path(args.from_json).read_text()) if args.from_json else measure(args))


if __name__ == "__main__":
    main()
