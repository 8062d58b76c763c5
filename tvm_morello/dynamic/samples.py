"""tune-dynamic's measurements as samples of the stored calibration: each micro-kernel run at one shape is the
Morello program with that kernel's loop nest, so the affine model's constants learn from it like from the
static DP's programs (``tvm-morello calibrate``, MorelloSearch)."""
from __future__ import annotations

import logging
from typing import Mapping, Sequence

from ..codegen.kernel_funcs import dot_parallel_over_batch
from ..codegen.microkernel import MicroKernel
from ..cost.store import Sample, refit
from ..measure.kernels import Measurement
from ..search import Program, Synthesizer
from ..search.rewrites import PackRhs, RegisterOut, TileOut
from ..spec import COL, ROW, Matmul, matmul_spec, panel
from ..spec.symbolic import DynamicWorkload
from ..target import CpuTarget

logger = logging.getLogger(__name__)
SOURCE = "tune-dynamic"


def concrete_spec(workload: DynamicWorkload, env: Mapping[str, int], weight_panel: int, target: CpuTarget) -> Matmul:
    """The static spec of one call: a constant weight arrives in its ``weight_panel``-wide panels."""
    b, m, k, n = workload.dims(env)
    if workload.constant_b:
        rhs = panel(weight_panel)
    else:
        rhs = COL if workload.transpose_b else ROW
    return matmul_spec(m, k, n, b=b, rhs_layout=rhs, target=target)


def microkernel_path(workload: DynamicWorkload, micro: MicroKernel, spec: Matmul, target: CpuTarget) -> list:
    """The rewrites of ``codegen.loop_plan.microkernel_plan`` on a concrete spec, down to the register tile.

    Outer-product form: the (batch, column tile) loop (parallel unless the kernel is serial), B's tile packed
    under it when the kernel packs activations, the row tiles, the register tile. Dot form: the (batch, row
    tile) loop, the column tiles, the register tile. A partial row tile is padded to MR as the kernel pads it;
    a parallel kernel's loop is kept even with one iteration (it still wakes the thread pool)."""
    packs = not micro.dot and not workload.constant_b and workload.packs_b()
    if micro.dot:
        over_batch_only = dot_parallel_over_batch(workload, target.cores) and micro.parallel
        outer = TileOut(1, spec.m if over_batch_only else micro.mr, spec.n, parallel=micro.parallel)
        inner = TileOut(1, micro.mr, micro.nr)
        path = [outer] if micro.parallel or outer.iterations(spec) > 1 else []
        path += [inner] if (outer.m, outer.n) != (inner.m, inner.n) else []
    else:
        outer = TileOut(1, spec.m, micro.nr, parallel=micro.parallel)
        path = [outer] if micro.parallel or outer.iterations(spec) > 1 else []
        path += [PackRhs(micro.nr)] if packs else []
        path += [TileOut(1, micro.mr, micro.nr)] if spec.m != micro.mr else []
    return path + [RegisterOut(dot=micro.dot)]


def microkernel_program(synthesizer: Synthesizer, workload: DynamicWorkload, micro: MicroKernel,
                        env: Mapping[str, int], weight_panel: int) -> Program | None:
    """The program a micro-kernel runs at ``env`` as the cost model sees it (None: the model cannot express it)."""
    target = synthesizer.target
    spec = concrete_spec(workload, env, weight_panel, target)
    try:
        return synthesizer.follow(spec, microkernel_path(workload, micro, spec, target))
    except (ValueError, ArithmeticError) as err:  # e.g. a register tile larger than the limits allow
        logger.info("%s: no program for %s at %s (%s)", workload.name, micro.key, dict(env), err)
        return None


def measurement_samples(workload: DynamicWorkload, weight_panel: int, measurements: Sequence[Measurement],
                        target: CpuTarget) -> list[Sample]:
    """One sample per measured run the cost model can express, grouped by call shape (the runs of one shape
    compete, as a static workload's programs do)."""
    synthesizer = Synthesizer(target)
    samples = []
    for run in measurements:
        program = microkernel_program(synthesizer, workload, run.micro, run.env_dict, weight_panel)
        if program is not None:
            group = f"{workload.name}{workload.dims(run.env_dict)}"
            samples.append(Sample.of(group, program, run.seconds, target, SOURCE))
    return samples


def store_measurements(workload: DynamicWorkload, weight_panel: int, measurements: Sequence[Measurement],
                       target: CpuTarget) -> None:
    """Add the runs to the stored calibration of ``target``'s CPU and refit it; a failure costs only the refit."""
    try:
        samples = measurement_samples(workload, weight_panel, measurements, target)
        if samples:
            refit(target.identity, target.isa, samples, SOURCE)
    except Exception:  # noqa: BLE001 - the tune's results stand without it
        logger.exception("could not add %d runs of %s to the calibration of %s", len(measurements), workload.name,
                         target.identity)
