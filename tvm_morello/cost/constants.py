"""The constants of the affine cost model, the fits shipped for each vector ISA, and their JSON form."""
from __future__ import annotations

import functools
import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

SHIPPED_DIR = Path(__file__).with_name("shipped")
ISAS = ("avx2", "avx512")


@dataclass(frozen=True)
class CostConstants:
    """Costs in arbitrary units (calibration fits them in nanoseconds); the defaults are hand-set.

    Parameters
    ----------
    global_line : moving one 64-byte line from memory beyond L2 (L3, DRAM) into a cache.
    l2_line : moving one line from L2 into L1.
    store_line : writing one output line back to main memory.
    fma_vector : one broadcast-FMA into one output vector register (per k step).
    vector_load : one vector load or broadcast feeding the FMAs (per k step).
    kernel_step : fixed cost of one k step of the register kernel (broadcast + loop).
    vector_op : zeroing or storing one vector register.
    scalar_mac : one scalar multiply-add (the fallback kernel).
    parallel_setup, parallel_iteration : launching a parallel loop, and each of its iterations.
    """

    global_line: float = 20.0
    l2_line: float = 6.0
    store_line: float = 20.0
    fma_vector: float = 1.0
    vector_load: float = 1.0
    kernel_step: float = 1.0
    vector_op: float = 1.0
    scalar_mac: float = 4.0
    parallel_setup: float = 2000.0
    parallel_iteration: float = 20.0

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    def as_vector(self) -> list[float]:
        return [getattr(self, name) for name in self.names()]

    @classmethod
    def from_vector(cls, values) -> "CostConstants":
        return cls(*[float(v) for v in values])

    @classmethod
    def unit(cls, name: str) -> "CostConstants":
        """All zeros but one: folding a program with it counts how often that constant is paid."""
        return cls(**{n: (1.0 if n == name else 0.0) for n in cls.names()})

    def as_dict(self) -> dict[str, float]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "CostConstants":
        return cls(**{name: float(data[name]) for name in cls.names()})


def isa_of(vector_bits: int) -> str:
    """The shipped fit that serves a vector width: AVX-512 for 512 bits, AVX2 below."""
    return "avx512" if vector_bits >= 512 else "avx2"


@functools.lru_cache(maxsize=None)
def shipped_constants(isa: str) -> CostConstants:
    """The fit shipped for ``isa`` (``scripts/calibrate.py --isa``): what a host without its own
    calibration uses; ``shipped/<isa>.json`` says which machine it was fitted on."""
    if isa not in ISAS:
        raise ValueError(f"isa {isa!r}: shipped cost constants exist for {ISAS}")
    return CostConstants.from_dict(json.loads((SHIPPED_DIR / f"{isa}.json").read_text())["constants"])
