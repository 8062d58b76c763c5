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
    lane_sum : summing one output's vector of partial sums across its lanes (the dot form's store).
    dot_fma : one lane-wise FMA of the dot form (per output, per k-vector): its operands are whole vectors of
        separate lhs and rhs lines, where the outer-product form broadcasts one lhs float over a panel line.
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
    lane_sum: float = 4.0
    dot_fma: float = 1.125

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
        """Constants from their JSON form; a fit made before a constant existed gets it derived from the others."""
        values = {name: float(data[name]) for name in cls.names() if name in data}
        for name, derive in _DERIVED_WHEN_MISSING.items():
            values.setdefault(name, derive(values))
        return cls(**values)


def _get(values: dict, name: str) -> float:
    return values.get(name, getattr(CostConstants, name))


# A lane sum of a 16-lane vector is four shuffle-and-add steps: about four vector ops. A dot-form FMA costs an
# eighth of a vector load more than an outer-product one: on Emerald Rapids a 4 x 4 dot tile ran dense
# 128x768x768 at 225 GFLOP/s, the 4 x 64 outer-product tile at 277, both loading one vector per two FMAs.
# Calibration fits both; these only serve fits made before the dot form existed.
_DERIVED_WHEN_MISSING = {
    "lane_sum": lambda values: 4.0 * _get(values, "vector_op"),
    "dot_fma": lambda values: _get(values, "fma_vector") + _get(values, "vector_load") / 8,
}


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
