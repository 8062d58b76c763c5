"""Measure micro-kernels at concrete shapes through meta-schedule's builder and runner; keep the records."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from ..errors import MorelloError
from ..target import CpuTarget
from .kernels import kernel_panel, kernel_schedule, kernel_target, kernel_workload_mod
from .microkernels import MicroKernel
from .shapes import DynamicWorkload


@dataclass(frozen=True)
class Measurement:
    """One micro-kernel run at one assignment of the symbolic variables."""

    micro: MicroKernel
    env: tuple[tuple[str, int], ...]
    seconds: float
    gflops: float

    @property
    def env_dict(self) -> dict[str, int]:
        return dict(self.env)


def arg_shapes(workload: DynamicWorkload, micro: MicroKernel, panel: int, env: Mapping[str, int]) -> list[tuple[int, ...]]:
    """Concrete shapes of the kernel's parameters (A, B as the kernel takes it, output)."""
    a_shape, b_shape = workload.input_shapes(env)
    if workload.constant_b:
        b, _, k, n = workload.dims(env)
        width = kernel_panel(workload, micro, panel)
        b_shape = ((b,) if workload.batch else ()) + (-(-n // width), k, width)
    return [a_shape, b_shape, workload.output_shape(env)]


class KernelMeasurer:
    """Builds each micro-kernel once (symbolic), runs it at concrete shapes, commits every run to a
    meta-schedule ``JSONDatabase`` in ``work_dir`` (workload = the unscheduled symbolic PrimFunc)."""

    def __init__(self, target: CpuTarget, work_dir: str | Path, *, number: int = 3, repeat: int = 3,
                 min_repeat_ms: int = 40, timeout_s: float = 120.0):
        from tvm.s_tir import meta_schedule as ms

        from ..tune.builder import FastBuilder

        self.target = target
        self.work_dir = Path(work_dir)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.database = ms.database.JSONDatabase(work_dir=str(self.work_dir))
        self.builder = FastBuilder(timeout_s=timeout_s)
        config = ms.runner.EvaluatorConfig(number=number, repeat=repeat, min_repeat_ms=min_repeat_ms,
                                           enable_cpu_cache_flush=False)
        self.runner = ms.runner.LocalRunner(timeout_sec=timeout_s, evaluator_config=config)

    def measure(self, workload: DynamicWorkload, panel: int,
                jobs: Sequence[tuple[MicroKernel, Mapping[str, int]]], progress=None) -> list[Measurement]:
        """Run every (micro-kernel, shape) job; a kernel that fails to build or run raises MorelloError."""
        from tvm.s_tir import meta_schedule as ms

        micros = sorted({micro for micro, _ in jobs})
        schedules = {micro: kernel_schedule(workload, micro, panel, self.target) for micro in micros}
        built = self.builder.build([ms.builder.BuilderInput(schedules[mk].mod, kernel_target(mk, self.target))
                                    for mk in micros])
        artifacts = {}
        for micro, result in zip(micros, built):
            if result.error_msg:
                raise MorelloError(f"{workload.name}: micro-kernel {micro.key} failed to build: {result.error_msg}")
            artifacts[micro] = result.artifact_path
        inputs, infos = [], []
        for micro, env in jobs:
            info = [ms.arg_info.TensorInfo("float32", shape) for shape in arg_shapes(workload, micro, panel, env)]
            infos.append(info)
            inputs.append(ms.runner.RunnerInput(artifacts[micro], "cpu", info))
        measurements = []
        for (micro, env), info, future in zip(jobs, infos, self.runner.run(inputs)):
            result = future.result()
            if result.error_msg:
                raise MorelloError(f"{workload.name}: {micro.key} at {dict(env)} failed to run: {result.error_msg}")
            secs = [float(s) for s in result.run_secs]
            seconds = min(secs)
            self._commit(kernel_workload_mod(workload, micro, panel, self.target), schedules[micro], secs, info,
                         kernel_target(micro, self.target))
            measurements.append(Measurement(micro, tuple(sorted(env.items())), seconds,
                                            workload.flops(env) / seconds / 1e9))
            if progress is not None:
                progress.update(1)
        return measurements

    def _commit(self, workload_mod, sch, run_secs: list[float], info, tvm_target) -> None:
        from tvm import tirx
        from tvm.s_tir import meta_schedule as ms

        workload = self.database.commit_workload(workload_mod)
        record = ms.database.TuningRecord(sch.trace, workload, [tirx.FloatImm("float32", s) for s in run_secs],
                                          tvm_target, info)
        self.database.commit_tuning_record(record)
