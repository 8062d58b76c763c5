"""Wall-clock measurement of compiled static kernels, checked against numpy first, and of numpy itself in a separate
process (their thread pools contend)."""
from __future__ import annotations

import numpy as np

from ..errors import MorelloError, VerificationError
from ..spec.operators import Workload
from .numpy_timer import NumpyTimer


def build_all(schedules, target) -> list:
    """Compile schedules for ``target`` in one worker process per usable core (building takes longer than timing)
    and load them; MorelloError if any fails to build."""
    import tvm
    from tvm.s_tir.meta_schedule.builder import BuilderInput

    from ..target import usable_cores
    from .builder import FastBuilder, remove_export

    builder = FastBuilder(max_workers=usable_cores())
    try:
        results = builder.build([BuilderInput(s.mod, target.tvm_target()) for s in schedules])
    finally:
        builder.close()
    try:
        failed = [r.error_msg for r in results if r.error_msg is not None]
        if failed:
            raise MorelloError(f"{len(failed)} of {len(results)} programs failed to build; first: {failed[0]}")
        return [tvm.runtime.load_module(r.artifact_path) for r in results]
    finally:
        for result in results:
            remove_export(result.artifact_path)


def time_kernel(lib, arrays, output_shape, repeat: int = 5, min_seconds: float = 0.2) -> float:
    """Median seconds per call of a compiled module's ``main`` (tvm time_evaluator)."""
    import tvm

    dev = tvm.cpu()
    args = [tvm.runtime.tensor(a, dev) for a in arrays] + [tvm.runtime.tensor(np.zeros(output_shape, "float32"), dev)]
    timer = lib.time_evaluator("main", dev, number=1, repeat=repeat, min_repeat_ms=int(min_seconds * 1000 / repeat))
    return float(np.median(timer(*args).results))


def numpy_seconds(input_shapes, transpose_b: bool) -> float:
    """Seconds per call of numpy's matmul (OpenBLAS) on these shapes, timed in a process of its own."""
    with NumpyTimer() as numpy_timer:
        return numpy_timer.time(*input_shapes, transpose_b)


def numpy_gflops(input_shapes, transpose_b: bool, flops: int) -> float:
    """GFLOP/s of numpy's matmul (OpenBLAS) on the same shapes, timed in a fresh process."""
    return flops / numpy_seconds(input_shapes, transpose_b) / 1e9


def check_built(workload: Workload, lib, program=None) -> None:
    """Run a built kernel once on random inputs; VerificationError (naming ``program``) unless it matches numpy.

    The reference runs on one BLAS thread: OpenBLAS's threads spin for a while after a call, and on 2 cores
    they slowed a timing that followed 10-60x."""
    import tvm
    from threadpoolctl import threadpool_limits

    arrays = workload.random_inputs()
    with threadpool_limits(1, user_api="blas"):
        expected = workload.reference(*arrays)
    dev = tvm.cpu()
    out = tvm.runtime.tensor(np.zeros(workload.output_shape, "float32"), dev)
    lib["main"](*[tvm.runtime.tensor(a, dev) for a in arrays], out)
    if not np.allclose(out.numpy(), expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max()):
        raise VerificationError(f"{workload.name}: program disagrees with numpy:\n{program.render() if program else ''}")


def time_programs(workload: Workload, schedules, target, programs=None, *, rounds: int = 3,
                  min_seconds: float = 0.2) -> list[float]:
    """Build ``schedules`` for ``target`` (a CpuTarget this host runs) in parallel, then ``time_built``."""
    return time_built(workload, build_all(schedules, target), programs, rounds=rounds, min_seconds=min_seconds)


def time_built(workload: Workload, libs, programs=None, *, rounds: int = 3, min_seconds: float = 0.2) -> list[float]:
    """Check each built kernel against numpy and return its seconds per call: the median of ``rounds`` timings
    taken in turn, so that a slow moment of the machine does not fall on one program alone."""
    for lib, program in zip(libs, programs or [None] * len(libs)):
        check_built(workload, lib, program)
    arrays = workload.random_inputs()
    samples = [[time_kernel(lib, arrays, workload.output_shape, min_seconds=min_seconds) for lib in libs]
               for _ in range(rounds)]
    return [float(np.median(column)) for column in zip(*samples)]
