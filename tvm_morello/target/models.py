"""Known x86 CPUs by LLVM name: their vector ISA and per-core caches, so a target can name a CPU it is not on."""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import UnsupportedTargetError
from .cpu import CpuTarget

KB = 1024


@dataclass(frozen=True)
class CpuModel:
    """The facts of one CPU model that do not vary between machines (cores do)."""

    vector_bits: int
    l1_bytes: int
    l2_bytes: int


KNOWN_CPUS: dict[str, CpuModel] = {
    # Intel client and AVX2 server cores
    "haswell": CpuModel(256, 32 * KB, 256 * KB),
    "broadwell": CpuModel(256, 32 * KB, 256 * KB),
    "skylake": CpuModel(256, 32 * KB, 256 * KB),
    "alderlake": CpuModel(256, 48 * KB, 1280 * KB),  # P-cores; AVX-512 is fused off
    # Intel AVX-512 server cores
    "skylake-avx512": CpuModel(512, 32 * KB, 1024 * KB),
    "cascadelake": CpuModel(512, 32 * KB, 1024 * KB),
    "cooperlake": CpuModel(512, 32 * KB, 1024 * KB),
    "icelake-server": CpuModel(512, 48 * KB, 1280 * KB),
    "sapphirerapids": CpuModel(512, 48 * KB, 2048 * KB),
    "emeraldrapids": CpuModel(512, 48 * KB, 2048 * KB),
    "graniterapids": CpuModel(512, 48 * KB, 2048 * KB),
    # AMD
    "znver2": CpuModel(256, 32 * KB, 512 * KB),
    "znver3": CpuModel(256, 32 * KB, 512 * KB),
    "znver4": CpuModel(512, 32 * KB, 1024 * KB),
    "znver5": CpuModel(512, 48 * KB, 1024 * KB),
}


def cpu_model(mcpu: str, cores: int) -> CpuTarget:
    """The CpuTarget of a known CPU with ``cores`` cores and the ISA's shipped cost constants."""
    model = KNOWN_CPUS.get(mcpu)
    if model is None:
        raise UnsupportedTargetError(
            f"mcpu {mcpu!r} is not a known CPU (known: {', '.join(sorted(KNOWN_CPUS))}); describe it with "
            f"tvm_morello.CpuTarget(mcpu, vector_bits, cores, l1_bytes, l2_bytes)")
    return CpuTarget(mcpu, model.vector_bits, cores, model.l1_bytes, model.l2_bytes)
