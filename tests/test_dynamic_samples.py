"""tune-dynamic's runs as calibration samples: each micro-kernel at one shape is the Morello program with its
loop nest, and the runs join the stored calibration of the CPU (named targets, no measurement)."""
import tvm_morello  # noqa: F401  (before tvm)

import pytest

from tvm_morello import dynamic as dyn
from tvm_morello.cost.store import load_fit
from tvm_morello.dynamic.candidates import dot_microkernels, hardware_microkernels, serial_microkernels
from tvm_morello.dynamic.samples import SOURCE, measurement_samples, microkernel_program, store_measurements
from tvm_morello.measure.kernels import Measurement
from tvm_morello.search import Synthesizer


def _workloads():
    return [dyn.dense(96, 256, (1, 64), name="d"),
            dyn.batch_matmul(16, "T", 64, "T", {"T": (1, 40)}, name="qk"),
            dyn.batch_matmul(16, "T", "T", 64, {"T": (1, 40)}, transpose_b=False, name="av")]


def _micros(workload, cpu):
    micros = hardware_microkernels(cpu) + serial_microkernels(cpu)
    return micros + (dot_microkernels() if workload.transpose_b and not workload.constant_b else [])


@pytest.mark.parametrize("value", [1, 5, 37])
def test_each_microkernel_is_a_program_with_its_loop_nest(cpu, value):
    synthesizer, panel = Synthesizer(cpu), 4 * cpu.lanes()
    for workload in _workloads():
        env = {name: value for name in workload.var_names}
        expressed = 0
        for micro in _micros(workload, cpu):
            program = microkernel_program(synthesizer, workload, micro, env, panel)
            if program is None:
                assert micro.accumulators(cpu.lanes()) > 4, micro  # small tiles always fit the model's registers
                continue
            expressed += 1
            assert program.register_tile() == (micro.mr, micro.nr)  # a partial row tile padded to MR, like the kernel
            assert program.kernel == ("dot" if micro.dot else "broadcast_fma")
            packs = not micro.dot and not workload.constant_b and workload.packs_b()
            assert program.packs_rhs == (micro.nr if packs else 0)
            assert bool(program.configuration()[2]) == micro.parallel  # a parallel loop exactly when the kernel has one
            b, m, k, n = workload.dims(env)
            assert (program.spec.b, program.spec.m, program.spec.k, program.spec.n) == (b, m, k, n)
        assert expressed >= len(_micros(workload, cpu)) - 2


def test_runs_join_the_stored_calibration_of_the_cpu(cpu):
    workload = dyn.dense(96, 256, (1, 64), name="d")
    panel = 4 * cpu.lanes()
    micros = [m for m in hardware_microkernels(cpu) if m.accumulators(cpu.lanes()) <= 4][:3]
    runs = [Measurement(micro, (("m", m),), 1e-6 * (1 + i + m / 8), 1.0)
            for i, micro in enumerate(micros) for m in (1, 8, 64)]
    samples = measurement_samples(workload, panel, runs, cpu)
    assert len(samples) == len(runs) and {s.workload for s in samples} == {"d(1, 1, 256, 96)", "d(1, 8, 256, 96)",
                                                                           "d(1, 64, 256, 96)"}
    assert load_fit(cpu.identity) is None
    store_measurements(workload, panel, runs, cpu)
    fit = load_fit(cpu.identity)
    assert fit.sources == (SOURCE,) and len(fit.samples) == len(runs)
    assert fit.constants != cpu.constants
    store_measurements(workload, panel, runs[:2], cpu)  # the same runs again replace, never duplicate, their samples
    assert len(load_fit(cpu.identity).samples) == len(runs)
