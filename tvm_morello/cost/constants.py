"""The constants of the affine cost model, with defaults for an AVX-512 x86 core and JSON persistence."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

CALIBRATED_FILE = Path(__file__).with_name("calibrated.json")


@dataclass(frozen=True)
class CostConstants:
    """Costs in arbitrary units (the calibration fits them in nanoseconds).

    Parameters
    ----------
    global_line : moving one 64-byte line from memory beyond L2 (L3, DRAM) into a cache.
    l2_line : moving one line from L2 into L1.

    The shipped ``calibrated.json`` is a least-squares fit (``scripts/calibrate.py``) from before the L2
    level, when one line cost covered every read from beyond L1 (mostly L2 hits on the calibration shapes):
    that value is ``l2_line``, and ``global_line`` is twice it (Zen 4's L3 feeds a core about half as fast as
    its L2). Refitting both split the line costs the wrong way round (their features are nearly collinear).
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

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> "CostConstants":
        data = json.loads(Path(path).read_text())
        return cls(**{name: float(data[name]) for name in cls.names()})

    @classmethod
    def default(cls) -> "CostConstants":
        """The calibrated constants shipped with the package, else the hand-set ones."""
        return cls.load(CALIBRATED_FILE) if CALIBRATED_FILE.exists() else cls()
