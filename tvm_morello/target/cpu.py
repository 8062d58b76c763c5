"""An x86 CPU as the search sees it: vector ISA, registers, caches, cores, micro-kernels and cost constants."""
from __future__ import annotations

from dataclasses import dataclass, field, replace

from ..cost.constants import CostConstants, isa_of, shipped_constants
from ..errors import UnsupportedTargetError
from ..spec import MemoryLimits

LINE_BYTES = 64
VECTOR_BITS = (256, 512)


@dataclass(frozen=True)
class CpuTarget:
    """What synthesis, lowering and building need to know about one x86 CPU; every fact is explicit.

    Parameters
    ----------
    mcpu : LLVM CPU name (e.g. ``znver4``); without it LLVM emits SSE-only code.
    vector_bits : widest SIMD register the code may use: 512 (AVX-512) or 256 (AVX2 + FMA).
    cores : cores the kernels run on (TVM's ``num-cores``; TVM_NUM_THREADS at run time).
    l1_bytes, l2_bytes : per-core data cache sizes.
    vector_registers : architectural SIMD registers; 0 means the ISA's (32 zmm with AVX-512, 16 ymm with AVX2).
    stream_bytes_in_flight : bytes of one core's loads under way that read memory beyond L2 at its full speed
        (Little's law: latency x bandwidth); a kernel whose sums depend on fewer waits on them instead.
    constants : the affine cost model's constants for this CPU; None means the ISA's shipped fit.
    """

    mcpu: str
    vector_bits: int
    cores: int
    l1_bytes: int
    l2_bytes: int
    vector_registers: int = 0
    # a 4-cycle FMA chain x ~32 B per cycle of one core's L3 stream (Zen 4: two zmm chains per weight row of a
    # GEMV read 0.83-0.90 of the probe's bandwidth, one 0.70-0.75 and four 0.78-0.82)
    stream_bytes_in_flight: int = 128
    constants: CostConstants | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.vector_bits not in VECTOR_BITS:
            raise UnsupportedTargetError(
                f"{self.mcpu}: vector_bits={self.vector_bits}; supported are 256 (AVX2 + FMA) and 512 (AVX-512)")
        if self.cores < 1:
            raise UnsupportedTargetError(f"{self.mcpu}: cores={self.cores}; need at least one core")
        if self.l1_bytes < 4096 or self.l2_bytes < self.l1_bytes:
            raise UnsupportedTargetError(
                f"{self.mcpu}: l1_bytes={self.l1_bytes}, l2_bytes={self.l2_bytes}; need L1 >= 4 KB and L2 >= L1")
        if self.vector_registers == 0:
            object.__setattr__(self, "vector_registers", 32 if self.vector_bits == 512 else 16)
        if self.constants is None:
            object.__setattr__(self, "constants", shipped_constants(self.isa))

    @property
    def isa(self) -> str:
        """``avx512`` or ``avx2``: which shipped cost constants serve this CPU."""
        return isa_of(self.vector_bits)

    @property
    def isa_name(self) -> str:
        return {"avx512": "AVX-512", "avx2": "AVX2"}[self.isa]

    @property
    def identity(self) -> str:
        """What a calibration is valid for: model name, ISA and caches (not cores, which a fit's samples record)."""
        return f"{self.mcpu}-{self.isa}-l1_{self.l1_bytes // 1024}k-l2_{self.l2_bytes // 1024}k"

    @property
    def kernels(self):
        """The micro-kernels the DP may select on this CPU, in preference order on equal cost."""
        from .kernels import KERNELS

        return KERNELS

    def lanes(self, dtype_bytes: int = 4) -> int:
        """Elements of one vector register."""
        return self.vector_bits // 8 // dtype_bytes

    def memory_limits(self) -> MemoryLimits:
        """The memory a root spec may use: all vector registers and one core's L1, in lines."""
        return MemoryLimits(self.vector_registers, self.l1_bytes // LINE_BYTES)

    def with_constants(self, constants: CostConstants) -> "CpuTarget":
        return replace(self, constants=constants)

    def with_cores(self, cores: int) -> "CpuTarget":
        return replace(self, cores=cores)

    def describe(self) -> str:
        """One line naming every fact a figure measured on this CPU depends on."""
        return (f"{self.mcpu} ({self.isa_name}, {self.vector_registers} vector registers, "
                f"L1 {self.l1_bytes // 1024} KB, L2 {self.l2_bytes // 1024} KB per core, {self.cores} cores)")

    def tvm_target(self, *, reassociate: bool = False):
        """The TVM target in the dict form TVM 0.27 requires; ``reassociate`` lets LLVM reorder float
        additions (and treat -0.0 as 0.0, without which it will not start a reordered sum from zero)."""
        import tvm

        config = {"kind": "llvm", "mcpu": self.mcpu, "num-cores": self.cores}
        if reassociate:
            config.update({"fast-math-reassoc": True, "fast-math-nsz": True})
        return tvm.target.Target(config)
