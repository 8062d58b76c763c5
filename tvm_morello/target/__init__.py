"""The machine we synthesise for: a CpuTarget (ISA, caches, cores, micro-kernels, cost constants), the known
CPU models, and the host."""
from .cpu import CpuTarget
from .host import detect_cpu, is_host, named_target, require_host, resolve_target, usable_cores
from .models import KNOWN_CPUS, cpu_model

__all__ = ["KNOWN_CPUS", "CpuTarget", "cpu_model", "detect_cpu", "is_host", "named_target", "require_host",
           "resolve_target", "usable_cores"]
