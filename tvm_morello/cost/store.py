"""Cost constants fitted on one CPU, kept per CPU identity in the user's cache directory together with the
measurements they were fitted on, so that every later run that measures refits them with its own."""
from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

from .constants import CostConstants, shipped_constants
from .fit import fit_features, program_features

logger = logging.getLogger(__name__)

CACHE_DIR_ENV = "TVM_MORELLO_CACHE_DIR"
MAX_SAMPLES = 4000  # the most recent measurements kept per CPU (a refit takes milliseconds)


def cache_dir() -> Path:
    """``$TVM_MORELLO_CACHE_DIR``, else ``$XDG_CACHE_HOME/tvm-morello``, else ``~/.cache/tvm-morello``."""
    if os.environ.get(CACHE_DIR_ENV):
        return Path(os.environ[CACHE_DIR_ENV])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tvm-morello"


def fit_path(identity: str) -> Path:
    return cache_dir() / "calibration" / f"{identity}.json"


@dataclass(frozen=True)
class Sample:
    """One measured program: how often it pays each constant (``program_features``) and its median seconds."""

    workload: str
    features: tuple[float, ...]
    seconds: float
    source: str

    @classmethod
    def of(cls, workload: str, program, seconds: float, target, source: str) -> "Sample":
        """A measured ``program`` (a search Program) on ``target`` (a CpuTarget) as a sample."""
        return cls(workload, tuple(map(float, program_features(program, target))), float(seconds), source)

    @property
    def key(self) -> tuple:
        """Programs with equal features on one workload are the same row of the fit: the newest one counts."""
        return (self.workload, tuple(round(f, 6) for f in self.features))


@dataclass(frozen=True)
class StoredFit:
    """The constants fitted for one CPU identity, the samples behind them, and which runs contributed."""

    identity: str
    isa: str
    constants: CostConstants
    samples: tuple[Sample, ...]
    sources: tuple[str, ...]
    updated: str

    def to_json(self) -> dict:
        return {"identity": self.identity, "isa": self.isa, "updated": self.updated, "sources": list(self.sources),
                "constants": self.constants.as_dict(),
                "samples": [{"workload": s.workload, "features": list(s.features), "seconds": s.seconds,
                             "source": s.source} for s in self.samples]}

    @classmethod
    def from_json(cls, data: dict) -> "StoredFit":
        samples = tuple(Sample(s["workload"], tuple(float(f) for f in s["features"]), float(s["seconds"]), s["source"])
                        for s in data["samples"])
        return cls(data["identity"], data["isa"], CostConstants.from_dict(data["constants"]), samples,
                   tuple(data["sources"]), data["updated"])


def load_fit(identity: str) -> StoredFit | None:
    """The stored fit for ``identity``; None if there is none or it cannot be read (a warning says why)."""
    path = fit_path(identity)
    if not path.exists():
        return None
    try:
        return StoredFit.from_json(json.loads(path.read_text()))
    except (OSError, ValueError, KeyError, TypeError) as err:
        logger.warning("ignoring the unreadable calibration %s (%s: %s); `tvm-morello calibrate` rewrites it",
                       path, type(err).__name__, err)
        return None


def save_fit(fit: StoredFit) -> Path:
    """Write atomically: a reader in another process sees the old file or the new one, never half of one."""
    path = fit_path(fit.identity)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp", delete=False) as handle:
        json.dump(fit.to_json(), handle, indent=1)
    os.replace(handle.name, path)
    return path


def refit(identity: str, isa: str, samples: Sequence[Sample], source: str, *, replace_stored: bool = False) -> StoredFit:
    """Merge ``samples`` into the stored ones (or replace them), refit on all of them, save and return the fit.

    The prior is the ISA's shipped fit, so constants the samples do not pin down stay where it put them.
    """
    if not samples:
        raise ValueError(f"refit of {identity}: no samples")
    stored = None if replace_stored else load_fit(identity)
    merged = {s.key: s for s in (stored.samples if stored else ())}
    for sample in samples:  # re-measured programs move to the end: the newest samples are the ones kept
        merged.pop(sample.key, None)
        merged[sample.key] = sample
    kept = list(merged.values())[-MAX_SAMPLES:]
    constants = fit_features([s.features for s in kept], [s.seconds for s in kept], shipped_constants(isa),
                             groups=[s.workload for s in kept])
    sources = tuple(dict.fromkeys([*(stored.sources if stored else ()), source]))
    fit = StoredFit(identity, isa, constants, tuple(kept), sources, datetime.now(timezone.utc).isoformat(timespec="seconds"))
    save_fit(fit)
    return fit
