"""What the hardware allows, measured on the host: the FMA peak and the read bandwidth of a footprint.

A benchmark compares a runtime against these to say how far from the machine's limit it is, and so how much
faster than an anchor any implementation could be (a ratio target above that is beyond the hardware)."""
from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path


def fma_peak_gflops() -> tuple[float | None, str | None]:
    """The FMA peak in the host's widest ISA (``fma_peak.c`` picks AVX-512 or AVX2 at run time), and that ISA."""
    source = Path(__file__).with_name("fma_peak.c")
    binary = Path(tempfile.mkdtemp()) / "fma_peak"
    try:
        subprocess.run(["gcc", "-O3", "-fopenmp", str(source), "-o", str(binary)], check=True)
        out = subprocess.run([str(binary)], capture_output=True, text=True, check=True).stdout.split()
        return float(out[0]), out[1]
    except (OSError, subprocess.CalledProcessError, IndexError, ValueError) as err:
        print(f"no FMA peak: {err}", file=sys.stderr)
        return None, None


def row_sum_timer(rows: int, cols: int):
    """A function timing one parallel, vectorised sum over every row of an fp32 [rows, cols] array (the weight
    footprint of a GEMV or a model) like a kernel, in seconds: the array stays where repeated calls leave it (L3
    or DRAM). Its read bandwidth is the probe's."""
    import tvm_morello  # before tvm: sets its thread count

    import numpy as np
    import tvm
    from tvm import te

    cpu = tvm_morello.resolve_target(None)
    w = te.placeholder((rows, cols), name="W")
    k = te.reduce_axis((0, cols), "k")
    out = te.compute((rows,), lambda i: te.sum(w[i, k], axis=k), name="S")
    sch = tvm.s_tir.Schedule(te.create_prim_func([w, out]))
    block = sch.get_sblock("S")
    i, kk = sch.get_loops(block)
    sch.parallel(i)
    ko, ki = sch.split(kk, [None, cpu.lanes()])
    rf = sch.rfactor(ki, 1)
    sch.vectorize(sch.get_loops(rf)[-1])
    lib = tvm.compile(sch.mod, target=cpu.tvm_target())
    dev = tvm.cpu()
    args = [tvm.runtime.tensor(np.ones((rows, cols), "float32"), dev), tvm.runtime.tensor(np.zeros(rows, "float32"), dev)]
    timer = lib.mod.time_evaluator("main", dev, number=5, repeat=5, min_repeat_ms=50)
    return lambda: min(timer(*args).results)


def read_bandwidth(rows: int, cols: int) -> float:
    """Bytes per second ``row_sum_timer`` reads."""
    return rows * cols * 4 / row_sum_timer(rows, cols)()


def read_bandwidth_in_own_process(rows: int, cols: int) -> float:
    """``read_bandwidth`` in a process of its own (like every other timing of the benchmarks)."""
    code = (f"import sys; sys.path.insert(0, {str(Path(__file__).resolve().parent)!r}); import roofline; "
            f"print(roofline.read_bandwidth({rows}, {cols}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])
