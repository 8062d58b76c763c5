"""Meta-schedule's EvolutionarySearch, set up inside MorelloSearch for tasks the DP cannot express."""
from __future__ import annotations

from tvm.s_tir import meta_schedule as ms


def start_evolutionary_search(
    context: ms.TuneContext,
    max_trials: int,
    num_trials_per_iter: int,
    design_spaces: list,
    database: ms.database.Database | None,
    cost_model: ms.cost_model.CostModel | None,
) -> ms.search_strategy.SearchStrategy:
    """Return an EvolutionarySearch bound to ``context`` and ready for its first batch.

    It searches the design spaces meta-schedule generated for the task, with the tune's own database and
    cost model, exactly as if it had been the strategy passed to ``tune_tir``.
    """
    search = ms.search_strategy.EvolutionarySearch()
    search._initialize_with_tune_context(context)  # pylint: disable=protected-access
    if database is None:
        database = ms.database.MemoryDatabase()
    if cost_model is None:
        cost_model = ms.cost_model.RandomModel()
    search.pre_tuning(max_trials, num_trials_per_iter, design_spaces, database, cost_model)
    return search
