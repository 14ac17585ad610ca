"""Cohort scoring: how unusual is an entity's feature vector among its peers.

A River :class:`~river.anomaly.HalfSpaceTrees` forest learns the cohort
(features must lie in [0, 1]); its raw score is turned into a rank against
the running distribution of cohort scores, so no constant threshold is ever
applied to the raw score. Test-then-train: score first, then learn, and never
learn from an entity the rules flagged (River's ``protect_anomaly_detector``
idea), so a patient campaign cannot teach the model that it is normal.

A high score is indicative of an anomaly.

>>> import random
>>> rng = random.Random(3)
>>> cohort = CohortScorer(seed=3, window_size=50)
>>> for _ in range(400):
...     _ = cohort.score_then_learn({"a": rng.random() * 0.2, "b": rng.random() * 0.2})
>>> odd = cohort.score_then_learn({"a": 0.95, "b": 0.97}, learn=False)
>>> usual = cohort.score_then_learn({"a": 0.1, "b": 0.1}, learn=False)
>>> odd > usual, 0.0 <= usual <= odd <= 1.0
(True, True)
"""

from __future__ import annotations

import math

from river import anomaly, stats

__all__ = ["CohortScorer"]


class CohortScorer:
    """Half-space-trees cohort anomaly score, rank-normalised to [0, 1].

    Parameters
    ----------
    n_trees, height, window_size
        HalfSpaceTrees hyperparameters (features are expected in [0, 1]).
    seed
        The only source of randomness.
    """

    def __init__(self, n_trees: int = 10, height: int = 8, window_size: int = 250, seed: int = 7):
        self.n_trees = n_trees
        self.height = height
        self.window_size = window_size
        self.seed = seed
        self._forest = anomaly.HalfSpaceTrees(
            n_trees=n_trees, height=height, window_size=window_size, seed=seed
        )
        self._median = stats.Quantile(0.5)
        self._high = stats.Quantile(0.99)
        self._learned = 0

    @property
    def learned(self) -> int:
        return self._learned

    def score_then_learn(self, x: dict[str, float], learn: bool = True) -> float:
        """Return the rank-normalised score of ``x``, then learn it if ``learn``."""
        clean = {k: (min(1.0, max(0.0, v)) if math.isfinite(v) else 0.0) for k, v in x.items()}
        raw = self._forest.score_one(clean)
        median, high = self._median.get(), self._high.get()
        if self._learned < self.window_size or median is None or high is None or high <= median:
            # HalfSpaceTrees scores 0 until its first window is complete.
            rank = 0.0
        else:
            rank = min(1.0, max(0.0, (raw - median) / (high - median)))
        if learn:
            self._forest.learn_one(clean)
            self._median.update(raw)
            self._high.update(raw)
            self._learned += 1
        return rank
