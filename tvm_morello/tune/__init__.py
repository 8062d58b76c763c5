"""Plugging tvm-morello into meta-schedule: the MorelloSearch strategy and its design space, a fast builder, and
``tune``."""
from ..measure.builder import FastBuilder, build_module, export_module, fast_builder
from .entry import tune
from .intrinsics import cpu_tensor_intrinsics_only
from .space import MorelloSpace
from .strategy import MorelloSearch
from .workdir import repair_work_dir

__all__ = [
    "FastBuilder",
    "MorelloSearch",
    "MorelloSpace",
    "build_module",
    "cpu_tensor_intrinsics_only",
    "export_module",
    "fast_builder",
    "repair_work_dir",
    "tune",
]
