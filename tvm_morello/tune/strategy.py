"""MorelloSearch: a meta-schedule search strategy that measures the core DP's best programs first."""
from __future__ import annotations

import logging
from typing import Mapping

from tvm.ir.utils import derived_object
from tvm.s_tir import meta_schedule as ms
from tvm.s_tir.meta_schedule.search_strategy import MeasureCandidate, PySearchStrategy

from ..errors import MorelloError
from ..measure.records import median_seconds, module_key
from .fallback import start_evolutionary_search
from .learned import LearnedRanker
from .measured import MeasuredCandidate, measurements_in_database
from .pool import CandidatePool
from .refit import ConstantsRefit
from .symbolic import SymbolicCandidateSource, symbolic_prim_func

logger = logging.getLogger(__name__)


BUILD_TIMEOUT_PREFIXES = (
    "LocalBuilder: Timeout, killed after",  # ms.builder.LocalBuilder (TVM 0.27 local_builder.py)
    "FastBuilder: build timed out after",  # tvm_morello.tune.FastBuilder
)
"""How a builder's timeout begins. The task scheduler hands a failed build to ``notify_runner_results`` as
``RunnerResult(None, builder_result.error_msg)``, so the builder's text arrives unchanged."""


def is_build_timeout(result: ms.runner.RunnerResult) -> bool:
    """Whether ``result`` is a build killed by its builder's timeout: a candidate worth one more try, since
    the time may have gone to the builder worker's start-up or to a loaded machine rather than to the
    candidate. Compile errors and run errors are not timeouts of the build."""
    message = result.error_msg
    return message is not None and str(message).startswith(BUILD_TIMEOUT_PREFIXES)


@derived_object
class MorelloSearch(PySearchStrategy):
    """Search strategy for ``ms.tune_tir(..., strategy=MorelloSearch())`` and ``tune_relax``.

    First batch: the DP's top programs in its order. Later batches: part from the DP re-ranked with cost
    constants refit on the measurements so far, part from the rest of the DP's programs ordered by an
    XGBoost model trained on them. Nothing measured before (in this tune or found in the database) is
    measured again, except that a candidate whose build timed out (``is_build_timeout``) is proposed once
    more, at the end of a later batch; the strategy stops when nothing new is left. Until a measurement of
    the task has succeeded, the strategy also keeps the tune from ending without one (``_batch_size``).
    Tasks the DP cannot express are tuned by meta-schedule's EvolutionarySearch instead. When a task ends, its
    measurements join the stored calibration of the target's CPU (``tvm_morello.cost.store``), which is refit,
    so later runs on that CPU rank with them.

    Parameters
    ----------
    top_k : programs asked from the DP at first; doubled whenever all of them have been measured.
    learned_share : fraction of each later batch chosen by the learned model once it is trained.
    min_learned_successes : successful measurements before the learned model's ranking is used.
    shape_ranges : ``{var name: (lo, hi)}`` for the symbolic dimensions of a symbolic PrimFunc (e.g.
        ``{"m": (1, 2048)}``). A task whose PrimFunc has symbolic dimensions is then tuned shape-generically:
        the candidates are ``tvm_morello.tune.symbolic.propose_symbolic_candidates`` (one schedule
        of the symbolic PrimFunc per micro-kernel, measured at concrete shapes in the ranges; every kernel's
        best-adapted shape first), recorded under the symbolic workload, each measured once; the strategy
        stops when they are all measured. Build the dispatching library from the database with
        ``tvm_morello.library.build_library_from_database``. Static tasks are tuned as without it.

    A symbolic task that is not such a matmul (softmax, layer_norm, a dense layer fused with its epilogue by
    Relax) has its design space measured once, at the middle of the ranges, so that ``compile_relax`` applies it.

    A plain ``ms.tune_tir`` / ``tune_relax`` caller with symbolic tasks passes ``space=MorelloSpace()``
    (``tvm_morello.tune.space``): meta-schedule's default space aborts on symbolic loops, and ours gives such tasks
    a generic schedule valid for every shape. ``tvm_morello.tune.tune`` passes it for you.
    """

    def __init__(self, *, top_k: int = 64, learned_share: float = 0.5, min_learned_successes: int = 8,
                 shape_ranges: Mapping[str, tuple[int, int]] | None = None) -> None:
        self.top_k = top_k
        self.learned_share = learned_share
        self.min_learned_successes = min_learned_successes
        self.shape_ranges = dict(shape_ranges) if shape_ranges is not None else None
        self._context = None
        self._reset()

    def _reset(self) -> None:
        self._fallback = None
        self._symbolic = None
        self._pool = None
        self._calibration = None
        self._learned = None
        self._measured: set[int] = set()
        self._timed_out: list[int] = []  # keys whose build timed out, not proposed again yet
        self._retried: set[int] = set()  # keys proposed again after a timeout (never a third time)
        self._succeeded = False  # some measurement of the task succeeded (this tune or the database)
        self._max_trials = 0
        self._num_trials_per_iter = 0
        self._issued = 0
        self._tuning_args = None

    # ---- meta-schedule interface -------------------------------------------------------------------

    def _initialize_with_tune_context(self, context: ms.TuneContext) -> None:
        self._context = context

    def pre_tuning(self, max_trials, num_trials_per_iter, design_spaces, database=None, cost_model=None) -> None:
        self._reset()
        self._max_trials = int(max_trials)
        self._num_trials_per_iter = int(num_trials_per_iter)
        self._tuning_args = (list(design_spaces), database, cost_model)
        context = self._context
        if self.shape_ranges is not None and self._start_symbolic(database):
            return
        try:
            self._pool = CandidatePool(context.mod, context.target, self.top_k)
            self._pool.rerank()
            self._calibration = ConstantsRefit(context.target)
            self._learned = LearnedRanker(context.num_threads, self.min_learned_successes)
        except MorelloError as err:  # expected: the task is not a matmul the DP can express
            self._switch_to_fallback(f"the DP cannot express it ({err})", logging.INFO)
            return
        except Exception as err:  # noqa: BLE001 - a tune must never fail because of us
            logger.exception("MorelloSearch failed to start on task %r", _task_name(context))
            self._switch_to_fallback(f"MorelloSearch failed: {type(err).__name__}: {err}")
            return
        try:
            self._learn_from(measurements_in_database(database, context.mod))
        except Exception:  # noqa: BLE001
            logger.exception("MorelloSearch could not read the database's past records; they may be measured again")

    def post_tuning(self) -> None:
        if self._fallback is not None:
            self._fallback.post_tuning()
        if self._calibration is not None:
            self._calibration.store()
        self._reset()
        self._context = None  # the context holds this strategy: drop the cycle

    def generate_measure_candidates(self) -> list[MeasureCandidate] | None:
        if self._fallback is not None:
            return self._fallback.generate_measure_candidates()
        if self._symbolic is not None:
            budget = min(self._num_trials_per_iter, self._max_trials - self._issued)
            if budget <= 0:
                return None
            batch = self._symbolic.next_batch(budget)
            self._issued += len(batch)
            return batch or None
        size = self._batch_size()
        if size <= 0:
            return None
        try:
            keys = self._next_keys(size)
        except Exception as err:  # noqa: BLE001
            logger.exception("MorelloSearch failed to pick candidates on task %r", _task_name(self._context))
            self._switch_to_fallback(f"MorelloSearch failed: {type(err).__name__}: {err}")
            return self._fallback.generate_measure_candidates()
        if not keys:
            logger.info("MorelloSearch: no unmeasured candidate left for task %r", _task_name(self._context))
            return None
        beyond = self._issued + len(keys) - self._max_trials
        if beyond > 0:
            logger.info("MorelloSearch: no successful measurement of task %r yet; %d candidate(s) beyond its %d "
                        "trials", _task_name(self._context), beyond, self._max_trials)
        self._issued += len(keys)
        return [_measure_candidate(self._pool[key].schedule) for key in keys]

    def notify_runner_results(self, measure_candidates, results) -> None:
        if self._fallback is not None:
            self._fallback.notify_runner_results(measure_candidates, results)
            return
        if self._symbolic is not None:
            return
        try:
            self._learn_from([MeasuredCandidate(c, r, module_key(c.sch.mod)) for c, r in zip(measure_candidates, results)])
        except Exception:  # noqa: BLE001 - losing one batch of learning is better than losing the tune
            logger.exception("MorelloSearch could not learn from a batch of task %r", _task_name(self._context))

    def clone(self) -> "MorelloSearch":
        return MorelloSearch(
            top_k=self.top_k,
            learned_share=self.learned_share,
            min_learned_successes=self.min_learned_successes,
            shape_ranges=self.shape_ranges,
        )

    def _start_symbolic(self, database) -> bool:
        """Use the symbolic candidate source if the task's PrimFunc is symbolic; False if it is static.

        A symbolic task that is not a matmul we have kernels for (softmax, a fused dense layer) has its design
        spaces measured once at a shape in range (``MorelloSpace`` gives it a generic schedule), so that it is
        compiled with that schedule rather than left unscheduled."""
        func = symbolic_prim_func(self._context.mod)
        if func is None:
            return False
        task = _task_name(self._context)
        try:
            self._symbolic = SymbolicCandidateSource(func, self.shape_ranges, self._context.target)
        except MorelloError as err:
            logger.info("MorelloSearch has no kernels for symbolic task %r (%s); its design space is measured "
                        "instead", task, err)
            self._symbolic = self._design_space_source(func)
        except Exception as err:  # noqa: BLE001 - a tune must never fail because of us
            logger.exception("MorelloSearch failed on symbolic task %r; its design space is measured instead", task)
            self._symbolic = self._design_space_source(func)
        try:
            self._symbolic.skip_database_records(database, self._context.mod)
        except Exception:  # noqa: BLE001
            logger.exception("MorelloSearch could not read the database's past records; they may be measured again")
        logger.info("MorelloSearch: %d shape-generic candidates for symbolic task %r", len(self._symbolic), task)
        return True

    def _design_space_source(self, func) -> SymbolicCandidateSource:
        """The task's design spaces at one concrete shape; nothing (the task skipped) if it cannot be measured."""
        design_spaces = self._tuning_args[0]
        try:
            return SymbolicCandidateSource.of_design_spaces(func, design_spaces, self.shape_ranges)
        except MorelloError as err:
            logger.warning("MorelloSearch cannot measure symbolic task %r (%s); it is skipped",
                           _task_name(self._context), err)
            return SymbolicCandidateSource.empty()

    # ---- choosing candidates -----------------------------------------------------------------------

    def _batch_size(self) -> int:
        """How many candidates to propose now: ``min(num_trials_per_iter, max_trials - issued)`` once a
        measurement has succeeded.

        Until then the tune must not end with nothing to compile. meta-schedule's task scheduler asks for
        candidates only while fewer than ``max_trials_global`` were issued, but builds and runs a whole batch
        even past it (``TaskSchedulerNode::Tune``, src/s_tir/meta_schedule/task_scheduler/task_scheduler.cc).
        So a batch that would use the last trials holds one back, to be asked again once its results are in;
        and the call for the last trial (or, driven directly, any call past the budget) proposes one untried
        candidate plus every timed-out one not yet retried. Each such call uses up candidates, so the
        strategy stops once a measurement succeeded or nothing is left.
        """
        remaining = self._max_trials - self._issued
        size = min(self._num_trials_per_iter, remaining)
        if self._succeeded:
            return size
        if remaining > 1:
            return min(size, remaining - 1)
        return min(self._num_trials_per_iter, 1 + len(self._timed_out))

    def _next_keys(self, size: int) -> list[int]:
        """Up to ``size`` keys: untried candidates, then timed-out ones proposed again.

        Retries take the batch's slots first but go at its end, behind at least one untried candidate when
        there is one: a fresh builder worker pays its start-up (LocalBuilder: the tensor-intrinsic import)
        on its first build, so the first builds of a batch are the ones likely to time out again.
        """
        n_retries = min(len(self._timed_out), size - 1)
        picks = self._pick(size - n_retries)
        self._measured.update(picks)
        retries = self._timed_out[: size - len(picks)]
        del self._timed_out[: len(retries)]
        self._retried.update(retries)
        return picks + retries

    def _pick(self, budget: int) -> list[int]:
        constants = self._calibration.constants()
        if constants is not None and constants is not self._pool.constants:
            self._pool.rerank(constants)
        while True:
            picks = self._pick_from_pool(budget)
            if len(picks) >= budget or not self._pool.grow():
                return picks

    def _pick_from_pool(self, budget: int) -> list[int]:
        """The DP's best unmeasured programs, then the learned model's favourites among the rest."""
        ranked = set(self._pool.ranking)
        unmeasured = [key for key in self._pool.ranking if key not in self._measured]
        unmeasured += [key for key in self._pool.keys() if key not in ranked and key not in self._measured]
        n_learned = round(budget * self.learned_share) if self._learned.ready else 0
        picks, rest = unmeasured[: budget - n_learned], unmeasured[budget - n_learned :]
        if n_learned and rest:
            picks += self._learned_picks(rest, n_learned)
        rest = [key for key in rest if key not in picks]
        return picks + rest[: budget - len(picks)]

    def _learned_picks(self, keys: list[int], count: int) -> list[int]:
        """The ``count`` keys the learned model predicts fastest; none if it fails (the DP order fills in)."""
        candidates = [_measure_candidate(self._pool[key].schedule) for key in keys]
        try:
            order = self._learned.rank(self._context, candidates)
        except Exception:  # noqa: BLE001 - a broken model must not stop the search, only weaken it
            logger.exception("MorelloSearch: the learned model failed to rank candidates; using the DP order")
            return []
        return [keys[i] for i in order[:count]]

    def _learn_from(self, measurements) -> None:
        """Mark measurements as measured, note timed-out builds to retry, and feed the run times to the
        calibration and to the learned model."""
        for m in measurements:
            self._measured.add(m.key)
            if is_build_timeout(m.result) and m.key not in self._retried and m.key not in self._timed_out:
                self._timed_out.append(m.key)
            seconds = median_seconds(m.result)
            self._succeeded |= seconds is not None
            if seconds is not None and m.key in self._pool:
                self._calibration.add(self._pool[m.key].program, seconds)
        self._learned.update(self._context, [m.candidate for m in measurements], [m.result for m in measurements])

    def _switch_to_fallback(self, reason: str, level: int = logging.WARNING) -> None:
        task = _task_name(self._context)
        logger.log(level, "MorelloSearch hands task %r to meta-schedule's EvolutionarySearch: %s", task, reason)
        design_spaces, database, cost_model = self._tuning_args
        remaining = max(0, self._max_trials - self._issued)
        self._fallback = start_evolutionary_search(
            self._context, remaining, self._num_trials_per_iter, design_spaces, database, cost_model
        )


def _measure_candidate(schedule) -> MeasureCandidate:
    return MeasureCandidate(schedule, ms.arg_info.ArgInfo.from_entry_func(schedule.mod, remove_preproc=True))


def _task_name(context) -> str:
    return str(context.task_name) if context is not None else "?"
