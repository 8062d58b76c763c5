"""The host CPU, read at entry points, and every target description resolved to a CpuTarget with its constants."""
from __future__ import annotations

import functools
import json
import os
import warnings
from pathlib import Path
from typing import Any

from ..cost.store import fit_path, load_fit
from ..errors import UncalibratedWarning, UnsupportedTargetError
from .cpu import CpuTarget
from .models import KNOWN_CPUS, cpu_model

HOST_NAMES = ("", "host", "native", "llvm")  # ways of saying "this machine"
OTHER_TARGET_KINDS = ("cuda", "rocm", "metal", "vulkan", "opencl", "webgpu", "hexagon", "nvptx", "c")


def usable_cores() -> int:
    """The cores TVM's runtime uses here: TVM_NUM_THREADS if set, else the cores this process may run on."""
    env = os.environ.get("TVM_NUM_THREADS")
    if env and env.isdigit() and int(env) > 0:
        return int(env)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def _cache_bytes(level: int, kind: str) -> int | None:
    base = Path("/sys/devices/system/cpu/cpu0/cache")
    for index in sorted(base.glob("index*")):
        try:
            if int((index / "level").read_text()) == level and (index / "type").read_text().strip() in kind:
                text = (index / "size").read_text().strip().upper()
                scale = {"K": 1024, "M": 1024 * 1024}.get(text[-1], 1)
                return int(text.rstrip("KM")) * scale
        except (OSError, ValueError):
            continue
    return None


@functools.lru_cache(maxsize=None)
def host_mcpu() -> str:
    import tvm

    return str(tvm.target.codegen.llvm_get_system_cpu())


def calibrated(target: CpuTarget) -> CpuTarget:
    """``target`` with the constants fitted on its CPU identity if a calibration is stored, else unchanged."""
    fit = load_fit(target.identity)
    return target.with_constants(fit.constants) if fit is not None else target


@functools.lru_cache(maxsize=None)
def detect_cpu() -> CpuTarget:
    """This machine: LLVM's CPU name, the ISA from /proc/cpuinfo, caches from sysfs (the known model's where
    sysfs is silent), usable cores, and its stored calibration; says once when it has none."""
    flags = _cpu_flags()
    if flags and not {"avx2", "fma"} <= flags:
        raise UnsupportedTargetError("this host has no AVX2 + FMA; tvm-morello supports x86 CPUs with AVX2 or AVX-512")
    mcpu = host_mcpu()
    model = KNOWN_CPUS.get(mcpu)
    host = CpuTarget(
        mcpu,
        512 if "avx512f" in flags else 256,
        usable_cores(),
        _cache_bytes(1, "Data") or (model.l1_bytes if model else 32 * 1024),
        _cache_bytes(2, "Unified") or (model.l2_bytes if model else 512 * 1024),
    )
    tuned = calibrated(host)
    if tuned is host:
        warnings.warn(
            f"no calibration for this CPU ({host.identity}) in {fit_path(host.identity).parent}: the cost model "
            f"uses the shipped {host.isa_name} constants; `tvm-morello calibrate` (about 2 minutes) fits them "
            f"to this machine", UncalibratedWarning, stacklevel=2)
    return tuned


def named_target(mcpu: str, cores: int | None = None) -> CpuTarget:
    """The CpuTarget of an LLVM CPU name: the host itself when it names the host's CPU, else the known model."""
    if mcpu in HOST_NAMES or mcpu == host_mcpu():
        host = detect_cpu()
        return host if not cores or cores == host.cores else host.with_cores(cores)
    return calibrated(cpu_model(mcpu, cores or usable_cores()))


def is_host(target: CpuTarget) -> bool:
    """Whether code built for ``target`` runs here at the speed the target describes (same CPU, same ISA)."""
    host = detect_cpu()
    return target.mcpu == host.mcpu and target.vector_bits <= host.vector_bits


def require_host(target: CpuTarget, action: str = "measure") -> None:
    """Refuse to time code for another CPU here: its timings would be this machine's, not the target's."""
    if not is_host(target):
        host = detect_cpu()
        raise UnsupportedTargetError(
            f"cannot {action} for {target.mcpu}: this host is {host.describe()}, and timings taken here are this "
            f"machine's, not {target.mcpu}'s; run on a {target.mcpu} machine, or synthesise and build without "
            f"measuring (e.g. `tvm-morello synth ... --target {target.mcpu} --no-measure`)")


def _parse_string(text: str) -> tuple[str, int | None]:
    text = text.strip()
    if text.startswith("{"):
        return _parse_tvm(json.loads(text))
    words = text.split()
    if not words or words[0] in HOST_NAMES and len(words) == 1:
        return "", None
    if words[0] == "llvm":  # the pre-0.27 string form, which TVM itself no longer parses
        options = dict(w.lstrip("-").split("=", 1) for w in words[1:] if "=" in w)
        return options.get("mcpu", ""), int(options["num-cores"]) if "num-cores" in options else None
    if words[0] in OTHER_TARGET_KINDS:
        raise UnsupportedTargetError(f"target {text!r}: only LLVM x86 CPU targets are supported")
    if len(words) == 1:
        return words[0], None
    raise UnsupportedTargetError(f"target {text!r}: expected a CPU name (e.g. znver4), a TVM target dict, or 'host'")


def _parse_tvm(target: Any) -> tuple[str, int | None]:
    import tvm

    try:
        tvm_target = target if isinstance(target, tvm.target.Target) else tvm.target.Target(target)
    except Exception as err:  # TVM raises its own error types for unparsable targets
        raise UnsupportedTargetError(f"target {target!r} could not be parsed by TVM: {err}") from err
    if tvm_target.kind.name != "llvm":
        raise UnsupportedTargetError(f"target kind {tvm_target.kind.name!r}: only 'llvm' (x86 CPU) is supported")
    triple = str(tvm_target.attrs.get("mtriple", "") or "")
    if triple and not triple.startswith(("x86_64", "i686", "i386")):
        raise UnsupportedTargetError(f"target triple {triple!r}: only x86 CPUs are supported")
    cores = int(tvm_target.attrs.get("num-cores", 0) or 0) or None
    return str(tvm_target.attrs.get("mcpu", "") or ""), cores


def resolve_target(target: Any = None) -> CpuTarget:
    """Any target description as a CpuTarget: None or 'host' (this machine), a CpuTarget (as is), an LLVM CPU
    name ('znver4'), or a TVM target (dict, JSON or ``tvm.target.Target``; its ``mcpu`` names the CPU and its
    ``num-cores`` the cores). A named CPU gets that CPU's model, never the host's facts; an LLVM target without
    ``mcpu`` is the host (LLVM alone would emit SSE-only code)."""
    if target is None:
        return detect_cpu()
    if isinstance(target, CpuTarget):
        return target
    mcpu, cores = _parse_string(target) if isinstance(target, str) else _parse_tvm(target)
    return named_target(mcpu, cores)
