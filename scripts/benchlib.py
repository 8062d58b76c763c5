"""Shared by the benchmark scripts: machine description, target entries, and the JSON + markdown output."""
from __future__ import annotations

import json
import math
import os
import platform
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def machine_info() -> dict:
    """CPU, cores, threads, library versions and load: what a reader needs to trust a timing."""
    import numpy
    import sklearn
    import xgboost

    import tvm_morello  # noqa: F401  (before tvm)
    import tvm

    cpu = tvm_morello.detect_cpu()
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    from tvm_morello.cost.store import fit_path, load_fit

    fit = load_fit(cpu.identity)
    constants = (f"fitted on this CPU ({', '.join(fit.sources)}; {len(fit.samples)} measurements; "
                 f"{fit_path(cpu.identity)})" if fit else f"the shipped {cpu.isa_name} defaults (not calibrated)")
    return {
        "cpu": model, "mcpu": cpu.mcpu, "target": cpu.describe(), "identity": cpu.identity,
        "cost_constants": constants, "cores": len(os.sched_getaffinity(0)), "vector_bits": cpu.vector_bits,
        "tvm_num_threads": os.environ.get("TVM_NUM_THREADS"), "python": platform.python_version(),
        "versions": {"tvm": tvm.__version__, "numpy": numpy.__version__, "xgboost": xgboost.__version__,
                     "scikit-learn": sklearn.__version__},
        "load_average_at_start": os.getloadavg(),
    }


def code_version() -> str:
    """The checkout's commit (``+dirty`` with uncommitted changes): which code a row was measured with."""
    import subprocess

    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")


def geomean(values) -> float:
    values = [v for v in values if v and v > 0]
    return math.exp(sum(map(math.log, values)) / len(values)) if values else 0.0


def target(name: str, value, goal: float, unit: str, higher_is_better: bool = True, note: str = "") -> dict:
    """One entry of the ``targets`` list (shared/README's benchmark convention)."""
    met = value is not None and (value >= goal if higher_is_better else value <= goal)
    entry = {"name": name, "value": value, "target": goal, "higher_is_better": higher_is_better, "met": met, "unit": unit}
    return {**entry, "note": note} if note else entry


def markdown_table(rows: list[dict], columns: list[tuple[str, str, str]]) -> str:
    """Columns are (key, header, format spec)."""
    lines = ["| " + " | ".join(h for _, h, _ in columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = []
        for key, _, spec in columns:
            value = row.get(key)
            cells.append("n/a" if value is None else format(value, spec) if spec else str(value))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def targets_table(targets: list[dict]) -> str:
    return markdown_table(
        [{**t, "met": "yes" if t["met"] else "**no**"} for t in targets],
        [("name", "target", ""), ("value", "value", ".3g"), ("target", "goal", ".3g"), ("unit", "unit", ""), ("met", "met", "")],
    )


def write_results(name: str, result: dict, markdown: str) -> tuple[Path, Path]:
    BENCHMARKS.mkdir(exist_ok=True)
    json_path, md_path = BENCHMARKS / f"{name}.json", BENCHMARKS / f"{name}.md"
    json_path.write_text(json.dumps(result, indent=1) + "\n")
    md_path.write_text(markdown + "\n")
    return json_path, md_path
