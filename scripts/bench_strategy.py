"""MorelloSearch vs meta-schedule's default EvolutionarySearch at equal trials -> benchmarks/strategy.{json,md}.

Each tune runs in its own process, with the same builder (tvm_morello's FastBuilder: one persistent build worker,
60 s timeout per candidate), the same LocalRunner,
the same batch size and only CPU tensor intrinsics registered for both; numpy is timed in a process of its
own. The 32-trial numbers are the first 32 trials of the 128-trial tune (same seed; a strategy's first
batches do not depend on its budget). After a workload's tunes, each strategy's best kernel at each trial count
and numpy are timed in turns in one judging process (``judge_worker``); speed ratios are medians over its rounds
of the ratio within a round (``paired_speedup``). Time to speed: the tuning time of MorelloSearch's first batch
whose best kernel, judged, runs at least as fast as the default's final one.

    python scripts/bench_strategy.py            # full run: 4 workloads x 2 strategies x 128 trials
    python scripts/bench_strategy.py --quick    # tiny shapes and budgets, to check the script works
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import geomean, machine_info  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
FULL_WORKLOADS = ["dense:128x768x768", "dense:128x3072x768", "dense:128x768x3072", "batch_matmul:12x128x64x128"]
QUICK_WORKLOADS = ["dense:32x64x64", "batch_matmul:2x32x32x32"]
STRATEGIES = ("morello", "evolutionary")
SPEEDUP_TARGET = 1.3
TIME_FRACTION_TARGET = 0.2
JUDGE_ROUNDS = 9  # turns of every tuned kernel and numpy after a workload's tunes


# ---- workloads ------------------------------------------------------------------------------------


def parse_workload(text: str) -> tuple[str, tuple[int, ...]]:
    """'dense:MxKxN' (Y = X Wᵀ, W[N, K]) or 'batch_matmul:BxMxKxN' (Z[b] = X[b] Y[b]ᵀ, Y[B, N, K])."""
    kind, dims = text.split(":")
    shape = tuple(int(d) for d in dims.split("x"))
    if (kind, len(shape)) not in (("dense", 3), ("batch_matmul", 4)):
        raise SystemExit(f"bad workload {text!r}: use dense:MxKxN or batch_matmul:BxMxKxN")
    return kind, shape


def flops(text: str) -> float:
    kind, shape = parse_workload(text)
    return 2.0 * math.prod(shape)


def input_shapes(text: str) -> list[tuple[int, ...]]:
    kind, shape = parse_workload(text)
    if kind == "dense":
        m, k, n = shape
        return [(m, k), (n, k)]
    b, m, k, n = shape
    return [(b, m, k), (b, n, k)]


def output_shape(text: str) -> tuple[int, ...]:
    kind, shape = parse_workload(text)
    return (shape[0], shape[2]) if kind == "dense" else (shape[0], shape[1], shape[3])


def numpy_reference(text: str, inputs):
    import numpy as np

    kind, _ = parse_workload(text)
    x, w = inputs
    return x @ w.T if kind == "dense" else np.matmul(x, w.transpose(0, 2, 1))


def random_inputs(text: str) -> list:
    """The operands every worker times and checks with (seeded: the same in every process)."""
    import numpy as np

    rng = np.random.default_rng(0)
    return [rng.standard_normal(s, dtype="float32") for s in input_shapes(text)]


def kernel_args(text: str, inputs, dev) -> list:
    """TVM tensors of ``inputs`` and a zeroed output."""
    import numpy as np
    import tvm

    return [tvm.runtime.tensor(x, dev) for x in inputs] + [tvm.runtime.tensor(np.zeros(output_shape(text), "float32"), dev)]


def runs_correctly(lib, args, expected) -> bool:
    """Call a compiled kernel once and compare its output (the last argument) with numpy's."""
    import numpy as np

    lib["main"](*args)
    return bool(np.allclose(args[-1].numpy(), expected, rtol=1e-3, atol=1e-3))


def prim_func(text: str):
    from tvm import te

    kind, shape = parse_workload(text)
    x_shape, w_shape = input_shapes(text)
    x = te.placeholder(x_shape, name="X")
    w = te.placeholder(w_shape, name="W")
    k = te.reduce_axis((0, x_shape[-1]), name="k")
    if kind == "dense":
        y = te.compute(output_shape(text), lambda i, j: te.sum(x[i, k] * w[j, k], axis=k), name="Y")
    else:
        y = te.compute(output_shape(text), lambda b, i, j: te.sum(x[b, i, k] * w[b, j, k], axis=k), name="Y")
    return te.create_prim_func([x, w, y])


# ---- worker: one tune -----------------------------------------------------------------------------


def tune_worker(workload: str, strategy_name: str, checkpoints: list[int], per_iter: int, seed: int,
                save_modules: str) -> dict:
    """Tune, timestamping every trial, and write the best scheduled module at each checkpoint to the folder
    ``save_modules`` (``<strategy>_<trials>.json``) for ``judge_worker``."""
    import tvm_morello  # noqa: F401  (before tvm: sets TVM_NUM_THREADS)

    from tvm.ir.utils import derived_object
    from tvm.s_tir import meta_schedule as ms

    from tvm_morello.target import resolve_target
    from tvm_morello.tune import MorelloSearch, cpu_tensor_intrinsics_only, fast_builder
    from tvm_morello.measure.records import median_seconds

    trials: list[dict] = []
    best: dict[int, object] = {}  # checkpoint -> best schedule among that many first trials
    start = time.perf_counter()

    @derived_object
    class Progress(ms.measure_callback.PyMeasureCallback):
        """Timestamps every measured trial and keeps the best schedule at each checkpoint."""

        def __init__(self):
            self.best_seconds, self.best_sch = math.inf, None

        def apply(self, task_scheduler, task_id, measure_candidates, builder_results, runner_results):
            now = time.perf_counter() - start
            for candidate, result in zip(measure_candidates, runner_results):
                seconds = median_seconds(result)
                trials.append({"trial": len(trials) + 1, "wall_s": now, "seconds": seconds})
                if seconds is not None and seconds < self.best_seconds:
                    self.best_seconds, self.best_sch = seconds, candidate.sch
                if len(trials) in checkpoints:
                    best[len(trials)] = self.best_sch

    func = prim_func(workload)
    target = resolve_target(None).tvm_target()
    strategy = MorelloSearch() if strategy_name == "morello" else ms.search_strategy.EvolutionarySearch()
    progress = Progress()
    with tempfile.TemporaryDirectory() as work_dir, cpu_tensor_intrinsics_only():
        ms.tune_tir(
            func,
            target,
            work_dir,
            max_trials_global=max(checkpoints),
            num_trials_per_iter=per_iter,
            # A timeout per candidate (an EvolutionarySearch candidate once kept LLVM busy for 10+ minutes);
            # same builder for both strategies.
            builder=fast_builder(timeout_s=60),
            runner=ms.runner.LocalRunner(),
            strategy=strategy,
            measure_callbacks=list(ms.measure_callback.MeasureCallback.create("default")) + [progress],
            num_tuning_cores=1,
            seed=seed,
        )
    for n in checkpoints:  # a strategy that stopped early keeps its final best for the later checkpoints
        best.setdefault(n, progress.best_sch)
    import tvm

    for n, sch in best.items():
        if sch is not None:
            (Path(save_modules) / f"{strategy_name}_{n}.json").write_text(tvm.ir.save_json(sch.mod))
    return {"trials": trials}


# ---- worker: judge tuned kernels side by side ------------------------------------------------------


def judge_worker(workload: str, modules_dir: str, rounds: int, probe: bool) -> dict:
    """Time every scheduled module in ``modules_dir`` (from ``tune_worker``), numpy (in a persistent process of
    its own, ``NumpyTimer``) and, with ``probe`` (a dense GEMV), the read-bandwidth probe over the weight
    (``roofline.row_sum_timer``), in turns over ``rounds`` rounds, the order rotating. This VM's DRAM bandwidth
    changed by 2x within minutes, so timings minutes apart compare the VM's moments; one round's timings are
    seconds apart, and ratios within a round compare the kernels (``paired_speedup``).

    Returns {label: {"seconds" (fastest round), "rounds" (each round's seconds, in order)[, "gflops",
    "correct"]}} with the labels ``numpy``, the modules' file names and ``probe`` (with "bytes_per_s" instead
    of "gflops")."""
    import tvm_morello  # noqa: F401  (before tvm: sets TVM_NUM_THREADS)

    import tvm

    from tvm_morello.measure.numpy_timer import NumpyTimer
    from tvm_morello.target import resolve_target

    target = resolve_target(None).tvm_target()
    dev = tvm.cpu()
    inputs = random_inputs(workload)
    expected = numpy_reference(workload, inputs)
    args = kernel_args(workload, inputs, dev)
    answer, timers = {}, {}
    for path in sorted(Path(modules_dir).glob("*.json")):
        lib = tvm.compile(tvm.ir.load_json(path.read_text()), target)
        answer[path.stem] = {"correct": runs_correctly(lib, args, expected)}
        evaluator = lib.mod.time_evaluator("main", dev, number=1, repeat=3, min_repeat_ms=50)
        timers[path.stem] = lambda evaluator=evaluator: min(evaluator(*args).results)
    if probe:
        from roofline import row_sum_timer

        _, (_, k, n) = parse_workload(workload)
        timers["probe"] = row_sum_timer(n, k)
    numpy_timer = NumpyTimer()
    timers["numpy"] = lambda: numpy_timer.time(inputs[0].shape, inputs[1].shape, transpose_b=True)
    rounds_seconds = {label: [] for label in timers}
    labels = list(timers)
    try:
        for r in range(rounds):
            for label in labels[r % len(labels):] + labels[: r % len(labels)]:
                rounds_seconds[label].append(timers[label]())
    finally:
        numpy_timer.close()
    for label, seconds in rounds_seconds.items():
        answer.setdefault(label, {}).update(seconds=min(seconds), rounds=seconds)
        if label == "probe":
            answer[label]["bytes_per_s"] = inputs[1].nbytes / min(seconds)
        else:
            answer[label]["gflops"] = flops(workload) / min(seconds) / 1e9
    return answer


def paired_speedup(slower_rounds: list[float], faster_rounds: list[float]) -> float:
    """How many times faster the second of two ``judge_worker`` labels is: the median over rounds of the ratio
    of their seconds in the same round (a fast or slow spell of the VM moves both sides of a ratio)."""
    import numpy as np

    return float(np.median([a / b for a, b in zip(slower_rounds, faster_rounds, strict=True)]))


# ---- driver ---------------------------------------------------------------------------------------


def run_worker(args: list[str]) -> dict:
    """Run this script as a worker in a fresh process and return its JSON answer."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as out:
        path = out.name
    try:
        subprocess.run([sys.executable, __file__, "--worker-out", path, *args], check=True, cwd=REPO)
        return json.loads(Path(path).read_text())
    finally:
        os.unlink(path)


def summarize(workload: str, strategy: str, result: dict, checkpoints: list[int], judged: dict) -> list[dict]:
    """One row per checkpoint: the tune's progress and, from ``judged`` (``judge_worker``'s answer), the best
    kernel's speed, its ratio to numpy and, for MorelloSearch, to the default search."""
    trials = result["trials"]
    fl = flops(workload)
    speeds = [fl / t["seconds"] / 1e9 if t["seconds"] else 0.0 for t in trials]
    rows = []
    for n in checkpoints:
        window = speeds[:n]
        final = max(window, default=0.0)
        reach = next((i + 1 for i, _ in enumerate(window) if max(window[: i + 1]) >= 0.9 * final), None)
        row = {
            "workload": workload,
            "strategy": strategy,
            "max_trials": n,
            "trials_measured": len(window),
            "tuning_best_gflops": final,
            "tuning_wall_s": trials[min(n, len(trials)) - 1]["wall_s"] if trials else None,
            "trials_to_90pct": reach,
        }
        kernel = judged.get(f"{strategy}_{n}")
        if kernel is not None:
            numpy, default = judged["numpy"], judged.get(f"evolutionary_{n}")
            row.update(gflops=kernel["gflops"], correct=kernel["correct"], numpy_gflops=numpy["gflops"],
                       vs_numpy=paired_speedup(numpy["rounds"], kernel["rounds"]))
            if strategy == "morello" and default is not None:
                row["vs_default"] = paired_speedup(default["rounds"], kernel["rounds"])
        rows.append(row)
    return rows


def reach_row(workload: str, curves: dict, judged: dict, batches: list[int], trials: int) -> dict:
    """When MorelloSearch's best kernel first ran at least as fast as the default's final one, against the
    default's tuning time. Both kernels are judged (timed in turns after the tunes), MorelloSearch's best after
    each of its batches: a fastest tuning-time measurement of 128 noisy ones overstates the default's speed."""
    default = curves["evolutionary"]
    final = judged.get(f"evolutionary_{trials}")
    reached = None
    for n in batches:
        if n > len(curves["morello"]):  # the tune stopped early
            break
        kernel = judged.get(f"morello_{n}")
        if final is not None and kernel is not None and paired_speedup(final["rounds"], kernel["rounds"]) >= 1.0:
            reached = curves["morello"][n - 1]["wall_s"]
            break
    default_wall = default[-1]["wall_s"] if default else None
    return {"workload": workload, "default_gflops": final["gflops"] if final else None, "default_wall_s": default_wall,
            "morello_time_to_reach_s": reached,
            "fraction": reached / default_wall if reached is not None and default_wall else None}


def targets(rows: list[dict], reach: list[dict], checkpoints: list[int]) -> list[dict]:
    out = []
    for n in checkpoints:
        ratios = [r.get("vs_default", 0.0) for r in rows if r["strategy"] == "morello" and r["max_trials"] == n]
        value = geomean(ratios)
        out.append({
            "name": f"geomean kernel speed vs default EvolutionarySearch at {n} trials",
            "value": value, "target": SPEEDUP_TARGET, "higher_is_better": True,
            "met": value >= SPEEDUP_TARGET, "unit": "x",
        })
    fractions = [r["fraction"] for r in reach]
    worst = None if not fractions or None in fractions else max(fractions)
    out.append({
        "name": f"time to the default's {max(checkpoints)}-trial speed / the default's wall time (worst workload)",
        "value": worst, "target": TIME_FRACTION_TARGET, "higher_is_better": False,
        "met": worst is not None and worst <= TIME_FRACTION_TARGET, "unit": "fraction",
        "note": "null when MorelloSearch never reached the default's speed on some workload (see 'reach')",
    })
    return out


def _fmt(value, spec: str = ".1f") -> str:
    return "n/a" if value is None else format(value, spec)


def write_markdown(path: Path, report: dict) -> None:
    machine, config = report["machine"], report["config"]
    lines = [
        f"# MorelloSearch vs EvolutionarySearch ({'quick' if config['quick'] else 'full'} run)",
        "",
        f"Machine: {machine['cpu']}: {machine['target']}, TVM {machine['versions']['tvm']}. Batch size "
        f"{config['num_trials_per_iter']}, the same FastBuilder (persistent build worker, 60 s timeout) and LocalRunner for both strategies. "
        f"After a workload's tunes, each best kernel and numpy (a process of its own) timed in turns, {config['judge_rounds']} "
        "rounds: GFLOP/s is each one's fastest round, a ratio the median over rounds of the ratio within a round.",
        "",
        "## Targets",
        "",
        "| target | value | goal | met |",
        "|---|---|---|---|",
    ]
    for t in report["targets"]:
        goal = f"{'>=' if t['higher_is_better'] else '<='} {t['target']}"
        met = "yes" if t["met"] else "no"
        lines.append(f"| {t['name']} | {_fmt(t['value'], '.3g')} {t['unit']} | {goal} | {met} |")
    lines += [
        "",
        "## Runs",
        "",
        "| workload | strategy | trials | GFLOP/s | numpy GFLOP/s | / numpy | / default | tuning wall s | trials to 90% | correct |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["rows"]:
        lines.append(
            f"| {r['workload']} | {r['strategy']} | {r['max_trials']} | {_fmt(r.get('gflops'))} | "
            f"{_fmt(r.get('numpy_gflops'))} | {_fmt(r.get('vs_numpy'), '.2f')} | {_fmt(r.get('vs_default'), '.2f')} | "
            f"{_fmt(r['tuning_wall_s'])} | {r['trials_to_90pct']} | {r.get('correct')} |"
        )
    lines += [
        "",
        "## Time to the default's final speed",
        "",
        "| workload | default's final kernel GFLOP/s | default wall s | MorelloSearch's best as fast at s | fraction |",
        "|---|---|---|---|---|",
    ]
    for r in report["reach"]:
        lines.append(
            f"| {r['workload']} | {_fmt(r['default_gflops'])} | {_fmt(r['default_wall_s'])} | "
            f"{_fmt(r['morello_time_to_reach_s'])} | {_fmt(r['fraction'], '.3f')} |"
        )
    path.write_text("\n".join(lines) + "\n")


def keep_calibration_as_it_is() -> None:
    """Point this run's processes at a private copy of the stored calibrations: MorelloSearch refits the stored
    calibration of its CPU after every tune, which would change the cost constants under later workloads of this
    run and under every later benchmark on this machine."""
    import shutil

    from tvm_morello.cost.store import CACHE_DIR_ENV, cache_dir

    private = Path(tempfile.mkdtemp(prefix="bench_calibration_"))
    if (cache_dir() / "calibration").exists():
        shutil.copytree(cache_dir() / "calibration", private / "calibration")
    os.environ[CACHE_DIR_ENV] = str(private)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny shapes and budgets (a smoke test)")
    parser.add_argument("--out", default=None, help="output path without suffix (default benchmarks/strategy[_quick])")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--trials", default="32,128", help="comma-separated trial checkpoints of the full run")
    parser.add_argument("--worker-out", help=argparse.SUPPRESS)
    parser.add_argument("--worker", choices=("tune", "judge"), help=argparse.SUPPRESS)
    parser.add_argument("--workload", help=argparse.SUPPRESS)
    parser.add_argument("--strategy", choices=STRATEGIES, help=argparse.SUPPRESS)
    parser.add_argument("--checkpoints", help=argparse.SUPPRESS)
    parser.add_argument("--per-iter", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--save-modules", help=argparse.SUPPRESS)
    parser.add_argument("--modules", help=argparse.SUPPRESS)
    parser.add_argument("--rounds", type=int, default=JUDGE_ROUNDS, help=argparse.SUPPRESS)
    parser.add_argument("--probe", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker == "tune":
        checkpoints = [int(c) for c in args.checkpoints.split(",")]
        answer = tune_worker(args.workload, args.strategy, checkpoints, args.per_iter, args.seed, args.save_modules)
        Path(args.worker_out).write_text(json.dumps(answer))
        return
    if args.worker == "judge":
        Path(args.worker_out).write_text(json.dumps(judge_worker(args.workload, args.modules, args.rounds, args.probe)))
        return

    workloads = QUICK_WORKLOADS if args.quick else FULL_WORKLOADS
    checkpoints = [8, 16] if args.quick else [int(c) for c in args.trials.split(",")]
    per_iter = 8 if args.quick else 16
    out = Path(args.out) if args.out else REPO / "benchmarks" / ("strategy_quick" if args.quick else "strategy")
    out.parent.mkdir(parents=True, exist_ok=True)

    keep_calibration_as_it_is()
    rows, curves, reach = [], {}, []
    batches = list(range(per_iter, max(checkpoints) + 1, per_iter))  # MorelloSearch's best after each batch
    for workload in workloads:
        curves[workload], results = {}, {}
        with tempfile.TemporaryDirectory() as modules:
            for strategy in STRATEGIES:
                print(f"[bench_strategy] {workload} {strategy} ...", flush=True)
                kept = sorted(set(checkpoints) | set(batches if strategy == "morello" else []))
                results[strategy] = run_worker(["--worker", "tune", "--workload", workload, "--strategy", strategy,
                                                "--checkpoints", ",".join(map(str, kept)),
                                                "--per-iter", str(per_iter), "--seed", str(args.seed),
                                                "--save-modules", modules])
                curves[workload][strategy] = results[strategy]["trials"]
            print(f"[bench_strategy] {workload}: the tuned kernels and numpy in turns ...", flush=True)
            judged = run_worker(["--worker", "judge", "--workload", workload, "--modules", modules,
                                 "--rounds", str(JUDGE_ROUNDS)])
        for strategy in STRATEGIES:
            rows += summarize(workload, strategy, results[strategy], checkpoints, judged)
        reach.append(reach_row(workload, curves[workload], judged, batches, max(checkpoints)))
    report = {
        "machine": machine_info(),
        "config": {"quick": args.quick, "workloads": workloads, "checkpoints": checkpoints,
                   "num_trials_per_iter": per_iter, "seed": args.seed, "judge_rounds": JUDGE_ROUNDS},
        "targets": targets(rows, reach, checkpoints),
        "rows": rows,
        "reach": reach,
        "curves": curves,
    }
    out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    write_markdown(out.with_suffix(".md"), report)
    for t in report["targets"]:
        print(f"[bench_strategy] {t['name']}: {t['value']} (target {t['target']}, met={t['met']})")
    print(f"[bench_strategy] wrote {out.with_suffix('.json')} and {out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
