"""Detect the host CPU at run time and turn it into a TVM LLVM target that emits its real vector ISA."""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import UnsupportedTargetError

LINE_BYTES = 64


@dataclass(frozen=True)
class CpuTarget:
    """What the search needs to know about an x86 CPU.

    Parameters
    ----------
    mcpu : LLVM CPU name (e.g. ``znver4``); without it LLVM emits SSE-only code.
    vector_bits : widest usable SIMD register (512 with AVX-512, 256 with AVX2, else 128).
    cores : cores the runtime may use (TVM_NUM_THREADS).
    l1_bytes, l2_bytes : per-core data cache sizes.
    vector_registers : architectural SIMD registers (32 zmm with AVX-512, 16 ymm otherwise).
    """

    mcpu: str
    vector_bits: int
    cores: int
    l1_bytes: int = 32 * 1024
    l2_bytes: int = 1024 * 1024
    vector_registers: int = 32

    def __post_init__(self) -> None:
        if self.vector_bits not in (128, 256, 512):
            raise UnsupportedTargetError(f"vector_bits={self.vector_bits}: supported are 128, 256, 512")
        if self.cores < 1:
            raise UnsupportedTargetError(f"cores={self.cores}: need at least one core")

    def lanes(self, dtype_bytes: int = 4) -> int:
        """Elements of one vector register."""
        return self.vector_bits // 8 // dtype_bytes

    def memory_limits(self):
        """The memory a root spec may use: all vector registers and one core's L1, in lines."""
        from ..spec import MemoryLimits

        return MemoryLimits(self.vector_registers, self.l1_bytes // LINE_BYTES)

    def tvm_target(self, *, reassociate: bool = False):
        """The TVM target in the dict form TVM 0.27 requires; ``reassociate`` lets LLVM reorder float
        additions (and treat -0.0 as 0.0, without which it will not start a reordered sum from zero)."""
        import tvm

        config = {"kind": "llvm", "mcpu": self.mcpu, "num-cores": self.cores}
        if reassociate:
            config.update({"fast-math-reassoc": True, "fast-math-nsz": True})
        return tvm.target.Target(config)


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


def _usable_cores() -> int:
    env = os.environ.get("TVM_NUM_THREADS")
    if env and env.isdigit() and int(env) > 0:
        return int(env)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


@functools.lru_cache(maxsize=None)
def detect_cpu() -> CpuTarget:
    """Read the host's ISA flags, caches and cores."""
    import tvm

    flags = _cpu_flags()
    vector_bits = 512 if "avx512f" in flags else 256 if "avx2" in flags else 128
    return CpuTarget(
        mcpu=str(tvm.target.codegen.llvm_get_system_cpu()),
        vector_bits=vector_bits,
        cores=_usable_cores(),
        l1_bytes=_cache_bytes(1, "Data") or 32 * 1024,
        l2_bytes=_cache_bytes(2, "Unified") or 1024 * 1024,
        vector_registers=32 if vector_bits == 512 else 16,
    )


def resolve_target(target: Any = None) -> CpuTarget:
    """Accept None (the host), a CpuTarget, a TVM Target, a dict or a string; reject non-LLVM targets.

    An LLVM target without ``mcpu`` gets the host's CPU name, since LLVM would otherwise emit SSE-only code.
    """
    if target is None:
        return detect_cpu()
    if isinstance(target, CpuTarget):
        return target
    import tvm

    try:
        if isinstance(target, str) and not target.strip().startswith("{"):
            kind = target.split()[0]
            if kind != "llvm":
                raise UnsupportedTargetError(f"target {target!r}: only LLVM x86 CPU targets are supported")
            target = {"kind": "llvm"}
        tvm_target = target if isinstance(target, tvm.target.Target) else tvm.target.Target(target)
    except UnsupportedTargetError:
        raise
    except Exception as err:  # TVM raises its own error types for unparsable targets
        raise UnsupportedTargetError(f"target {target!r} could not be parsed by TVM: {err}") from err
    if tvm_target.kind.name != "llvm":
        raise UnsupportedTargetError(
            f"target kind {tvm_target.kind.name!r}: only 'llvm' (x86 CPU) is supported"
        )
    host = detect_cpu()
    mcpu = str(tvm_target.attrs.get("mcpu", "") or "")
    if mcpu in ("", "native"):
        mcpu = host.mcpu
    cores = int(tvm_target.attrs.get("num-cores", 0) or 0) or host.cores
    return CpuTarget(mcpu, host.vector_bits, cores, host.l1_bytes, host.l2_bytes, host.vector_registers)
