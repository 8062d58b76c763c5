"""Let meta-schedule register only CPU tensor intrinsics: it imports the GPU ones too, ~15-30 s per process."""
from __future__ import annotations

import contextlib
import sys
import types

PACKAGE = "tvm.s_tir.tensor_intrin"
GPU_INTRINSIC_MODULES = ("cuda", "rocm", "metal", "hexagon")


@contextlib.contextmanager
def cpu_tensor_intrinsics_only():
    """Inside the block, ``import tvm.s_tir.tensor_intrin`` registers the x86/ARM/RISC-V intrinsics only.

    ``TuneContext`` imports that package on creation; its CUDA part alone takes most of the time and CPU
    schedules never use it. The GPU submodules are stood in for by empty placeholders while the block
    runs and forgotten afterwards, so an explicit ``import tvm.s_tir.tensor_intrin.cuda`` later still
    loads the real module. Does nothing if the package was imported already.
    """
    if PACKAGE in sys.modules:
        yield
        return
    placeholders = {}
    for name in GPU_INTRINSIC_MODULES:
        full_name = f"{PACKAGE}.{name}"
        if full_name not in sys.modules:
            placeholders[full_name] = sys.modules[full_name] = types.ModuleType(full_name, "placeholder")
    try:
        yield
    finally:
        package = sys.modules.get(PACKAGE)
        for full_name, placeholder in placeholders.items():
            if sys.modules.get(full_name) is placeholder:
                del sys.modules[full_name]
            short = full_name.rsplit(".", 1)[1]
            if package is not None and getattr(package, short, None) is placeholder:
                delattr(package, short)
