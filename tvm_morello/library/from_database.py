"""A dispatching library from the records a meta-schedule search of a symbolic PrimFunc left: their run
times feed the throughput model and set cover, their traces are the kernels."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

from ..codegen.microkernel import record_microkernel
from ..dynamic.config import TuningConfig
from ..dynamic.planning import plan_from_measurements
from ..errors import MorelloError
from ..measure.kernels import Measurement
from ..measure.records import records_of, shapes_of
from ..spec.symbolic import DynamicWorkload, VarRange
from ..target import resolve_target
from ..tune.symbolic import symbolic_workload


def records_by_kernel(database, prim_func, workload: DynamicWorkload) -> tuple[list[Measurement], dict]:
    """Measurements from every annotated record of ``prim_func`` (the symbolic workload), and for each
    micro-kernel the trace of its first record."""
    import tvm

    measurements, traces = [], {}
    for record in records_of(database, tvm.IRModule({"main": prim_func})):
        micro = record_microkernel(record)
        if micro is None or not record.run_secs:
            continue
        shapes = shapes_of(record.args_info)
        env = _env_from_shapes(workload, shapes[0], shapes[2], shapes[1])
        seconds = min(float(s) for s in record.run_secs)
        measurements.append(Measurement(micro, tuple(sorted(env.items())), seconds, workload.flops(env) / seconds / 1e9))
        traces.setdefault(micro, record.trace)
    return measurements, traces


def _env_from_shapes(workload: DynamicWorkload, a_shape, out_shape, b_shape) -> dict[str, int]:
    env: dict[str, int] = {}
    k_pos = -1 if workload.transpose_b else -2
    for dim, value in ((workload.m, a_shape[-2]), (workload.k, a_shape[-1]), (workload.n, out_shape[-1]),
                       (workload.k, b_shape[k_pos])):
        if isinstance(dim, str):
            env[dim] = value
    return env


def build_library_from_database(database, prim_func, shape_ranges: Mapping[str, VarRange | tuple[int, int]],
                                out: str | Path, target=None, *, config: TuningConfig | None = None, name: str | None = None):
    """Dispatching library from meta-schedule records of ``prim_func``: the records' run times feed the
    throughput model and set cover, and the chosen records' traces (replayed on ``prim_func``) are the kernels."""
    from tvm.s_tir import Schedule

    from .export import export_library

    target = resolve_target(target)
    config = config or TuningConfig()
    workload = symbolic_workload(prim_func, shape_ranges)
    if name:
        workload = DynamicWorkload(name, workload.batch, workload.m, workload.k, workload.n, workload.ranges,
                                   workload.transpose_b, workload.constant_b)
    measurements, traces = records_by_kernel(database, prim_func, workload)
    if not measurements:
        raise MorelloError(f"{workload.name}: the database holds no annotated records of this PrimFunc")
    micros = sorted({m.micro for m in measurements})
    plan = plan_from_measurements(workload, target, max(mk.nr for mk in micros), micros, measurements, config)
    kernel_funcs = {}
    for index, micro in enumerate(plan.kernels):
        sch = Schedule(prim_func)
        traces[micro].apply_to_schedule(sch, remove_postproc=False)
        kernel_funcs[(workload.name, index)] = sch.mod["main"]
    plan.provenance["source"] = "meta-schedule database"
    return export_library([plan], target, out, kernel_funcs=kernel_funcs)
