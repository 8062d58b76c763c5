"""Compile the dispatching IRModule, verify it against numpy, and write one .so plus its JSON manifest."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ..dynamic.plan import OperatorPlan
from ..dynamic.relax_module import build_modules
from ..target import CpuTarget
from .manifest import build_manifest, manifest_path, write_manifest
from .verify import VerificationReport, verify_library


@dataclass(frozen=True)
class ExportedLibrary:
    """Where the library and its manifest were written, and what verification checked."""

    library: Path
    manifest: Path
    verification: VerificationReport


def compile_library(plans: Sequence[OperatorPlan], target: CpuTarget, kernel_funcs=None):
    """The Relax executable of ``plans``: dispatch and pack entries, with the separately compiled kernel
    module imported (``export_library`` bundles both into one .so)."""
    import tvm

    entries, kernel_modules = build_modules(plans, target, kernel_funcs)
    executable = tvm.compile(entries, target=target.tvm_target())
    for kernels, kernel_target in kernel_modules:
        executable.mod.import_module(tvm.tirx.build(kernels, target=kernel_target))
    return executable


def export_library(plans: Sequence[OperatorPlan], target: CpuTarget, path: str | Path, *, kernel_funcs=None,
                   random_per_region: int = 2) -> ExportedLibrary:
    """Compile, verify every dispatch region (raises VerificationError, writing nothing, on a mismatch),
    then write ``path`` (.so) and the manifest beside it (same name, .json)."""
    path = Path(path)
    executable = compile_library(plans, target, kernel_funcs)
    report = verify_library(executable, plans, random_per_region=random_per_region)
    path.parent.mkdir(parents=True, exist_ok=True)
    executable.export_library(str(path))
    manifest = write_manifest(build_manifest(plans, target, path, report.to_json()), manifest_path(path))
    return ExportedLibrary(path, manifest, report)


def load_library(path: str | Path):
    """(VirtualMachine, manifest) for an exported library; uses plain TVM only (see the manifest's "loading")."""
    import tvm
    from tvm import relax

    from .manifest import read_manifest

    vm = relax.VirtualMachine(tvm.runtime.load_module(str(path)), tvm.cpu())
    return vm, read_manifest(manifest_path(path))
