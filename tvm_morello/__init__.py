"""tvm-morello: Morello-style DP synthesis and DietCode-style dynamic shapes as a TVM auto-scheduler."""
from ._env import configure_threads

configure_threads()

from .errors import (  # noqa: E402
    InvalidShapeError,
    MorelloError,
    UnsupportedDtypeError,
    UnsupportedOperatorError,
    UnsupportedTargetError,
    VerificationError,
)
from .target import CpuTarget, detect_cpu, resolve_target  # noqa: E402

__all__ = [
    "CpuTarget",
    "InvalidShapeError",
    "MorelloError",
    "UnsupportedDtypeError",
    "UnsupportedOperatorError",
    "UnsupportedTargetError",
    "VerificationError",
    "detect_cpu",
    "resolve_target",
]
