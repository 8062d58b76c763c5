"""A meta-schedule Builder with a build timeout that keeps one worker process alive across batches.

Candidates are compiled in a persistent ``tvm.support.popen_pool.PopenWorker`` (the process class behind
TVM's ``PopenPoolExecutor`` and ``LocalBuilder``), which skips the ~15 s tensor-intrinsic import and the
per-batch pool restart that make ``LocalBuilder`` slow, yet lets a runaway compile be killed.
"""
from __future__ import annotations

import concurrent.futures
import os
import queue
import shutil
import signal
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Callable

import tvm
from tvm.ir.utils import derived_object
from tvm.runtime import load_param_dict, save_param_dict
from tvm.s_tir.meta_schedule.builder import BuilderInput, BuilderResult, PyBuilder
from tvm.support.popen_pool import PopenWorker, kill_child_processes


def build_module(mod: tvm.IRModule, target: tvm.target.Target, _params=None) -> tvm.runtime.Module:
    """Compile a scheduled module for ``target``.

    Same passes as meta-schedule's ``default_build`` minus its ``import tvm.s_tir.tensor_intrin``, which
    registers CUDA/ARM intrinsics our CPU schedules never use and costs ~15 s per fresh worker. The
    signature matches ``LocalBuilder(f_build=...)``; ``FastBuilder`` runs it in its worker process.
    """
    from tvm.s_tir.transform import RemoveWeightLayoutRewriteBlock

    mod = RemoveWeightLayoutRewriteBlock(skip_tensor_rewrite=True)(mod)
    return tvm.tirx.build(mod, target)


def export_module(rt_mod: tvm.runtime.Module) -> str:
    """Write a compiled module to a fresh temporary shared library and return its path.

    A .so loads locally and through RPC alike; meta-schedule's RemoveBuildArtifact deletes it after the run.
    """
    path = os.path.join(tempfile.mkdtemp(prefix="tvm_morello_build_"), "candidate.so")
    rt_mod.export_library(path)
    return path


def remove_export(artifact_path: str | None) -> None:
    """Delete the temporary directory ``export_module`` wrote a build into (nothing for a failed build); a
    library already loaded stays mapped."""
    if artifact_path:
        shutil.rmtree(os.path.dirname(artifact_path), ignore_errors=True)


@derived_object
class FastBuilder(PyBuilder):
    """Builds candidates in persistent worker processes, each build under a timeout.

    Parameters
    ----------
    timeout_s : seconds one candidate may take to compile and export. A build over it becomes
        ``BuilderResult(None, "FastBuilder: build timed out after ... s ...")``; its worker is killed and a
        fresh one (~0.8 s to start) builds the next candidate.
    max_workers : worker processes; candidates of a batch are spread over them.
    f_build, f_export : ``build_module`` and ``export_module`` by default; same signatures as for
        ``LocalBuilder``. They are sent to the worker by reference, so they must be module-level
        functions of a module the worker can import (the worker gets this process's ``sys.path``).

    The workers start on the first ``build`` and are reused by every later batch (they only import TVM, not
    ``tvm.s_tir.tensor_intrin``); ``close()``, garbage collection or interpreter exit stop them. A forked
    child does not touch its parent's workers: it starts its own on its first ``build``.

    A compiler exception, a crashing worker (e.g. a segfault in LLVM) and a timeout each become a failed
    ``BuilderResult`` naming the cause, and the rest of the batch still builds. The timeout is enforced
    inside the worker (TVM's PopenWorker timer); if the worker cannot even answer (a native call holding
    the GIL), this process kills it ``max(2 s, timeout_s / 2)`` later.

    Measured here (2-core Zen 4 shared with other work; 8 tiled fp32 matmuls per batch; median of 5
    batches after a first one): 64^3: ~0.62 s per batch with one worker (~0.32 s with two), the same as
    compiling in the tuning process itself (~0.62-0.69 s, the previous FastBuilder, which had no timeout),
    against ~1.4 s for ``LocalBuilder(f_build=build_module, max_workers=1)`` (~1.2 s with two workers),
    which starts a new worker pool for every batch; 256^3: ~0.67 s against ~1.5 s. The default
    ``LocalBuilder`` takes ~16-28 s (shared notes). The first batch also pays ~0.8 s to start the worker,
    and a timed-out or crashed build costs its worker's restart (~0.8 s) on top of the timeout.
    """

    def __init__(
        self,
        timeout_s: float = 60.0,
        max_workers: int = 1,
        f_build: Callable | None = None,
        f_export: Callable | None = None,
    ):
        if not timeout_s > 0:
            raise ValueError(f"FastBuilder: timeout_s must be positive, got {timeout_s!r}")
        if int(max_workers) < 1:
            raise ValueError(f"FastBuilder: max_workers must be at least 1, got {max_workers!r}")
        self.timeout_s = float(timeout_s)
        self.max_workers = int(max_workers)
        self.f_build = f_build if f_build is not None else build_module
        self.f_export = f_export if f_export is not None else export_module
        self._pool: _WorkerPool | None = None
        self._pool_lock = threading.Lock()

    def build(self, build_inputs: list[BuilderInput]) -> list[BuilderResult]:
        if len(build_inputs) == 0:
            return []
        with self._pool_lock:
            if self._pool is None or self._pool.pid != os.getpid():  # first use, or we are a forked child
                self._pool = _WorkerPool(self.max_workers, self.timeout_s, self.f_build, self.f_export)
            return self._pool.build(list(build_inputs))

    def close(self) -> None:
        """Stop the worker processes now (the next ``build`` starts new ones)."""
        with self._pool_lock:
            if self._pool is not None:
                self._pool.close()
                self._pool = None


def fast_builder(**kwargs) -> FastBuilder:
    """The builder our entry points use by default; ``kwargs`` go to ``FastBuilder``."""
    return FastBuilder(**kwargs)


# --------------------------------------------------------------------------------------------------
# Worker side: these run in the PopenWorker process and are pickled by reference.


def _worker_ready(_f_build, _f_export) -> int:
    """First call in a fresh worker: unpickling the arguments imported the build functions' modules."""
    return os.getpid()


def _worker_build(f_build, f_export, mod, target, params) -> tuple[bool, str]:
    """Build and export one candidate; (True, artifact path) or (False, error text). Never raises."""
    try:
        rt_mod = f_build(mod, target, None if params is None else load_param_dict(params))
        return True, f_export(rt_mod)
    except Exception as err:  # any compiler failure is the candidate's fault, not the tune's
        return False, f"{type(err).__name__}: {err}"


def _path_initializer(paths: list[str]) -> Callable[[], None]:
    """A worker initializer giving the worker our ``sys.path`` (tvm_morello, test helpers, ...).

    A closure, so cloudpickle sends it by value: the worker can run it before it can import tvm_morello.
    """

    def init() -> None:
        import sys as _sys

        _sys.path[:0] = [p for p in paths if p not in _sys.path]

    return init


# --------------------------------------------------------------------------------------------------
# Tuning-process side.

_STARTUP_LIMIT_S = 120.0  # a fresh worker imports TVM (~1 s here, more under load)
_LIVE_POOLS: weakref.WeakSet = weakref.WeakSet()


class _Job:
    """One candidate's progress, shared by the thread that runs it and the watchdog loop."""

    def __init__(self, build_input: BuilderInput):
        self.build_input = build_input
        self.lock = threading.Lock()
        self.phase = "queued"  # queued -> starting (worker start-up) -> building -> finished
        self.started = 0.0
        self.worker: PopenWorker | None = None
        self.process = None  # the subprocess.Popen of the worker running this job
        self.killed = False


class _WorkerPool:
    """``max_workers`` persistent PopenWorkers; one thread per worker feeds it a batch's candidates."""

    def __init__(self, max_workers: int, timeout_s: float, f_build: Callable, f_export: Callable):
        self.pid = os.getpid()
        self.timeout_s = timeout_s
        self.grace_s = max(2.0, 0.5 * timeout_s)
        self.f_build = f_build
        self.f_export = f_export
        initializer = _path_initializer(list(sys.path))
        self.workers = [PopenWorker(initializer=initializer) for _ in range(max_workers)]
        self._idle: queue.SimpleQueue = queue.SimpleQueue()
        for worker in self.workers:
            self._idle.put(worker)
        self._finalizer = weakref.finalize(self, _stop_workers, self.workers, self.pid)
        _LIVE_POOLS.add(self)

    def close(self) -> None:
        self._finalizer()

    def build(self, build_inputs: list[BuilderInput]) -> list[BuilderResult]:
        jobs = [_Job(build_input) for build_input in build_inputs]
        threads = min(len(self.workers), len(jobs))
        poll_s = min(1.0, max(0.05, self.timeout_s / 10))
        with concurrent.futures.ThreadPoolExecutor(threads, thread_name_prefix="FastBuilder") as executor:
            futures = [executor.submit(self._run, job) for job in jobs]
            pending = set(futures)
            while pending:
                _, pending = concurrent.futures.wait(pending, timeout=poll_s)
                self._kill_overdue(jobs)
            return [future.result() for future in futures]

    def _kill_overdue(self, jobs: list[_Job]) -> None:
        """Backstop for a worker whose own timer cannot answer: kill it from here."""
        now = time.monotonic()
        for job in jobs:
            with job.lock:
                if job.phase == "starting":
                    limit = _STARTUP_LIMIT_S
                elif job.phase == "building":
                    limit = self.timeout_s + self.grace_s
                else:
                    continue
                if job.process is None:  # still starting: send() has not returned yet
                    job.process = getattr(job.worker, "_proc", None)
                if job.killed or now - job.started <= limit or job.process is None:
                    continue
                job.killed = True
                _kill_process(job.process)

    def _run(self, job: _Job) -> BuilderResult:
        worker = self._idle.get()
        job.worker = worker
        try:
            return self._build_on(worker, job)
        except TimeoutError:  # the worker's timer fired; PopenWorker has killed the worker
            if job.phase != "building":
                return BuilderResult(None, f"FastBuilder: build worker did not start within {_STARTUP_LIMIT_S:g} s")
            return BuilderResult(
                None, f"FastBuilder: build timed out after {self.timeout_s:g} s (the worker was killed and restarted)"
            )
        except ChildProcessError:  # the worker died: killed by _kill_overdue, or crashed
            if job.killed:
                what = (
                    f"build timed out after {self.timeout_s:g} s (the unresponsive worker was killed after "
                    f"{self.timeout_s + self.grace_s:g} s and restarted)"
                    if job.phase == "building"
                    else f"build worker did not start within {_STARTUP_LIMIT_S:g} s"
                )
            else:
                what = f"build worker crashed ({_exit_status(job.process)}) while " + (
                    "compiling this candidate" if job.phase == "building" else "starting up; see its stderr"
                )
            return BuilderResult(None, f"FastBuilder: {what}")
        except Exception as err:  # e.g. the module could not be serialised for the worker
            return BuilderResult(None, f"FastBuilder: {type(err).__name__}: {err}")
        finally:
            with job.lock:
                job.phase = "finished"
            self._idle.put(worker)

    def _build_on(self, worker: PopenWorker, job: _Job) -> BuilderResult:
        if not worker.is_alive():
            worker.kill()  # forget a dead process so that send() starts a new one
            with job.lock:
                job.phase, job.started, job.process = "starting", time.monotonic(), None
            worker.send(_worker_ready, (self.f_build, self.f_export), timeout=_STARTUP_LIMIT_S)
            with job.lock:
                job.process = worker._proc  # pylint: disable=protected-access
            worker.recv()
        build_input = job.build_input
        params = None if build_input.params is None else save_param_dict(build_input.params)
        with job.lock:
            job.phase, job.started = "building", time.monotonic()
            job.process = worker._proc  # pylint: disable=protected-access
        worker.send(
            _worker_build,
            (self.f_build, self.f_export, build_input.mod, build_input.target, params),
            timeout=self.timeout_s,
        )
        ok, value = worker.recv()
        if ok:
            return BuilderResult(value, None)
        return BuilderResult(None, f"FastBuilder: {value}")


def _kill_process(process) -> None:
    if process is not None and process.poll() is None:
        try:
            kill_child_processes(process.pid)  # e.g. the linker export_library started
            process.kill()
        except OSError:
            pass


def _exit_status(process) -> str:
    code = None if process is None else process.poll()
    if code is None:
        return "exit status unknown"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def _stop_workers(workers: list[PopenWorker], pid: int) -> None:
    """Finalizer of a _WorkerPool: stop its workers, but only in the process that started them."""
    for worker in workers:
        if os.getpid() == pid:
            worker.kill()
        else:
            _disown(worker)


def _disown(worker: PopenWorker) -> None:
    """In a forked child: forget the parent's worker process without killing it."""
    worker._proc = None  # pylint: disable=protected-access


def _after_fork_in_child() -> None:
    for pool in list(_LIVE_POOLS):
        pool._finalizer.detach()  # pylint: disable=protected-access
        for worker in pool.workers:
            _disown(worker)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
