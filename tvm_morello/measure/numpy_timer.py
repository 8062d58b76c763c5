"""numpy's matmul (OpenBLAS) timed in a persistent process of its own, shape by shape, between TVM timings.

Its own process because TVM's and OpenBLAS's thread pools contend on a small machine; persistent because a sweep
over m keeps its weight: a fresh process per point regenerated the weight each time (45M random floats, longer
than timing the point for a 4096 x 11008 weight). This file runs as a script (``python numpy_timer.py``) so that
the worker imports numpy only, never TVM."""
from __future__ import annotations

import json
import math
import subprocess
import sys
import time

MIN_TIMED_S = 0.02  # each timing repeats a call for at least this long, so tiny shapes are not timer noise
IDLE_WINDOW_S = 0.03  # a process is idle once it used no CPU time for this long (the clock ticks at 10 ms)
IDLE_TIMEOUT_S = 2.0  # a process busy for longer (work of its own, not a pool spinning down) is not waited for


def serve() -> None:
    """One JSON {"a", "b", "transpose_b", "copies"} per stdin line -> best seconds per call on stdout.

    With ``copies`` > 1 the calls go through that many copies of B in turn (a model's weight, read since by
    the others). For a transposed batched B both numpy spellings are timed (the strided view, and a contiguous
    copy made inside the timed call: numpy's batched matmul on some strided views leaves BLAS) and the faster
    one counts; a 2-D ``A @ Bᵀ`` is one BLAS call with a transpose flag, which the copy only slows."""
    import itertools

    import numpy as np

    rng = np.random.default_rng(0)
    b_key = bs = None
    for line in sys.stdin:
        job = json.loads(line)
        a = rng.standard_normal(job["a"], dtype=np.float32)
        key = (job["b"], job.get("copies", 1))
        if key != b_key:
            bs = None  # the old copies go before the new ones are made
            b = rng.standard_normal(key[0], dtype=np.float32)
            b_key, bs = key, [b] + [b.copy() for _ in range(key[1] - 1)]
        turn = itertools.cycle(bs)
        if job["transpose_b"]:
            candidates = [lambda a=a: np.matmul(a, np.swapaxes(next(turn), -1, -2))]
            if bs[0].ndim > 2:
                candidates.append(lambda a=a: np.matmul(a, np.ascontiguousarray(np.swapaxes(next(turn), -1, -2))))
        else:
            candidates = [lambda a=a: np.matmul(a, next(turn))]
        print(json.dumps(min(_best_time(run) for run in candidates)), flush=True)


def _best_time(run) -> float:
    run()
    start = time.perf_counter()
    run()
    reps = max(1, int(MIN_TIMED_S / max(time.perf_counter() - start, 1e-7)))
    best = math.inf
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(reps):
            run()
        best = min(best, (time.perf_counter() - start) / reps)
    return best


def wait_until_idle(process, window_s: float = IDLE_WINDOW_S, timeout_s: float = IDLE_TIMEOUT_S) -> bool:
    """Wait until ``process`` (a psutil.Process) uses no CPU time for ``window_s``; False after ``timeout_s``.

    A thread pool keeps its threads spinning after a parallel call (TVM's for ~150 ms on Zen 4): on 2 cores the
    other process's second thread then waits a scheduler slice per call. A fixed 20 ms pause let that contention
    slow numpy 10-100x at small m (gpt-2's 2x768x3072: 16 ms per call against 0.75 ms alone)."""
    deadline = time.perf_counter() + timeout_s
    used = sum(process.cpu_times()[:2])
    while time.perf_counter() < deadline:
        time.sleep(window_s)
        now = sum(process.cpu_times()[:2])
        if now == used:
            return True
        used = now
    return False


class NumpyTimer:
    """The worker process, asked shape by shape (``with NumpyTimer() as numpy: numpy.time(...)``); each request
    waits until this process's threads (TVM's pool) are idle, and returns once the worker's (OpenBLAS's) are,
    so that neither side's timing shares the cores with the other's spinning threads."""

    def __init__(self) -> None:
        import psutil

        self.proc = subprocess.Popen([sys.executable, __file__], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True)
        self._this, self._worker = psutil.Process(), psutil.Process(self.proc.pid)

    def time(self, a_shape, b_shape, transpose_b: bool, copies: int = 1) -> float:
        """Seconds per call of ``A @ B`` (``A @ Bᵀ`` when ``transpose_b``) on random float32 operands, B taken
        from ``copies`` copies in turn."""
        wait_until_idle(self._this)
        job = {"a": list(a_shape), "b": list(b_shape), "transpose_b": transpose_b, "copies": copies}
        self.proc.stdin.write(json.dumps(job) + "\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline()
        if not answer:
            raise RuntimeError(f"the numpy timing process exited (code {self.proc.poll()}) on A{tuple(a_shape)} "
                               f"B{tuple(b_shape)}")
        wait_until_idle(self._worker)
        return float(answer)

    def time_workload(self, workload, env, copies: int = 1) -> float:
        """Seconds per call of a DynamicWorkload at ``env`` (B as the user holds it, in ``copies`` copies)."""
        a_shape, b_shape = workload.input_shapes(env)
        return self.time(a_shape, b_shape, workload.transpose_b, copies)

    def close(self) -> None:
        if self.proc.stdin and not self.proc.stdin.closed:
            self.proc.stdin.close()
        self.proc.wait()

    def __enter__(self) -> "NumpyTimer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


if __name__ == "__main__":
    serve()
