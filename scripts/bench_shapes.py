"""Other models' matmuls (issue 14) -> benchmarks/shapes.{json,md,png}.

Static part: shapes from the published configurations of decoder LLMs (prefill and decode), encoder and vision
transformers and speech models, none of them BERT-base's. For each: MorelloSearch and meta-schedule's default
EvolutionarySearch at equal trials (32 and 64; the same FastBuilder, LocalRunner and batch size, each tune in its
own process, via bench_strategy's workers), numpy (in its own process), tuning wall time; decode GEMVs also against
the read bandwidth of their weights' footprint (a parallel vectorised row sum over the same bytes, built by TVM).
The tuned kernels (each strategy's best at each trial count), numpy and that probe are timed in turns in one
judging process after the tunes (``bench_strategy.judge_worker``), and every ratio is the median over rounds of the
ratio within a round: this VM's memory bandwidth changes by 2x within minutes, and timings minutes apart (or the
fastest of each side, caught in different spells) compared its moments rather than the kernels.

Dynamic part: dense operators of those models tuned over m = 1..512 with the CLI's defaults (``tune_and_export``),
every m of the sweep timed against numpy (in a persistent process of its own: ``tvm_morello.measure.numpy_timer``).

    python scripts/bench_shapes.py            # full run (static part 100 minutes, dynamic an hour, on 2 Zen 4 cores)
    python scripts/bench_shapes.py --quick    # a few shapes, 16 trials, a sparse sweep: checks the script works
    python scripts/bench_shapes.py --part dynamic   # one part only (the dynamic part: about an hour)

Until it finishes, what it has measured is in ``benchmarks/shapes[_quick].partial.json`` (rewritten after every
static shape and dynamic operator), so an interrupted run loses nothing it measured: ``--resume`` continues it
(on the same CPU and versions only; the full run is longer than a working session), ``--from-partial`` writes the
report of such a run from it, saying what is missing, and ``--resume --redo W1,W2`` measures those static workloads
again (a fix to check) keeping the other rows; each row says the day it was measured.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_strategy  # noqa: E402
from bench_dynamic import time_library  # noqa: E402
from bench_strategy import paired_speedup  # noqa: E402
from benchlib import code_version, geomean, machine_info, markdown_table, target, targets_table, write_results  # noqa: E402

# (model family, what the matmul is, workload); dense:MxKxN is Y = X Wᵀ with W[N, K]; batch_matmul:BxMxKxN is
# Z[b] = X[b] Y[b]ᵀ with Y[B, N, K]. Sources: the models' config.json on the Hugging Face hub.
STATIC_SHAPES = [
    ("llama-2-7b", "decode q/k/v/o", "dense:1x4096x4096"),
    ("llama-2-7b", "decode ffn up", "dense:1x4096x11008"),
    ("llama-2-7b", "decode ffn down", "dense:1x11008x4096"),
    ("llama-2-7b", "prefill 37 tokens q/k/v/o", "dense:37x4096x4096"),
    ("llama-2-7b", "prefill 37 tokens ffn down", "dense:37x11008x4096"),
    ("llama-2-7b", "attention scores, 37 tokens", "batch_matmul:32x37x128x37"),
    ("mistral-7b", "decode k/v (8 kv heads)", "dense:1x4096x1024"),
    ("mistral-7b", "decode ffn up", "dense:1x4096x14336"),
    ("mistral-7b", "prefill 19 tokens k/v", "dense:19x4096x1024"),
    ("gpt-2", "decode qkv", "dense:1x768x2304"),
    ("gpt-2", "decode ffn up", "dense:1x768x3072"),
    ("gpt-2", "prefill 50 tokens ffn down", "dense:50x3072x768"),
    ("gpt-2", "attention scores, 50 tokens", "batch_matmul:12x50x64x50"),
    ("phi-2", "decode ffn up", "dense:1x2560x10240"),
    ("phi-2", "prefill 23 tokens qkv", "dense:23x2560x7680"),
    ("phi-2", "attention scores, 23 tokens", "batch_matmul:32x23x80x23"),
    ("vit-b-16", "qkv, 197 tokens", "dense:197x768x2304"),
    ("vit-b-16", "ffn up", "dense:197x768x3072"),
    ("vit-b-16", "ffn down", "dense:197x3072x768"),
    ("vit-b-16", "attention scores", "batch_matmul:12x197x64x197"),
    ("vit-l-16", "ffn up", "dense:197x1024x4096"),
    ("vit-l-16", "attention scores", "batch_matmul:16x197x64x197"),
    ("whisper-base", "encoder ffn up, 1500 frames", "dense:1500x512x2048"),
    ("whisper-base", "encoder ffn down", "dense:1500x2048x512"),
    ("whisper-base", "decoder step q", "dense:1x512x512"),
    ("whisper-base", "decoder cross-attention scores", "batch_matmul:8x1x64x1500"),
    ("whisper-small", "encoder qkv proj", "dense:1500x768x768"),
    ("t5-small", "encoder ffn up, 31 tokens", "dense:31x512x2048"),
    ("t5-small", "encoder ffn down", "dense:31x2048x512"),
    ("t5-small", "attention scores", "batch_matmul:8x31x64x31"),
    ("distilgpt2", "decode lm head slice", "dense:1x768x8192"),
    ("stable-diffusion-unet", "cross-attention scores, 77 tokens", "batch_matmul:8x256x40x77"),
]
QUICK_STATIC = [STATIC_SHAPES[i] for i in (0, 6, 12, 16, 25)]
# dense operators of those models over m = 1..512 (the weight is the constant): (model, what, K, N), smallest
# weight first: Llama-2's 180 MB weight takes over an hour of sweep alone, so an interrupted run keeps the others
DYNAMIC_DENSE = [
    ("whisper-base", "ffn down", 2048, 512),
    ("gpt-2", "ffn up", 768, 3072),
    ("mistral-7b", "k/v proj", 4096, 1024),
    ("llama-2-7b", "ffn down", 11008, 4096),
]
M_RANGE = (1, 512)
JUDGE_ROUNDS = bench_strategy.JUDGE_ROUNDS  # turns of every tuned kernel, numpy and the bandwidth probe
JUDGING = "ratios within rounds"  # how static timings are compared: a partial run judged otherwise starts afresh
SWEEPS = 2  # passes over the dynamic sweep; each point keeps its fastest time on either side

STATIC_TARGETS = {"geomean_vs_numpy": 1.25, "geomean_vs_default": 1.3, "min_vs_numpy": 0.9, "min_vs_default": 1.0,
                  "gemv_bandwidth": 0.85}
DYNAMIC_TARGETS = {"geomean_vs_numpy": 1.3, "min_vs_numpy": 0.9, "tuning_s": 60.0}


def is_gemv(workload: str) -> bool:
    kind, shape = bench_strategy.parse_workload(workload)
    return kind == "dense" and shape[0] == 1


# ---- static part -------------------------------------------------------------------------------------------------


def run_static(shapes, checkpoints: list[int], per_iter: int, save=lambda rows: None, done=()) -> list[dict]:
    """Tune and time every shape not in ``done`` (rows of an earlier part of the run, kept); ``save`` gets the
    rows after each one (a long run interrupted keeps them)."""
    rows = list(done)
    measured = {row["workload"] for row in rows}
    order = {workload: i for i, (_, _, workload) in enumerate(shapes)}
    for family, what, workload in shapes:
        if workload in measured:
            continue
        entry = {"family": family, "what": what, "workload": workload, "measured_on": time.strftime("%Y-%m-%d"),
                 "code": code_version()}
        results = {}
        with tempfile.TemporaryDirectory() as modules:
            for strategy in bench_strategy.STRATEGIES:
                print(f"[bench_shapes] {workload} ({family} {what}) {strategy} ...", flush=True)
                results[strategy] = bench_strategy.run_worker([
                    "--worker", "tune", "--workload", workload, "--strategy", strategy,
                    "--checkpoints", ",".join(map(str, checkpoints)), "--per-iter", str(per_iter), "--seed", "0",
                    "--save-modules", modules])
            print(f"[bench_shapes] {workload}: the tuned kernels and numpy in turns ...", flush=True)
            judged = bench_strategy.run_worker(["--worker", "judge", "--workload", workload, "--modules", modules,
                                                "--rounds", str(JUDGE_ROUNDS), *(["--probe"] if is_gemv(workload) else [])])
        entry["numpy_gflops"] = judged["numpy"]["gflops"]
        for strategy, result in results.items():  # <strategy>_<trials>_<what bench_strategy's rows say>
            for row in bench_strategy.summarize(workload, strategy, result, checkpoints, judged):
                entry[f"{strategy}_{row['max_trials']}_wall_s"] = row["tuning_wall_s"]
                for key in ("gflops", "correct", "vs_numpy", "vs_default"):
                    if key in row:
                        entry[f"{strategy}_{row['max_trials']}_{key}"] = row[key]
        probe = judged.get("probe")
        if probe is not None:
            _, (_, k, n) = bench_strategy.parse_workload(workload)
            entry["weight_bytes"] = 4 * k * n
            entry["probe_bytes_per_s"] = probe["bytes_per_s"]
            entry["gemv_bandwidth_fraction"] = paired_speedup(probe["rounds"],
                                                              judged[f"morello_{max(checkpoints)}"]["rounds"])
        rows.append(entry)
        rows.sort(key=lambda row: order.get(row["workload"], len(order)))
        save(rows)
    return rows


def static_targets(rows: list[dict], trials: int) -> list[dict]:
    """The issue's static targets at ``trials``, from ratios of timings in the same judging round."""
    vs_numpy = [r[f"morello_{trials}_vs_numpy"] for r in rows]
    vs_default = [r[f"morello_{trials}_vs_default"] for r in rows if f"morello_{trials}_vs_default" in r]
    return [target(f"static, {trials} trials: geomean vs numpy", geomean(vs_numpy), STATIC_TARGETS["geomean_vs_numpy"], "x"),
            target(f"static, {trials} trials: worst shape vs numpy", min(vs_numpy), STATIC_TARGETS["min_vs_numpy"], "x"),
            target(f"static, {trials} trials: geomean vs the default search", geomean(vs_default),
                   STATIC_TARGETS["geomean_vs_default"], "x"),
            target(f"static, {trials} trials: worst shape vs the default search", min(vs_default, default=None),
                   STATIC_TARGETS["min_vs_default"], "x")]


def gemv_target(rows: list[dict], trials: int) -> list[dict]:
    """The decode GEMVs' bandwidth target: their kernels at ``trials`` against the read-bandwidth probe."""
    fractions = [r["gemv_bandwidth_fraction"] for r in rows if "gemv_bandwidth_fraction" in r]
    if not fractions:
        return []
    return [target(f"decode GEMVs, {trials} trials: worst fraction of the weights' read bandwidth", min(fractions),
                   STATIC_TARGETS["gemv_bandwidth"], "fraction")]


# ---- dynamic part ------------------------------------------------------------------------------------------------


def run_dynamic(operators, sweep: list[int], work: Path, save=lambda rows: None, done=()) -> list[dict]:
    from tvm_morello import dynamic as dyn
    from tvm_morello.library import load_library, tune_and_export
    from tvm_morello.measure.numpy_timer import NumpyTimer

    rows = list(done)
    measured = {(row["family"], row["what"]) for row in rows}
    numpy = NumpyTimer()
    try:
        for family, what, k, n in operators:
            if (family, what) in measured:
                continue
            name = f"{family.replace('-', '_')}_{what.replace(' ', '_').replace('/', '')}"
            workload = dyn.dense(n, k, M_RANGE, name=name)
            print(f"[bench_shapes] tune-dynamic {name}: k={k} n={n} m={M_RANGE[0]}..{M_RANGE[1]} ...", flush=True)
            start = time.perf_counter()
            tune_and_export([workload], work / f"{name}.so", work_dir=work / name, show_progress=False)
            tuning = time.perf_counter() - start
            vm, manifest = load_library(work / f"{name}.so")
            (operator,) = manifest["operators"]
            entries = SimpleNamespace(workload=workload, entry=operator["entry"], pack_entry=operator["pack_entry"])
            best: dict[int, list[float]] = {m: [math.inf, math.inf] for m in sweep}
            for _ in range(SWEEPS):  # a slow spell of the VM then spoils one pass's timing of a point, not all
                for m in sweep:
                    best[m][0] = min(best[m][0], time_library(vm, entries, {"m": m}))
                    best[m][1] = min(best[m][1], numpy.time_workload(workload, {"m": m}))
            points = [{"m": m, "seconds": ours, "numpy_seconds": theirs} for m, (ours, theirs) in best.items()]
            ratios = [p["numpy_seconds"] / p["seconds"] for p in points]
            rows.append({"family": family, "what": what, "k": k, "n": n, "tuning_s": tuning, "points": points,
                         "geomean_vs_numpy": geomean(ratios), "min_vs_numpy": min(ratios),
                         "worst_m": points[ratios.index(min(ratios))]["m"],
                         "kernels": [kernel["name"] for kernel in operator["kernels"]],
                         # what the tuner's own check against numpy saw (before and after re-planning)
                         "speed_check": operator["tuning"].get("speed_check"),
                         "speed_check_before_replan": operator["tuning"].get("speed_check_before_replan")})
            save(rows)
    finally:
        numpy.close()
    return rows


def dynamic_targets(rows: list[dict]) -> list[dict]:
    ratios = [p["numpy_seconds"] / p["seconds"] for r in rows for p in r["points"]]
    return [target("dynamic: geomean vs numpy over every swept m", geomean(ratios), DYNAMIC_TARGETS["geomean_vs_numpy"], "x"),
            target("dynamic: worst m vs numpy", min(ratios), DYNAMIC_TARGETS["min_vs_numpy"], "x"),
            target("dynamic: tuning seconds per operator (worst)", max(r["tuning_s"] for r in rows),
                   DYNAMIC_TARGETS["tuning_s"], "s", higher_is_better=False)]


# ---- report ------------------------------------------------------------------------------------------------------


def plot(static_rows: list[dict], dynamic_rows: list[dict], trials: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(14, 5))
    names = [r["workload"] for r in static_rows]
    left.barh(names, [r[f"morello_{trials}_vs_numpy"] for r in static_rows], label="MorelloSearch")
    left.barh(names, [r.get(f"evolutionary_{trials}_vs_numpy", 0.0) for r in static_rows], alpha=0.5,
              label="EvolutionarySearch")
    left.axvline(1.0, color="k", lw=0.8)
    left.set_xlabel(f"speed vs numpy, {trials} trials")
    left.tick_params(axis="y", labelsize=6)
    left.legend()
    for r in dynamic_rows:
        right.plot([p["m"] for p in r["points"]], [p["numpy_seconds"] / p["seconds"] for p in r["points"]],
                   label=f"{r['family']} {r['what']} ({r['k']}x{r['n']})")
    right.axhline(1.0, color="k", lw=0.8)
    right.set_xscale("log", base=2)
    right.set_xlabel("m")
    right.set_ylabel("speed vs numpy")
    if dynamic_rows:
        right.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--from-partial", action="store_true",
                        help="write the report of an interrupted run from its partial file (says what is missing)")
    parser.add_argument("--resume", action="store_true",
                        help="continue an interrupted run from its partial file (same CPU and versions only)")
    parser.add_argument("--redo", default="", metavar="WORKLOADS",
                        help="with --resume: comma-separated static workloads to measure again (the rest of the "
                             "partial file, or else of the finished report, is kept)")
    parser.add_argument("--part", choices=("both", "static", "dynamic"), default="both",
                        help="measure one part only (its own files: shapes_static.*, shapes_dynamic.*)")
    args = parser.parse_args()
    name = ("shapes_quick" if args.quick else "shapes") + ("" if args.part == "both" else f"_{args.part}")
    partial = Path(__file__).resolve().parent.parent / "benchmarks" / f"{name}.partial.json"
    shapes = [] if args.part == "dynamic" else QUICK_STATIC if args.quick else STATIC_SHAPES
    operators = [] if args.part == "static" else DYNAMIC_DENSE[:2] if args.quick else DYNAMIC_DENSE
    if args.from_partial:
        done = json.loads(partial.read_text())
        missing = (f"interrupted: {len(done['static'])} of {len(shapes)} static shapes and {len(done['dynamic'])} "
                   f"of {len(operators)} dynamic operators measured")
        report(name, args.quick, done["machine"], done["checkpoints"], done["static"], done["dynamic"], missing)
        return
    checkpoints = [8, 16] if args.quick else [32, 64]
    sweep = [1, 2, 3, 5, 8, 13, 31, 64, 100, 256, 512] if args.quick else list(range(M_RANGE[0], M_RANGE[1] + 1))
    machine = machine_info()
    bench_strategy.keep_calibration_as_it_is()
    done = {"machine": machine, "checkpoints": checkpoints, "judging": JUDGING, "static": [], "dynamic": []}
    finished = partial.with_name(f"{name}.json")
    earlier = partial if partial.exists() else finished if args.redo and finished.exists() else None
    if args.resume and earlier is not None:
        done = resumable(json.loads(earlier.read_text()), machine, checkpoints)
        redo = set(filter(None, args.redo.split(",")))
        done["static"] = [row for row in done["static"] if row["workload"] not in redo]

    def save(part):
        def write(rows):
            done[part] = rows
            partial.write_text(json.dumps(done, indent=1, default=str))
        return write

    static_rows = run_static(shapes, checkpoints, per_iter=8 if args.quick else 16, save=save("static"),
                             done=done["static"])
    with tempfile.TemporaryDirectory() as work:
        dynamic_rows = run_dynamic(operators, sweep, Path(work), save=save("dynamic"), done=done["dynamic"])
    report(name, args.quick, done["machine"], checkpoints, static_rows, dynamic_rows)
    partial.unlink(missing_ok=True)


def code_versions(rows: list[dict]) -> list[str]:
    """A paragraph naming which rows were measured with which commit, when a resumed run's rows differ."""
    versions: dict[str, list[str]] = {}
    for row in rows:
        versions.setdefault(row.get("code", "not recorded"), []).append(row["workload"])
    if len(versions) < 2:
        return []
    return ["Rows measured with different code (`--resume --redo`): " + "; ".join(
        f"{code}: {', '.join(workloads)}" for code, workloads in versions.items())]


def resumable(earlier: dict, machine: dict, checkpoints: list[int]) -> dict:
    """The partial run to continue: ``earlier`` if it ran on this CPU with these versions and trial counts, else
    a fresh start (timings of different machines do not mix)."""
    same = (earlier.get("checkpoints") == checkpoints and earlier.get("judging") == JUDGING
            and all(earlier["machine"].get(key) == machine[key] for key in ("identity", "cores", "versions")))
    if not same:
        print("[bench_shapes] the partial run was made on another CPU, versions, trial counts or judging method: "
              "starting afresh", flush=True)
        return {"machine": machine, "checkpoints": checkpoints, "judging": JUDGING, "static": [], "dynamic": []}
    print(f"[bench_shapes] resuming: {len(earlier['static'])} static shapes and {len(earlier['dynamic'])} dynamic "
          "operators already measured", flush=True)
    return earlier


def report(name: str, quick: bool, machine: dict, checkpoints: list[int], static_rows: list[dict],
           dynamic_rows: list[dict], missing: str = "") -> None:
    """benchmarks/<name>.{json,md,png} from the measured rows; ``missing`` says what an interrupted run lacks."""
    targets = [t for n in checkpoints for t in static_targets(static_rows, n)] if static_rows else []
    targets += gemv_target(static_rows, max(checkpoints))
    targets += dynamic_targets(dynamic_rows) if dynamic_rows else []
    result = {"machine": machine, "quick": quick, "checkpoints": checkpoints, "judging": JUDGING, "targets": targets,
              "static": static_rows, "dynamic": dynamic_rows, **({"interrupted": missing} if missing else {})}
    trials = max(checkpoints)
    static_columns = [("family", "model", ""), ("what", "matmul", ""), ("workload", "workload", ""),
                      ("numpy_gflops", "numpy GFLOP/s", ".1f")]
    for n in checkpoints:
        static_columns += [(f"morello_{n}_gflops", f"Morello {n}", ".1f"), (f"evolutionary_{n}_gflops", f"default {n}", ".1f"),
                           (f"morello_{n}_vs_numpy", f"Morello {n} / numpy", ".2f"),
                           (f"morello_{n}_vs_default", f"Morello {n} / default", ".2f"),
                           (f"morello_{n}_wall_s", f"Morello {n} s", ".0f"), (f"evolutionary_{n}_wall_s", f"default {n} s", ".0f")]
    static_columns.append(("gemv_bandwidth_fraction", "GEMV / read bandwidth", ".2f"))
    dynamic_columns = [("family", "model", ""), ("what", "matmul", ""), ("k", "K", ""), ("n", "N", ""),
                       ("tuning_s", "tuning s", ".1f"), ("geomean_vs_numpy", "geomean vs numpy", ".2f"),
                       ("min_vs_numpy", "worst vs numpy", ".2f"), ("worst_m", "at m", "")]
    kind = "quick" if quick else "full"
    markdown = "\n\n".join([
        f"# Other models' matmuls ({kind} run{', ' + missing if missing else ''})",
        f"Machine: {machine['cpu']}: {machine['target']}. Cost constants: {machine['cost_constants']}. Static tunes: "
        f"MorelloSearch and EvolutionarySearch, same FastBuilder, LocalRunner and batch size, each in its own "
        f"process; then each strategy's best kernel at each trial count, numpy (a process of its own) and, for decode "
        f"GEMVs, the read-bandwidth probe timed in turns in one judging process ({JUDGE_ROUNDS} rounds, the order "
        "rotating). GFLOP/s: each one's fastest round; ratios (\"/ numpy\", \"/ default\", GEMV / read bandwidth, the "
        "targets): the median over rounds of the ratio within a round (the VM's bandwidth drifts by 2x within "
        "minutes; within a round, seconds apart, it moves both sides). Dynamic: tune_and_export with the CLI's defaults over m = "
        f"{M_RANGE[0]}..{M_RANGE[1]}, numpy in a persistent process of its own.",
        "## Targets", targets_table(targets),
        "## Static shapes", *code_versions(static_rows),
        markdown_table(static_rows, static_columns) if static_rows else "(none measured)",
        "## Dynamic dense operators", markdown_table(dynamic_rows, dynamic_columns) if dynamic_rows else "(none measured)",
        f"![speed vs numpy]({name}.png)",
    ])
    json_path, md_path = write_results(name, result, markdown)
    plot(static_rows, dynamic_rows, trials, json_path.with_suffix(".png"))
    for t in targets:
        print(f"[bench_shapes] {t['name']}: {t['value']} (target {t['target']}, met={t['met']})")
    print(f"[bench_shapes] wrote {json_path} and {md_path}")


if __name__ == "__main__":
    main()
