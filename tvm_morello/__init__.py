"""tvm-morello: Morello-style DP synthesis and DietCode-style dynamic shapes as a TVM auto-scheduler."""
from ._env import configure_threads

configure_threads()

from .errors import (  # noqa: E402
    InvalidShapeError,
    InvalidWeightsError,
    MorelloError,
    UnsupportedDtypeError,
    UnsupportedOperatorError,
    UnsupportedTargetError,
    VerificationError,
)
from .target import CpuTarget, detect_cpu, resolve_target  # noqa: E402

# Heavier entry points load on first use, so `import tvm_morello` stays cheap (meta-schedule is slow to import).
_LAZY = {
    "synthesize": "tvm_morello.search",
    "candidate_schedules": "tvm_morello.codegen",
    "MorelloSearch": "tvm_morello.tune",
    "compile_model": "tvm_morello.model",
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'tvm_morello' has no attribute {name!r}")


__all__ = [
    "CpuTarget",
    "InvalidShapeError",
    "InvalidWeightsError",
    "MorelloError",
    "MorelloSearch",
    "UnsupportedDtypeError",
    "UnsupportedOperatorError",
    "UnsupportedTargetError",
    "VerificationError",
    "candidate_schedules",
    "compile_model",
    "detect_cpu",
    "resolve_target",
    "synthesize",
]
