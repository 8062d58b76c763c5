"""A learned ranking of unmeasured candidates: meta-schedule's XGBModel on PerStoreFeature, fit on runner results."""
from __future__ import annotations

import numpy as np
from tvm.s_tir import meta_schedule as ms

from ..measure.records import median_seconds


class LearnedRanker:
    """Orders candidates by an XGBoost model trained on this task's measurements.

    We own the model instead of borrowing the one ``tune_tir`` passes in: that one answers with random
    numbers until it has seen 100 measurements, longer than a short tune lasts.

    Parameters
    ----------
    num_threads : xgboost threads (the task's ``num_threads``).
    min_successes : successful measurements needed before the ranking is trusted.
    """

    def __init__(self, num_threads: int, min_successes: int = 8) -> None:
        self.min_successes = min_successes
        self.successes = 0
        self.model = ms.cost_model.XGBModel(
            extractor=ms.feature_extractor.PerStoreFeature(),
            num_warmup_samples=0,
            num_tuning_cores=max(1, num_threads),
            adaptive_training=False,
        )

    @property
    def ready(self) -> bool:
        return self.successes >= self.min_successes

    def update(self, context, candidates: list, results: list) -> None:
        """Learn from a batch of runner results (failed ones teach the model they are slow)."""
        if not candidates:
            return
        self.successes += sum(median_seconds(r) is not None for r in results)
        self.model.update(context, list(candidates), list(results))

    def rank(self, context, candidates: list) -> list[int]:
        """Indices into ``candidates``, predicted fastest first."""
        if not candidates:
            return []
        scores = np.asarray(self.model.predict(context, list(candidates)))
        return [int(i) for i in np.argsort(-scores, kind="stable")]
