"""The JSON manifest beside an exported library: ranges, kernels, dispatch tree, tuning provenance."""
from __future__ import annotations

import json
import platform
import time
from pathlib import Path
from typing import Sequence

from .._env import THREAD_SETTINGS
from ..dynamic.plan import OperatorPlan
from ..target import CpuTarget

FORMAT_VERSION = 1


def _usage(plan: OperatorPlan) -> str:
    wl = plan.workload
    if wl.constant_b:
        return (f"packed = vm['{plan.pack_entry}'](w)  # once, w[{wl.n}, {wl.k}] as given\n"
                f"y = vm['{plan.entry}'](a, packed)")
    return f"y = vm['{plan.entry}'](a, b)"


def operator_entry(plan: OperatorPlan) -> dict:
    wl = plan.workload
    return {
        "entry": plan.entry,
        "pack_entry": plan.pack_entry,
        "workload": wl.to_json(),
        "arguments": {
            "a": "A[b?, m, k]",
            "b": (f"output of {plan.pack_entry}(W[n, k]) (panels [n/{plan.panel}, k, {plan.panel}])" if wl.constant_b
                  else ("B[b?, n, k]" if wl.transpose_b else "B[b?, k, n]")),
        },
        "output": "out[b?, m, n]",
        "usage": _usage(plan),
        "weight_panel": plan.panel if wl.constant_b else None,
        "kernels": [{"index": i, "name": plan.kernel_name(i), "mr": mk.mr, "nr": mk.nr,
                     "parallel": mk.parallel, "form": "dot" if mk.dot else "outer"}
                    for i, mk in enumerate(plan.kernels) if i in plan.tree.kernels_used()],
        "dispatch_tree": plan.tree.to_json(),
        "tuning": plan.provenance,
    }


def loading_code(library: Path, target: CpuTarget) -> str:
    """Python that loads the library in plain TVM with the thread pool it was tuned with (set before TVM is
    imported: TVM runs one thread otherwise)."""
    settings = {"TVM_NUM_THREADS": str(target.cores), **THREAD_SETTINGS}
    return ("import os; " + "; ".join(f"os.environ.setdefault({k!r}, {v!r})" for k, v in settings.items())
            + "; import tvm; from tvm import relax; "
            f"vm = relax.VirtualMachine(tvm.runtime.load_module('{library.name}'), tvm.cpu())")


def build_manifest(plans: Sequence[OperatorPlan], target: CpuTarget, library: Path, verification: dict) -> dict:
    import tvm

    return {
        "format_version": FORMAT_VERSION,
        "library": library.name,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "loading": loading_code(library, target),
        "target": {"mcpu": target.mcpu, "vector_bits": target.vector_bits, "cores": target.cores},
        "versions": {"tvm": tvm.__version__, "python": platform.python_version()},
        "operators": [operator_entry(plan) for plan in plans],
        "verification": verification,
    }


def manifest_path(library: str | Path) -> Path:
    library = Path(library)
    return library.with_suffix(".json")


def write_manifest(manifest: dict, path: str | Path) -> Path:
    path = Path(path)
    path.write_text(json.dumps(manifest, indent=1, sort_keys=False))
    return path


def read_manifest(path: str | Path) -> dict:
    return json.loads(Path(path).read_text())
