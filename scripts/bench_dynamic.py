"""Dynamic-shape benchmark: BERT-base matmuls over sequence length T, tvm-morello's dispatching library vs
meta-schedule tuned per shape and numpy (timed in a separate process).

Writes benchmarks/dynamic.json, benchmarks/dynamic.md and benchmarks/dynamic.png. The per-shape
meta-schedule runs (the long part) are kept in --work as they finish: an interrupted run picks up there.
Usage: python scripts/bench_dynamic.py [--quick] [--out benchmarks] [--work DIR]
"""
from __future__ import annotations

import argparse
import json
import math
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import geomean, machine_info  # noqa: E402

SWEEPS = 4  # passes over every (operator, T), each timing tvm-morello then numpy: a slow spell of the VM (calls
# at half speed for a second or so, a few per run) then spoils one pass's timing of a point, not all of them.
# A point's speed vs numpy is the ratio of each side's best time; the median over its alternations of the ratio
# within one is reported beside it: with 3 alternations it was the noisier of the two (Zen 4, 2026-12-07: 6
# points below 0.9x, the worst 0.61x, against 4 and 0.84x by best times; the same geomean)
SHORT_ALTERNATIONS = 4  # per pass, for calls under SHORT_CALL_S. Their spells are longer than an alternation:
# one 2 us attention call, timed 9 times over minutes beside numpy, read 1.43 us in some and 2.2 us in the rest,
# whether or not the machine had idled or the thread pool spun just before (Zen 4, 2026-12-07)
SHORT_CALL_S = 1e-4
MIN_TIMED_S = 0.02  # each timing repeats a call for at least this long


# ---------------------------------------------------------------- TVM side
def env_for(workload, t: int) -> dict:
    """BERT's T -> the workload's variables (dense: m = batch * T)."""
    name = workload.var_names[0]
    if name == "T":
        return {"T": t}
    scale = workload.range_of(name).hi // 128
    return {name: scale * t}


def static_prim_func(workload, env):
    """The per-shape PrimFunc meta-schedule tunes (B raw, as the user holds it)."""
    from tvm import te

    b, m, k, n = workload.dims(env)
    lead = (b,) if workload.batch else ()
    a = te.placeholder(lead + (m, k), name="A")
    bt = te.placeholder(lead + ((n, k) if workload.transpose_b else (k, n)), name="B")
    r = te.reduce_axis((0, k), "k")

    def body(*idx):
        bb, i, j = idx[:-2], idx[-2], idx[-1]
        rhs = bt[(*bb, j, r)] if workload.transpose_b else bt[(*bb, r, j)]
        return te.sum(a[(*bb, i, r)] * rhs, axis=r)

    out = te.compute(lead + (m, n), body, name="Y")
    return te.create_prim_func([a, bt, out]).with_attr("global_symbol", "main")


def time_tvm(fn, args, dev, *, name="main") -> float:
    evaluator = fn.time_evaluator(name, dev, number=1, repeat=1, min_repeat_ms=0)
    once = evaluator(*args).mean
    number = max(1, int(MIN_TIMED_S / max(once, 1e-7)))
    return min(fn.time_evaluator(name, dev, number=number, repeat=3)(*args).results)


def tune_meta_schedule(workload, env, trials: int, work_dir: Path) -> tuple[float, float]:
    """(tuning wall seconds, best kernel seconds) of meta-schedule on one static shape."""
    import numpy as np
    import tvm
    from tvm.s_tir import meta_schedule as ms

    import tvm_morello
    from tvm_morello.tune import fast_builder

    target = tvm_morello.resolve_target(None).tvm_target()
    mod = tvm.IRModule({"main": static_prim_func(workload, env)})
    start = time.perf_counter()
    db = ms.tune_tir(mod, target, str(work_dir), max_trials_global=trials, num_trials_per_iter=min(trials, 32),
                     builder=fast_builder(timeout_s=60))
    sch = ms.tir_integration.compile_tir(db, mod, target)
    tuning = time.perf_counter() - start
    fn = tvm.compile(sch.mod, target=target).jit()
    a_shape, b_shape = workload.input_shapes(env)
    rng = np.random.default_rng(0)
    args = [tvm.runtime.tensor(rng.standard_normal(s, dtype=np.float32)) for s in (a_shape, b_shape)]
    args.append(tvm.runtime.tensor(np.zeros(workload.output_shape(env), "float32")))
    return tuning, time_tvm(fn, args, tvm.cpu())


_LAST_B: dict = {}  # (vm, entry, B's shape) -> B as the entry takes it: a sweep over m makes and packs it once


def time_library(vm, plan, env) -> float:
    import numpy as np
    import tvm

    wl = plan.workload
    a_shape, b_shape = wl.input_shapes(env)
    rng = np.random.default_rng(0)
    a = tvm.runtime.tensor(rng.standard_normal(a_shape, dtype=np.float32))
    key = (id(vm), plan.entry, tuple(b_shape))
    if key not in _LAST_B:
        b = tvm.runtime.tensor(rng.standard_normal(b_shape, dtype=np.float32))
        if wl.constant_b:
            b = vm[plan.pack_entry](b)  # packed once, outside the timed call
        _LAST_B.clear()
        _LAST_B[key] = (vm, b)  # the vm is kept with it, so its id is not reused while the entry lives
    return time_tvm(vm, [a, _LAST_B[key][1]], tvm.cpu(), name=plan.entry)


def settings(quick: bool) -> dict:
    if quick:
        return {"batches": (16, 1), "ops": ("dense_qkv", "bmm_qk", "bmm_av"), "eval_t": (1, 5, 17, 24, 64, 100, 128),
                "ms_t": (24, 128), "ms_trials": 16,
                "config": dict(max_candidates=5, shapes_per_kernel=3, max_shapes=32)}
    return {"batches": (16, 1), "ops": ("dense_qkv", "dense_ffn1", "dense_ffn2", "bmm_qk", "bmm_av"),
            "eval_t": tuple(range(1, 129)), "ms_t": (5, 24, 43, 62, 81, 100, 119, 128), "ms_trials": 32,
            "config": dict(max_candidates=8, shapes_per_kernel=4, max_shapes=128)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer operators, shapes and trials (minutes)")
    parser.add_argument("--out", default="benchmarks")
    parser.add_argument("--work", default=None, help="work directory; meta-schedule results kept here are reused")
    args = parser.parse_args()

    import tvm_morello  # noqa: F401  (sets TVM_NUM_THREADS before tvm)
    from tvm_morello import dynamic as dyn
    from tvm_morello.library import export_library, load_library
    from tvm_morello.measure.numpy_timer import NumpyTimer

    cfg = settings(args.quick)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="bench_dynamic_"))
    work.mkdir(parents=True, exist_ok=True)
    ms_done_path = work / f"meta_schedule_runs_{cfg['ms_trials']}trials.jsonl"
    ms_done = {(r["operator"], r["T"]): r for r in map(json.loads, ms_done_path.read_text().splitlines())} \
        if ms_done_path.exists() else {}
    machine = machine_info()
    target = tvm_morello.resolve_target(None)

    workloads = []
    for batch in cfg["batches"]:
        for wl in dyn.bert_workloads(batch):
            if wl.name in cfg["ops"]:
                workloads.append(dyn.DynamicWorkload(f"{wl.name}_b{batch}", wl.batch, wl.m, wl.k, wl.n, wl.ranges,
                                                     wl.transpose_b, wl.constant_b))

    # 1. ours: one joint tuning for all T of all operators, then compile + verify + export. From an empty
    #    database: the measurer reuses recorded runs, which would make the tuning time meaningless.
    shutil.rmtree(work / "morello_db", ignore_errors=True)
    start = time.perf_counter()
    plans = dyn.tune_dynamic(workloads, target, work_dir=work / "morello_db",
                             config=dyn.TuningConfig(**cfg["config"]))
    tuned = time.perf_counter() - start
    lib = export_library(plans, target, work / "dynamic.so")
    ours_tuning = time.perf_counter() - start
    print(f"tvm-morello: tuning {tuned:.1f} s, with compile + verification {ours_tuning:.1f} s")

    # 2. ours vs numpy per (operator, T), numpy in its own process: the best of every alternation, over SWEEPS
    vm, _ = load_library(lib.library)
    numpy_timer = NumpyTimer()
    points = [(plan, t) for plan in plans for t in cfg["eval_t"]]
    timings: dict[tuple[str, int], list[tuple[float, float]]] = {}  # (operator, T) -> (ours, numpy) s, per alternation

    def alternate(plan, t: int, times: int) -> None:
        env = env_for(plan.workload, t)
        for _ in range(times):
            ours = time_library(vm, plan, env)
            timings.setdefault((plan.workload.name, t), []).append(
                (ours, numpy_timer.time_workload(plan.workload, env)))

    for sweep in range(SWEEPS):
        for plan, t in points if sweep % 2 == 0 else points[::-1]:
            short = min(map(min, timings.get((plan.workload.name, t), [(math.inf,)]))) < SHORT_CALL_S
            alternate(plan, t, SHORT_ALTERNATIONS if short else 1)
        print(f"timing sweep {sweep + 1}/{SWEEPS} done", flush=True)
    rows = []
    for plan, t in points:
        env = env_for(plan.workload, t)
        pairs = timings[plan.workload.name, t]
        ours, theirs = (min(side) for side in zip(*pairs))
        rows.append({"operator": plan.workload.name, "T": t, "shape": plan.workload.dims(env),
                     "flops": plan.workload.flops(env), "ours_s": ours, "numpy_s": theirs,
                     "speedup_vs_numpy": theirs / ours,
                     "median_ratio_vs_numpy": statistics.median(numpy_s / ours_s for ours_s, numpy_s in pairs),
                     "alternations": len(pairs),
                     "kernel": plan.kernels[plan.tree.predict_one([env[n] for n in plan.workload.var_names])].key})
    for plan in plans:
        op_rows = [r["speedup_vs_numpy"] for r in rows if r["operator"] == plan.workload.name]
        print(f"{plan.workload.name}: {len(op_rows)} T timed, geomean {geomean(op_rows):.2f}x numpy, "
              f"min {min(op_rows):.2f}x", flush=True)
    numpy_timer.close()

    # 4. meta-schedule tuned per shape at the sampled T
    ms_runs, ms_reused = [], 0
    for plan in plans:
        for t in cfg["ms_t"]:
            env = env_for(plan.workload, t)
            done = ms_done.get((plan.workload.name, t))
            if done is None:
                tuning, kernel = tune_meta_schedule(plan.workload, env, cfg["ms_trials"],
                                                    work / f"ms_{plan.workload.name}_{t}")
                done = {"operator": plan.workload.name, "T": t, "tuning_s": tuning, "ms_s": kernel}
                with ms_done_path.open("a") as f:
                    f.write(json.dumps(done) + "\n")
            else:  # kept from an interrupted run
                ms_reused += 1
                print(f"meta-schedule {plan.workload.name} T={t}: reusing the run kept in {ms_done_path}")
            ours = time_library(vm, plan, env)  # right after the meta-schedule kernel: same machine load
            ms_runs.append({**done, "ours_s": ours, "speedup_vs_ms": done["ms_s"] / ours})
            print(f"meta-schedule {plan.workload.name} T={t}: tuning {done['tuning_s']:.1f} s, kernel "
                  f"{done['ms_s'] * 1e3:.3f} ms (ours {ours * 1e3:.3f} ms)")
    for row in rows:
        match = next((r for r in ms_runs if r["operator"] == row["operator"] and r["T"] == row["T"]), None)
        row["ms_s"] = match["ms_s"] if match else None

    # 5. targets
    per_op_ms = {}
    for run in ms_runs:
        per_op_ms.setdefault(run["operator"], []).append(run["tuning_s"])
    ms_sampled = sum(sum(v) / len(v) * 8 for v in per_op_ms.values())  # 8 sampled T per operator
    ms_all = sum(sum(v) / len(v) * 128 for v in per_op_ms.values())  # all 128 T, extrapolated
    vs_numpy = [r["speedup_vs_numpy"] for r in rows]
    vs_ms = [r["speedup_vs_ms"] for r in ms_runs]

    def target_entry(name, value, goal, unit, higher=True):
        return {"name": name, "value": value, "target": goal, "higher_is_better": higher,
                "met": bool(value >= goal if higher else value <= goal), "unit": unit}

    targets = [
        target_entry("tuning time: meta-schedule on 8 sampled T / tvm-morello (all T)", ms_sampled / ours_tuning, 5.0, "x"),
        target_entry("tuning time: meta-schedule extrapolated to 128 T / tvm-morello", ms_all / ours_tuning, 50.0, "x"),
        target_entry("geomean kernel speed vs per-shape meta-schedule", geomean(vs_ms), 1.0, "x"),
        target_entry("geomean kernel speed vs numpy", geomean(vs_numpy), 1.2, "x"),
        target_entry("min kernel speed vs numpy over T", min(vs_numpy), 0.9, "x"),
    ]
    result = {
        "machine": machine, "quick": args.quick, "settings": {k: v for k, v in cfg.items()},
        "targets": targets,
        "tuning": {"tvm_morello_s": ours_tuning, "tvm_morello_tuning_only_s": tuned,
                   "meta_schedule_per_shape": ms_runs, "meta_schedule_reused": ms_reused,
                   "meta_schedule_8T_estimate_s": ms_sampled,
                   "meta_schedule_128T_estimate_s": ms_all},
        "plans": [{"operator": p.workload.name, "kernels": [k.key for k in p.kernels], "tree": p.tree.to_json(),
                   "predicted_geomean_gflops": p.provenance.get("predicted_geomean_gflops")} for p in plans],
        "rows": rows,
    }
    (out_dir / "dynamic.json").write_text(json.dumps(result, indent=1))
    (out_dir / "dynamic.md").write_text(markdown(result))
    plot(result, out_dir / "dynamic.png")
    print(markdown(result))


def markdown(result: dict) -> str:
    lines = ["# Dynamic shapes: BERT-base matmuls over sequence length T", "",
             f"Machine: {result['machine']['cpu']} ({result['machine']['mcpu']}, {result['machine']['cores']} cores), "
             f"TVM {result['machine']['versions']['tvm']}; {'quick run' if result['quick'] else 'full run'}; "
             f"load average at start {', '.join(f'{v:.1f}' for v in result['machine']['load_average_at_start'])}; "
             f"cost constants: {result['machine'].get('cost_constants', 'not recorded')}.", "",
             "## Targets", "", "| target | value | goal | met |", "|---|---|---|---|"]
    for t in result["targets"]:
        lines.append(f"| {t['name']} | {t['value']:.2f}{t['unit']} | {'>=' if t['higher_is_better'] else '<='} "
                     f"{t['target']}{t['unit']} | {'yes' if t['met'] else 'no'} |")
    tuning = result["tuning"]
    lines += ["", "## Tuning time", "",
              f"tvm-morello, all operators and every T (tuning + compile + verification): {tuning['tvm_morello_s']:.1f} s.",
              f"meta-schedule per shape: estimated {tuning['meta_schedule_8T_estimate_s']:.0f} s for 8 sampled T and "
              f"{tuning['meta_schedule_128T_estimate_s']:.0f} s for all 128 T (mean per-shape time x shapes)."
              + (f" {tuning['meta_schedule_reused']} of these per-shape runs were kept from an earlier run in the same "
                 "work directory (--work) and not repeated." if tuning.get("meta_schedule_reused") else ""), "",
              "| operator | T | meta-schedule tuning s | meta-schedule ms | tvm-morello ms | speedup |", "|---|---|---|---|---|---|"]
    for r in tuning["meta_schedule_per_shape"]:
        lines.append(f"| {r['operator']} | {r['T']} | {r['tuning_s']:.1f} | {r['ms_s'] * 1e3:.3f} | {r['ours_s'] * 1e3:.3f} | "
                     f"{r['speedup_vs_ms']:.2f}x |")
    lines += ["", "## Kernels chosen", "", "| operator | kernels | dispatch tree |", "|---|---|---|"]
    for p in result["plans"]:
        lines.append(f"| {p['operator']} | {', '.join(p['kernels'])} | `{json.dumps(p['tree']['root'])}` |")
    lines += ["", "## Kernel time per T", "",
              f"Each time is the best of {SWEEPS} sweeps over all points ({1 + (SWEEPS - 1) * SHORT_ALTERNATIONS} alternations "
              f"for calls under {SHORT_CALL_S * 1e6:.0f} us), each alternation timing the library entry (Relax VM, "
              f"dispatcher, output allocation, kernel) and then numpy in its own process, both repeated for at least "
              f"{MIN_TIMED_S * 1e3:.0f} ms, best of 3. 'vs numpy' is the ratio of the best times (the targets'); "
              "'median ratio' the median over a point's alternations of the ratio within each.", "",
              "| operator | T | kernel | tvm-morello ms | numpy ms | vs numpy | median ratio |",
              "|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(f"| {r['operator']} | {r['T']} | {r['kernel']} | {r['ours_s'] * 1e3:.3f} | {r['numpy_s'] * 1e3:.3f} | "
                     f"{r['speedup_vs_numpy']:.2f}x | "
                     + (f"{r['median_ratio_vs_numpy']:.2f}x |" if "median_ratio_vs_numpy" in r else "- |"))
    return "\n".join(lines) + "\n"


def plot(result: dict, path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed (pip install .[bench]); no plot written")
        return
    ops = sorted({r["operator"] for r in result["rows"]})
    cols = min(3, len(ops))
    fig, axes = plt.subplots(math.ceil(len(ops) / cols), cols, figsize=(5 * cols, 3.5 * math.ceil(len(ops) / cols)),
                             squeeze=False)
    for ax, op in zip(axes.flat, ops):
        rows = [r for r in result["rows"] if r["operator"] == op]
        ts = [r["T"] for r in rows]
        ax.plot(ts, [r["flops"] / r["ours_s"] / 1e9 for r in rows], "o-", ms=3, label="tvm-morello (one library)")
        ax.plot(ts, [r["flops"] / r["numpy_s"] / 1e9 for r in rows], "s--", ms=3, label="numpy")
        ms_runs = [r for r in result["tuning"]["meta_schedule_per_shape"] if r["operator"] == op]
        flops = {r["T"]: r["flops"] for r in rows}
        ax.plot([r["T"] for r in ms_runs if r["T"] in flops], [flops[r["T"]] / r["ms_s"] / 1e9 for r in ms_runs if r["T"] in flops],
                "^", label="meta-schedule per shape")
        ax.set_title(op)
        ax.set_xlabel("T")
        ax.set_ylabel("GFLOP/s")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(ops):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
