"""Whole models (issue 15) -> benchmarks/model.{json,md,png}.

A BERT-base encoder built here as ONNX (random weights, dynamic ``batch`` and ``seq``; the operators a PyTorch
export emits), with 1 and 12 layers, compiled by ``compile_model`` for batch 1..16 and seq 1..128, against ONNX
Runtime (CPUExecutionProvider, all cores), OpenVINO (CPU, f32, latency hint) and TVM 0.27's default build
(``from_onnx`` + ``tvm.compile``) of the same file. Each runtime runs in a process of its own, one at a time,
interleaved with the others chunk by chunk of points over several rounds; ours is loaded there by plain TVM
(``relax.VirtualMachine(tvm.runtime.load_module(...))``), without tvm_morello. Outputs are compared with ONNX
Runtime's at a few points (max abs error printed). Every point also gets its roofline (its FLOPs at the measured
FMA peak or its weights at their measured read bandwidth): how far each runtime is from the machine's limit.

    python scripts/bench_model.py            # full run: every T for 1 layer at batch 1 and 16, a sweep for 12
    python scripts/bench_model.py --quick    # 1 layer, batch 1..2, seq 1..32, a few T: checks the script works
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import geomean, machine_info, markdown_table, target, targets_table, write_results  # noqa: E402
from roofline import fma_peak_gflops, read_bandwidth_in_own_process  # noqa: E402

RUNTIMES = ("onnxruntime", "openvino", "tvm-default", "tvm-morello")
ANCHORS = ("onnxruntime", "openvino")
TVM_DEFAULT_POINTS = ((1, 1), (1, 16), (1, 128))  # its untuned build takes seconds per call: a few points only
TWELVE_LAYER_SEQS = (1, 2, 4, 8, 16, 32, 48, 64, 96, 128)


# ------------------------------------------------------------------------------------------------------------
# Worker: one runtime in its own process


def _runner(runtime: str, model: Path, library: Path | None):
    """A callable numpy input -> numpy output for ``runtime``."""
    cores = len(os.sched_getaffinity(0))
    if runtime == "onnxruntime":
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = cores
        session = onnxruntime.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
        return lambda x: session.run(None, {"hidden_states": x})[0]
    if runtime == "openvino":
        import openvino

        core, compiled = openvino.Core(), {}

        def run(x):
            # compiled afresh per shape: on this OpenVINO, a dynamic-shape model whose first call has seq = 1 then
            # returns wrong results (max abs error ~4) at seq = 32 (first call at seq = 2: right everywhere)
            if x.shape not in compiled:
                compiled.clear()
                model_ = core.compile_model(str(model), "CPU", {"PERFORMANCE_HINT": "LATENCY",
                                                                "INFERENCE_PRECISION_HINT": "f32"})
                compiled[x.shape] = (model_, model_.create_infer_request())
            model_, request = compiled[x.shape]
            return np.array(request.infer({0: x})[model_.output(0)])

        return run
    # TVM's pool as the manifest's loading line sets it (both TVM builds): every core, workers not pinned
    os.environ.setdefault("TVM_NUM_THREADS", str(cores))
    os.environ.setdefault("TVM_BIND_THREADS", "0")
    import tvm
    from tvm import relax

    if runtime == "tvm-default":
        import onnx
        from tvm.relax.frontend.onnx import from_onnx

        target = tvm.target.Target({"kind": "llvm", "mcpu": tvm.target.codegen.llvm_get_system_cpu(),
                                    "num-cores": cores})
        executable = tvm.compile(from_onnx(onnx.load(str(model)), keep_params_in_input=False), target=target)
    else:  # plain TVM loads our library: no tvm_morello in this process
        executable = tvm.runtime.load_module(str(library))
    vm, inputs = relax.VirtualMachine(executable, tvm.cpu()), {}

    def run(x):
        # one input tensor per shape, refilled on each call (OpenVINO's infer request is kept per shape too): a
        # fresh tvm.runtime.tensor per call cost 37 us more at batch 1, T = 1 (0.42 vs 0.38 ms, 1 layer, Zen 4)
        if x.shape not in inputs:
            inputs.clear()
            inputs[x.shape] = tvm.runtime.empty(x.shape, "float32")
        tensor = inputs[x.shape].copyfrom(x)
        return vm["main"](tensor).numpy()

    return run


def worker(args) -> None:
    run = _runner(args.worker, Path(args.model), Path(args.library) if args.library else None)
    points = [tuple(p) for p in json.loads(args.points)]
    checks = {tuple(p) for p in json.loads(args.checks)}
    rows, outputs = [], {}
    for batch, seq in points:
        x = np.random.default_rng(batch * 1000 + seq).uniform(-1, 1, (batch, seq, args.hidden)).astype("float32")
        y = run(x)  # warm-up
        times, budget = [], time.perf_counter() + args.seconds
        while len(times) < 3 or (time.perf_counter() < budget and len(times) < 1000):
            start = time.perf_counter()
            run(x)
            times.append(time.perf_counter() - start)
        rows.append({"batch": batch, "seq": seq, "ms": float(np.median(times)) * 1e3, "runs": len(times)})
        if (batch, seq) in checks:
            outputs[f"{batch}x{seq}"] = np.asarray(y)
    np.savez(args.outputs, **outputs)
    print(json.dumps(rows))


def run_worker(runtime: str, model: Path, library: Path | None, points, checks, out_dir: Path,
               seconds: float, hidden: int) -> tuple[dict, dict]:
    """``runtime``'s times in a process of its own, {(batch, seq): ms}, and its outputs at ``checks``."""
    outputs = out_dir / f"{runtime}-{model.stem}.npz"
    command = [sys.executable, __file__, "--worker", runtime, "--model", str(model), "--points", json.dumps(points),
               "--checks", json.dumps(checks), "--outputs", str(outputs), "--seconds", str(seconds),
               "--hidden", str(hidden)] + (["--library", str(library)] if library else [])
    print(f"  {runtime} on {model.name}: {len(points)} points ...", flush=True)
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        print(f"  {runtime} failed:\n{done.stderr[-2000:]}", flush=True)
        return {}, {}
    rows = json.loads(done.stdout.strip().splitlines()[-1])
    return {(r["batch"], r["seq"]): r["ms"] for r in rows}, dict(np.load(outputs))


# ------------------------------------------------------------------------------------------------------------
# Driver


def compile_ours(model: Path, ranges: dict, out: Path, records: Path) -> float:
    """Compile in a process of its own (tuning measures: nothing else may run); returns its wall time."""
    script = ("import sys, tvm_morello.model as m; "
              f"m.compile_model({str(model)!r}, {ranges!r}, out={str(out)!r}, work_dir={str(records)!r})")
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", script], check=True)
    return time.perf_counter() - start


def chunks(points, size: int):
    return [points[i:i + size] for i in range(0, len(points), size)]


def measure_model(layers: int, model: Path, library: Path, points, checks, work: Path, seconds: float,
                  hidden: int, rounds: int, chunk: int) -> tuple[list[dict], dict]:
    """Every runtime at every point, one process at a time, interleaved: the points go in chunks of ``chunk``,
    and each chunk is timed by every runtime in turn (the order rotating), ``rounds`` times over. A point keeps
    its fastest round, so a slow spell of this shared VM, which lasts minutes, does not decide a ratio: it would
    have to cover the same chunk in every round, or one runtime's turns only."""
    by_runtime, outputs = {}, {}
    default_points = [p for p in points if layers == 1 and tuple(p) in TVM_DEFAULT_POINTS]
    if default_points:  # TVM's default build: seconds per call, one pass
        by_runtime["tvm-default"], outputs["tvm-default"] = run_worker("tvm-default", model, None, default_points,
                                                                       checks, work, seconds, hidden)
    timed = [rt for rt in RUNTIMES if rt != "tvm-default"]
    for round_ in range(rounds):
        for index, part in enumerate(chunks(points, chunk)):
            shift = (round_ + index) % len(timed)
            for runtime in timed[shift:] + timed[:shift]:
                times, outs = run_worker(runtime, model, library if runtime == "tvm-morello" else None, part,
                                         [c for c in checks if c in part], work, seconds, hidden)
                best = by_runtime.setdefault(runtime, {})
                for key, ms in times.items():
                    best[key] = min(best.get(key, float("inf")), ms)
                if round_ == 0:
                    outputs.setdefault(runtime, {}).update(outs)
    reference = outputs.get("onnxruntime", {})
    errors = {rt: max((float(np.max(np.abs(outs[k] - reference[k]))) for k in outs if k in reference), default=None)
              for rt, outs in outputs.items() if rt != "onnxruntime"}
    rows = []
    for batch, seq in points:
        row = {"layers": layers, "batch": batch, "seq": seq}
        row.update({rt: by_runtime.get(rt, {}).get((batch, seq)) for rt in RUNTIMES})
        anchors = [row[a] for a in ANCHORS if row.get(a)]
        row["best_anchor"] = min(anchors) if anchors else None
        row["speedup"] = row["best_anchor"] / row["tvm-morello"] if row["best_anchor"] and row["tvm-morello"] else None
        row["vs_tvm_default"] = (row["tvm-default"] / row["tvm-morello"]
                                 if row.get("tvm-default") and row["tvm-morello"] else None)
        rows.append(row)
    for rt, err in errors.items():
        print(f"  {layers} layer(s): max abs error of {rt} vs ONNX Runtime: {err}", flush=True)
    return rows, errors


# ------------------------------------------------------------------------------------------------------------
# Roofline: what the machine allows at each point


def model_flops(layers: int, batch: int, seq: int, hidden: int = 768, ffn: int = 3072) -> float:
    """The encoder's matmul FLOPs: four h x h and two h x ffn dense layers per token, attention's two
    (seq x seq x h) products per sequence."""
    dense = 2 * batch * seq * (4 * hidden * hidden + 2 * hidden * ffn)
    attention = 4 * batch * seq * seq * hidden
    return layers * (dense + attention)


def weight_bytes(layers: int, hidden: int = 768, ffn: int = 3072) -> int:
    return layers * 4 * (4 * hidden * hidden + 2 * hidden * ffn)


def add_roofline(rows: list[dict], peak_flops: float, bandwidth: dict[int, float]) -> None:
    """Each row's roofline time (its FLOPs at the FMA peak or its weights at their read bandwidth, whichever
    is longer: activations and the other operators ignored, so no runtime can be faster), the faster anchor's
    time over it (the most any implementation could beat that anchor by) and ours as a fraction of it."""
    for r in rows:
        floor = max(model_flops(r["layers"], r["batch"], r["seq"]) / peak_flops,
                    weight_bytes(r["layers"]) / bandwidth[r["layers"]]) * 1e3
        r["roofline_ms"] = floor
        r["ceiling"] = r["best_anchor"] / floor if r.get("best_anchor") else None
        r["ours_of_roofline"] = floor / r["tvm-morello"] if r.get("tvm-morello") else None


def summarize_groups(rows: list[dict]) -> list[dict]:
    """Per (layers, batch): geomean and worst speedup, geomean ceiling and our geomean fraction of the roofline."""
    out = []
    for layers, batch in sorted({(r["layers"], r["batch"]) for r in rows}, reverse=True):
        sel = [r for r in rows if (r["layers"], r["batch"]) == (layers, batch) and r.get("speedup")]
        if not sel:
            continue
        worst = min(sel, key=lambda r: r["speedup"])
        out.append({"layers": layers, "batch": batch, "points": len(sel),
                    "geomean_speedup": geomean([r["speedup"] for r in sel]), "worst_speedup": worst["speedup"],
                    "worst_seq": worst["seq"], "geomean_ceiling": geomean([r.get("ceiling") for r in sel]) or None,
                    "geomean_ours_of_roofline": geomean([r.get("ours_of_roofline") for r in sel]) or None})
    return out


def plot(rows, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = sorted({(r["layers"], r["batch"]) for r in rows})
    fig, axes = plt.subplots(1, len(groups), figsize=(5 * len(groups), 4), squeeze=False)
    for ax, (layers, batch) in zip(axes[0], groups):
        sel = [r for r in rows if r["layers"] == layers and r["batch"] == batch]
        for rt in RUNTIMES:
            pts = [(r["seq"], r[rt]) for r in sel if r.get(rt)]
            if pts:
                ax.plot(*zip(*pts), marker="." if len(pts) < 20 else None, label=rt)
        ax.set_yscale("log")
        ax.set_title(f"{layers} layer(s), batch {batch}")
        ax.set_xlabel("seq")
        ax.set_ylabel("ms")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--work-dir", default=None, help="models, libraries and records (default: a temporary one)")
    parser.add_argument("--from-json", default=None, metavar="JSON",
                        help="write the report again from an earlier run's model[_quick].json, measuring nothing")
    parser.add_argument("--worker", choices=RUNTIMES)
    parser.add_argument("--model"), parser.add_argument("--library"), parser.add_argument("--points")
    parser.add_argument("--checks"), parser.add_argument("--outputs")
    parser.add_argument("--seconds", type=float, default=0.3)
    parser.add_argument("--rounds", type=int, default=None, help="passes over every point (default 3, quick 1)")
    parser.add_argument("--chunk", type=int, default=16, help="points each runtime times per turn")
    parser.add_argument("--hidden", type=int, default=768)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    report(json.loads(Path(args.from_json).read_text()) if args.from_json else measure(args))


def measure(args) -> dict:
    """Compile and time every model at every point: the run's raw results."""
    import onnx

    from tvm_morello.testing import bert_encoder_onnx

    work = Path(args.work_dir or tempfile.mkdtemp(prefix="bench_model_"))
    work.mkdir(parents=True, exist_ok=True)
    machine = machine_info()
    if args.quick:
        ranges, layer_counts = {"batch": (1, 2), "seq": (1, 32)}, (1,)
        points = {1: [(b, t) for b in (1, 2) for t in (1, 7, 16, 32)]}
    else:
        ranges, layer_counts = {"batch": (1, 16), "seq": (1, 128)}, (12, 1)
        points = {1: [(b, t) for b in (1, 16) for t in range(1, 129)],
                  12: [(b, t) for b in (1, 16) for t in TWELVE_LAYER_SEQS]}
    hi_batch, hi_seq = ranges["batch"][1], ranges["seq"][1]
    rounds = args.rounds or (1 if args.quick else 3)
    # the machine's limits first, alone: the FMA peak and the read bandwidth of each model's weights
    peak_gflops, peak_isa = fma_peak_gflops()
    bandwidth = {layers: read_bandwidth_in_own_process(weight_bytes(layers) // 4 // 768, 768)
                 for layers in layer_counts}
    print(f"FMA peak {peak_gflops} GFLOP/s ({peak_isa}); weights' read bandwidth: "
          + ", ".join(f"{layers} layer(s) {bw / 1e9:.1f} GB/s" for layers, bw in bandwidth.items()), flush=True)
    compile_seconds, rows, errors = {}, [], {}
    records = work / "records"
    for layers in layer_counts:  # the 12-layer model first, from empty records: its time is the whole tuning
        model = work / f"bert_{layers}.onnx"
        onnx.save(bert_encoder_onnx(layers), str(model))
        library = work / f"bert_{layers}.so"
        print(f"compiling the {layers}-layer model over {ranges} ...", flush=True)
        compile_seconds[layers] = compile_ours(model, ranges, library, records)
        checks = [(1, 1), (1, hi_seq), (hi_batch, hi_seq)]
        model_rows, model_errors = measure_model(layers, model, library, points[layers], checks, work,
                                                 args.seconds, 768, rounds, args.chunk)
        rows += model_rows
        errors[layers] = model_errors
    return {"machine": {**machine, "fma_peak_gflops": peak_gflops, "fma_peak_isa": peak_isa,
                        "probe_read_bandwidth_gb_s": {layers: bw / 1e9 for layers, bw in bandwidth.items()}},
            "quick": args.quick, "ranges": ranges, "rounds": rounds, "chunk": args.chunk,
            "compile_seconds": compile_seconds, "max_abs_error_vs_onnxruntime": errors, "rows": rows}


def report(result: dict) -> None:
    """Roofline, targets, tables and plot of a run's results -> benchmarks/model[_quick].{json,md,png}."""
    machine, rows, quick = result["machine"], result["rows"], result["quick"]
    compile_seconds = {int(k): v for k, v in result["compile_seconds"].items()}
    errors = {int(k): v for k, v in result["max_abs_error_vs_onnxruntime"].items()}
    probe = {int(k): v * 1e9 for k, v in machine["probe_read_bandwidth_gb_s"].items()}
    # a runtime that streamed a model's weights faster than the probe read them shows the probe fell short
    streamed = {layers: max(weight_bytes(layers) / (r[rt] / 1e3) for r in rows if r["layers"] == layers
                            for rt in ANCHORS + ("tvm-morello",) if r.get(rt))
                for layers in probe}
    bandwidth = {layers: max(probe[layers], streamed[layers]) for layers in probe}
    peak_gflops, peak_isa = machine["fma_peak_gflops"], machine["fma_peak_isa"]
    if peak_gflops:
        add_roofline(rows, peak_gflops * 1e9, bandwidth)
    capped = [r for r in rows if r.get("ceiling") is not None and r["ceiling"] < 1.1]
    capped_note = (f"{len(capped)} of {len(rows)} points have a roofline ceiling below 1.1x (there the faster anchor "
                   "runs within 10% of the machine's limit, so no implementation can be 1.1x faster): "
                   + ", ".join(f"{r['layers']} layer(s) batch {r['batch']} T={r['seq']} ({r['ceiling']:.2f}x)"
                               for r in capped[:8]) + (", ..." if len(capped) > 8 else "")) if capped else ""
    speedups = [r["speedup"] for r in rows if r["speedup"]]
    top_seq = max(s for _, s in TVM_DEFAULT_POINTS)
    at_top = [r["vs_tvm_default"] for r in rows if r["vs_tvm_default"] and r["seq"] == top_seq]
    whole = max(compile_seconds)
    targets = [
        target("worst point vs the faster of ONNX Runtime and OpenVINO", min(speedups) if speedups else None, 1.1, "x",
               note=capped_note),
        target("geomean vs the faster of ONNX Runtime and OpenVINO", geomean(speedups), 1.25, "x"),
        target(f"vs TVM's default build at T={top_seq}, 1 layer, batch 1", at_top[0] if at_top else None, 100, "x"),
        target(f"compile time (tuning included) of the {whole}-layer model, all T and batch sizes",
               compile_seconds[whole], 900, "s", higher_is_better=False),
    ]
    groups = summarize_groups(rows)
    result = {**result, "machine": {**machine, "read_bandwidth_gb_s": {k: v / 1e9 for k, v in bandwidth.items()}},
              "targets": targets, "groups": groups}
    name = "model_quick" if quick else "model"
    columns = [("layers", "layers", ""), ("batch", "batch", ""), ("seq", "T", "")] + \
        [(rt, f"{rt} ms", ".3g") for rt in RUNTIMES] + [("speedup", "best anchor / ours", ".2f"),
                                                         ("roofline_ms", "roofline ms", ".3g"),
                                                         ("ceiling", "best anchor / roofline", ".2f"),
                                                         ("ours_of_roofline", "ours: fraction of roofline", ".2f")]
    group_columns = [("layers", "layers", ""), ("batch", "batch", ""), ("points", "points", ""),
                     ("geomean_speedup", "geomean best anchor / ours", ".2f"),
                     ("worst_speedup", "worst", ".2f"), ("worst_seq", "at T", ""),
                     ("geomean_ceiling", "geomean best anchor / roofline", ".2f"),
                     ("geomean_ours_of_roofline", "ours: geomean fraction of roofline", ".2f")]
    shown = [r for r in rows if r["layers"] != 1 or r["seq"] in (1, 2, 4, 8, 16, 32, 64, 96, 128) or quick]
    bandwidth_text = ", ".join(f"{layers} layer(s): {bw / 1e9:.1f} GB/s (probe {probe[layers] / 1e9:.1f})"
                               for layers, bw in bandwidth.items())
    markdown = "\n\n".join([
        f"# Whole models: BERT-base encoder from ONNX{' (quick)' if quick else ''}",
        f"Machine: {machine['cpu']}: {machine['target']}. Cost constants: {machine['cost_constants']}. Ranges "
        f"compiled for: {', '.join(f'{k} {lo}..{hi}' for k, (lo, hi) in result['ranges'].items())}. Each runtime in "
        "its own process, one at a time, interleaved: chunks of "
        f"{result['chunk']} points, each timed by every runtime in turn (the order rotating), {result['rounds']} "
        f"round(s) (a point keeps its fastest); inputs and outputs are numpy arrays for every runtime; ONNX Runtime "
        f"with {machine['cores']} intra-op threads, OpenVINO CPU f32 latency hint, TVM's default build at a few "
        "points only (seconds per call); OpenVINO compiled afresh for each shape (after a first call at seq = 1 its "
        "dynamic-shape model returned wrong results at seq = 32 here). Compile times (ours, tuning included): "
        + ", ".join(f"{layers} layer(s) {s:.0f} s" for layers, s in compile_seconds.items())
        + " (the later compile reuses the earlier one's tuning records). Max abs error vs ONNX Runtime: "
        + "; ".join(f"{layers} layer(s): " + ", ".join(f"{rt} {e:.2g}" for rt, e in errs.items() if e is not None)
                    for layers, errs in errors.items()) + ".",
        "## Targets", targets_table(targets),
        *([f"Note on the worst point: {capped_note}."] if capped_note else []),
        "## Per model and batch size",
        f"Roofline: a point's FLOPs at the FMA peak ({peak_gflops} GFLOP/s, {peak_isa}) or its weights at their read "
        f"bandwidth ({bandwidth_text}: the faster of a parallel row-sum probe over the same bytes and the fastest "
        "any runtime streamed them here), whichever is longer; activations and the other operators are left out. "
        "'best anchor / roofline' is the most any implementation could beat the faster anchor by.",
        markdown_table(groups, group_columns),
        "## Latency" + ("" if quick else " (1 layer: T = 1, 2, 4, ..., 128 shown; every T in model.json)"),
        markdown_table(shown, columns), f"![latency]({name}.png)"])
    write_results(name, result, markdown)
    plot(rows, Path(__file__).resolve().parent.parent / "benchmarks" / f"{name}.png")
    print(targets_table(targets))


if __name__ == "__main__":
    main()
