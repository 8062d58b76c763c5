"""Measure micro-kernels at concrete shapes through meta-schedule's builder and runner; keep the records."""
from __future__ import annotations

import math
import signal
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from ..codegen.kernel_funcs import kernel_panel, kernel_schedule, kernel_target, kernel_workload_mod
from ..codegen.microkernel import MicroKernel, record_microkernel
from ..errors import MorelloError
from ..spec.symbolic import DynamicWorkload
from ..target import CpuTarget
from .records import records_of, shapes_of


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


def arg_shapes(workload: DynamicWorkload, env: Mapping[str, int], b_panel: int = 0) -> list[tuple[int, ...]]:
    """Concrete shapes of an operator's parameters: A, B (as the user holds it, or in panels of width
    ``b_panel`` for a prepacked weight), the output."""
    a_shape, b_shape = workload.input_shapes(env)
    if b_panel:
        b, _, k, n = workload.dims(env)
        b_shape = ((b,) if workload.batch else ()) + (-(-n // b_panel), k, b_panel)
    return [a_shape, b_shape, workload.output_shape(env)]


_PREVIOUS_ARGUMENTS: dict = {}  # position -> ((dtype, shape), tensor): the last run's, in the runner's worker


def reuse_unchanged_arguments(device, args_info, alloc_repeat: int) -> list:
    """The runner's argument allocator (it runs in the runner's worker): an argument whose position, dtype and
    shape match the previous run's is reused instead of made and random-filled again. A tune's runs share the
    weight and differ in m, so a 4096 x 11008 operator no longer fills 180 MB before each of its 36 runs."""
    import tvm

    fill = tvm.get_global_func("tvm.contrib.random.random_fill_for_measure")
    args = []
    for position, (kind, dtype, shape) in enumerate(args_info):
        if kind != "TENSOR":
            raise NotImplementedError(f"argument {position} is a {kind}; micro-kernels take tensors only")
        key = (dtype, tuple(shape))
        kept = _PREVIOUS_ARGUMENTS.get(position)
        if kept is None or kept[0] != key:
            tensor = tvm.runtime.empty(shape=shape, dtype=dtype, device=device)
            fill(tensor)
            _PREVIOUS_ARGUMENTS[position] = kept = (key, tensor)
        args.append(kept[1])
    return [args] * alloc_repeat


STREAMED_BYTES_CAP = 256 << 20  # beyond any CPU's last-level cache: more copies would stream from memory alike
_STREAMED_COPIES: dict = {}  # (dtype, shape, copies) -> the weight's copies, in the runner's worker
WEIGHT_POSITION = 1  # a micro-kernel's parameters: A, B, [epilogue inputs], out


def streamed_copies(shape, dtype_bytes: int, streamed_bytes: int) -> int:
    """Copies of a weight of ``shape`` that together span ``streamed_bytes`` (at most ``STREAMED_BYTES_CAP``)."""
    return max(1, -(-min(streamed_bytes, STREAMED_BYTES_CAP) // (math.prod(shape) * dtype_bytes)))


def records_dir(work_dir: str | Path, streamed_bytes: int) -> Path:
    """Where runs of a constant weight's kernels are kept: ``work_dir`` itself, or for weights streamed among
    ``streamed_bytes`` a folder of it named by them (a weight read among 28 MB finds it in L3, among 340 MB in
    memory: neither run stands for the other, so a model only resumes from runs made among weights like its own).
    Runs of kernels without a constant weight (attention's) stay in ``work_dir``, shared by every model."""
    return Path(work_dir) / f"streamed_{streamed_bytes}" if streamed_bytes else Path(work_dir)


def streamed_arguments(device, args_info, alloc_repeat: int, *, streamed_bytes: int = 0) -> list:
    """The runner's argument allocator for weights that stream: ``reuse_unchanged_arguments``, with the weight
    (B) in as many copies as span ``streamed_bytes``, one argument list per copy (A and the output shared).
    ``time_streamed`` calls them in turn, so each call finds its weight where a model leaves it: read since by
    the model's other weights (L3 or memory), not in the core's own caches as a kernel called over and over
    finds it."""
    import tvm

    (args,) = reuse_unchanged_arguments(device, args_info, 1)
    _, dtype, shape = args_info[WEIGHT_POSITION]
    copies = streamed_copies(shape, tvm.runtime.DataType(dtype).bits // 8, streamed_bytes)
    if copies == 1:
        return [args] * alloc_repeat
    key = (dtype, tuple(shape), copies)
    if key not in _STREAMED_COPIES:
        _STREAMED_COPIES.clear()
        weight = args[WEIGHT_POSITION]
        _STREAMED_COPIES[key] = [weight] + [weight.copyto(device) for _ in range(copies - 1)]
    return [[*args[:WEIGHT_POSITION], weight, *args[WEIGHT_POSITION + 1:]] for weight in _STREAMED_COPIES[key]]


def time_streamed(rt_mod, device, evaluator_config, repeated_args) -> list[float]:
    """The runner's evaluator for weights that stream: the kernel called on the argument lists in turn
    (``time_in_turn``), so a long call (a large m) is not run once per copy. One argument list is timed as
    meta-schedule times it."""
    from tvm.s_tir.meta_schedule.runner.utils import run_evaluator_common

    if len(repeated_args) == 1:
        return run_evaluator_common(rt_mod, device, evaluator_config, repeated_args)
    return time_in_turn(rt_mod[rt_mod.entry_name], repeated_args, evaluator_config.repeat,
                        evaluator_config.min_repeat_ms)


def time_in_turn(func, arg_lists, repeat: int, min_repeat_ms: float) -> list[float]:
    """Seconds per call of ``func``, one figure per repeat (each at least one call, and as many as last
    ``min_repeat_ms``), called on ``arg_lists`` in turn, around and around, after a first call that starts
    the thread pool."""
    import time

    func(*arg_lists[-1])
    costs, turn = [], 0
    for _ in range(repeat):
        calls, start = 0, time.perf_counter()
        while not calls or time.perf_counter() - start < min_repeat_ms / 1e3:
            func(*arg_lists[turn % len(arg_lists)])
            turn, calls = turn + 1, calls + 1
        costs.append((time.perf_counter() - start) / calls)
    return costs


@contextmanager
def interrupt_between_runs():
    """Yields a predicate "was Ctrl-C pressed?". Inside TVM's runner a Ctrl-C surfaces only after the whole batch,
    as a bare RuntimeError; so the first one is noted and the caller stops between runs, the runs so far
    recorded. A second Ctrl-C interrupts at once."""
    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return
    pressed = threading.Event()

    def note(signum, frame) -> None:
        pressed.set()
        signal.signal(signal.SIGINT, previous)

    previous = signal.signal(signal.SIGINT, note)
    try:
        yield pressed.is_set
    finally:
        signal.signal(signal.SIGINT, previous)


class KernelMeasurer:
    """Builds each micro-kernel once (symbolic), runs it at concrete shapes, commits every run to a
    meta-schedule ``JSONDatabase`` in ``work_dir`` (workload = the unscheduled symbolic PrimFunc).

    ``streamed_bytes``: the weights a call's weight is read among (a model's), whose copies the runs of a
    constant weight's kernels go through in turn (``streamed_arguments``), kept in their own database
    (``records_dir``); 0 runs each kernel on one weight, over and over, as a lone operator is.
    """

    def __init__(self, target: CpuTarget, work_dir: str | Path, *, number: int = 1, repeat: int = 3,
                 min_repeat_ms: int = 40, timeout_s: float = 120.0, streamed_bytes: int = 0):
        import functools

        from tvm.s_tir import meta_schedule as ms

        from .builder import FastBuilder

        self.target = target
        self.work_dir = Path(work_dir)
        self.weight_records = records_dir(self.work_dir, streamed_bytes)
        self.weight_records.mkdir(parents=True, exist_ok=True)
        self.database = ms.database.JSONDatabase(work_dir=str(self.work_dir))
        self.weight_database = (self.database if self.weight_records == self.work_dir else
                                ms.database.JSONDatabase(work_dir=str(self.weight_records)))
        self.builder = FastBuilder(timeout_s=timeout_s)
        config = ms.runner.EvaluatorConfig(number=number, repeat=repeat, min_repeat_ms=min_repeat_ms,
                                           enable_cpu_cache_flush=False)
        self.runner = ms.runner.LocalRunner(timeout_sec=timeout_s, evaluator_config=config,
                                            f_alloc_argument=reuse_unchanged_arguments)
        self.weight_runner = self.runner if not streamed_bytes else ms.runner.LocalRunner(
            timeout_sec=timeout_s, evaluator_config=config, f_run_evaluator=time_streamed,
            f_alloc_argument=functools.partial(streamed_arguments, streamed_bytes=streamed_bytes))

    def records_for(self, workload: DynamicWorkload) -> Path:
        """The directory of the JSON database that holds ``workload``'s runs."""
        return self.weight_records if workload.constant_b else self.work_dir

    def runs_kept(self) -> int:
        """Runs in this measurer's databases."""
        kept = len(self.database)
        return kept if self.weight_database is self.database else kept + len(self.weight_database)

    def measure(self, workload: DynamicWorkload, panel: int, jobs: Sequence[tuple[MicroKernel, Mapping[str, int]]],
                progress=None, records: int = 1) -> list[Measurement]:
        """Run every (micro-kernel, shape) job until the database holds ``records`` runs of it (so an interrupted
        tune resumes where it stopped), in rounds over the jobs; each job's time is the fastest of its runs
        (a neighbour's burst slows a run, nothing speeds one up). A kernel that fails to build or run raises
        MorelloError."""
        from tvm.s_tir import meta_schedule as ms

        from .builder import remove_export

        database, runner = ((self.weight_database, self.weight_runner) if workload.constant_b else
                            (self.database, self.runner))
        micros = sorted({micro for micro, _ in jobs})
        schedules = {micro: kernel_schedule(workload, micro, panel, self.target) for micro in micros}
        mods = {micro: kernel_workload_mod(workload, micro, panel, self.target) for micro in micros}
        recorded = {micro: _recorded(database, mods[micro], schedules[micro], kernel_target(micro, self.target))
                    for micro in micros}
        shapes = [tuple(arg_shapes(workload, env, kernel_panel(workload, micro, panel) if workload.constant_b else 0))
                  for micro, env in jobs]
        run_secs = {i: recorded[micro].get(shapes[i], []) for i, (micro, _) in enumerate(jobs)}
        pending = [i for round_ in range(records) for i in range(len(jobs)) if len(run_secs[i]) <= round_]
        if progress is not None and len(pending) < records * len(jobs):
            progress.update(records * len(jobs) - len(pending))
        with interrupt_between_runs() as interrupted:

            def stop_if_interrupted() -> None:
                if interrupted():
                    raise KeyboardInterrupt(f"tuning stopped; {self.runs_kept()} runs are kept in "
                                            f"{self.work_dir}: tune again with this work directory to resume")

            to_build = sorted({jobs[i][0] for i in pending})
            built = self.builder.build([ms.builder.BuilderInput(schedules[mk].mod, kernel_target(mk, self.target))
                                        for mk in to_build])
            artifacts = {micro: result.artifact_path for micro, result in zip(to_build, built) if result.artifact_path}
            try:
                for micro, result in zip(to_build, built):
                    if result.error_msg:
                        stop_if_interrupted()  # Ctrl-C reaches the builder's worker too
                        raise MorelloError(f"{workload.name}: micro-kernel {micro.key} failed to build: "
                                           f"{result.error_msg}")
                for i in pending:  # one job per runner call: each run is recorded as soon as it is done
                    stop_if_interrupted()
                    micro, env = jobs[i]
                    info = [ms.arg_info.TensorInfo("float32", shape) for shape in shapes[i]]
                    (future,) = runner.run([ms.runner.RunnerInput(artifacts[micro], "cpu", info)])
                    result = future.result()
                    if result.error_msg:
                        stop_if_interrupted()  # Ctrl-C reaches the runner's worker too
                        raise MorelloError(f"{workload.name}: {micro.key} at {dict(env)} failed to run: "
                                           f"{result.error_msg}")
                    secs = [float(s) for s in result.run_secs]
                    run_secs[i].append(min(secs))
                    _commit(database, mods[micro], schedules[micro], secs, info, kernel_target(micro, self.target))
                    if progress is not None:
                        progress.update(1)
            finally:
                for path in artifacts.values():
                    remove_export(path)
            stop_if_interrupted()
        return [Measurement(micro, tuple(sorted(env.items())), min(run_secs[i]),
                            workload.flops(env) / min(run_secs[i]) / 1e9) for i, (micro, env) in enumerate(jobs)]


def _recorded(database, workload_mod, sch, tvm_target) -> dict[tuple, list[float]]:
    """Runs of this schedule already in ``database``: argument shapes -> each record's fastest seconds."""
    trace, target = str(sch.trace), str(tvm_target)
    runs: dict[tuple, list[float]] = {}
    for record in records_of(database, workload_mod):
        if record.run_secs and str(record.trace) == trace and str(record.target) == target:
            runs.setdefault(shapes_of(record.args_info), []).append(min(float(s) for s in record.run_secs))
    return runs


def _commit(database, workload_mod, sch, run_secs: list[float], info, tvm_target) -> None:
    from tvm import tirx
    from tvm.s_tir import meta_schedule as ms

    workload = database.commit_workload(workload_mod)
    record = ms.database.TuningRecord(sch.trace, workload, [tirx.FloatImm("float32", s) for s in run_secs],
                                      tvm_target, info)
    database.commit_tuning_record(record)


def recorded_kernel(database, workload: DynamicWorkload, micro: MicroKernel, panel: int, target: CpuTarget):
    """The kernel as it was measured: the trace of its first successful record in ``database``, replayed on the
    kernel's workload (None when the database holds none). Kernels of one MR share a workload; the annotation
    their schedule makes tells whose record it is."""
    from tvm.s_tir import Schedule

    mod = kernel_workload_mod(workload, micro, panel, target)
    tvm_target = str(kernel_target(micro, target))
    for record in records_of(database, mod):
        if record.run_secs and str(record.target) == tvm_target and record_microkernel(record) == micro:
            sch = Schedule(mod)
            record.trace.apply_to_schedule(sch, remove_postproc=False)
            return sch.mod["main"]
    return None
