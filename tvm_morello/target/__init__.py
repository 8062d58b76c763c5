"""The machine we synthesise for: vector width, caches, cores, and its micro-kernels."""
from .cpu import CpuTarget, detect_cpu, resolve_target

__all__ = ["CpuTarget", "detect_cpu", "resolve_target"]
