"""The cluster score: is a linked group of accounts an extraction campaign?

Coordination is what separates a campaign from a crowd of honest customers:
a load-balanced farm spreads traffic evenly over its accounts (a dispersion
near Poisson, where honest volume is heavy-tailed), keeps its accounts busy
at the same hours, shares templates and payment methods, and concentrates on
a narrow set of capabilities that differs from the population's mix.

>>> scorer = ClusterScorer()
>>> farm = {"template_share": 0.9, "cot": 0.2, "youth": 0.8, "shared_payment": 0.0,
...         "balance": 0.8, "synchrony": 0.9, "divergence": 0.5}
>>> crowd = {"template_share": 0.9, "cot": 0.05, "youth": 0.0, "shared_payment": 0.0,
...          "balance": 0.0, "synchrony": 0.05, "divergence": 0.1}
>>> scorer.score(crowd, owners=40) < 0.45 < 0.6 < scorer.score(farm, owners=40)
True
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from models.ranking import by_value_desc

__all__ = ["ClusterScorer", "js_divergence", "dispersion_balance", "co_activity"]


def js_divergence(p: Mapping[str, float], q: Mapping[str, float]) -> float:
    """Jensen-Shannon divergence (base 2, in [0, 1]) of two count mixes.

    >>> js_divergence({"a": 1}, {"a": 5})
    0.0
    >>> round(js_divergence({"a": 1}, {"b": 1}), 6)
    1.0
    """
    sp, sq = sum(p.values()), sum(q.values())
    if sp <= 0 or sq <= 0:
        return 0.0
    total = 0.0
    for key in set(p) | set(q):
        a, b = p.get(key, 0) / sp, q.get(key, 0) / sq
        m = (a + b) / 2.0
        if a > 0:
            total += 0.5 * a * math.log2(a / m)
        if b > 0:
            total += 0.5 * b * math.log2(b / m)
    return min(1.0, max(0.0, total))


def dispersion_balance(volumes: Iterable[float], min_accounts: int = 12,
                       min_mean: float = 8.0) -> float:
    """1 when volumes are as even as Poisson noise allows, 0 when heavy-tailed.

    Uses the coefficient of variation in excess of Poisson noise,
    ``sqrt(var / mean**2 - 1 / mean)``: an operator spreading load over its
    accounts stays near 0-0.4, an honest population (lognormal or Pareto
    volumes) is above 1. With few accounts or few requests each, even an
    honest crowd looks even, so that is no evidence (0).

    >>> dispersion_balance([10, 11, 9, 10, 12, 8, 10, 11, 9, 10, 12, 9])
    1.0
    >>> dispersion_balance([1, 1, 2, 3, 150, 900, 4, 7, 30, 2, 5, 60])
    0.0
    >>> dispersion_balance([3, 3, 4])
    0.0
    """
    xs = list(volumes)
    if len(xs) < max(2, min_accounts):
        return 0.0
    mean = sum(xs) / len(xs)
    if mean < min_mean:
        return 0.0
    var = sum((x - mean) ** 2 for x in xs) / (len(xs) - 1)
    excess_cv = math.sqrt(max(0.0, var / (mean * mean) - 1.0 / mean))
    # excess CV <= 0.4 -> 1.0; >= 1.0 -> 0.0
    return min(1.0, max(0.0, (1.0 - excess_cv) / 0.6))


def co_activity(times_by_account: Iterable[Iterable[float]], bucket_s: float = 10.0,
                stratum_s: float = 900.0) -> float:
    """How much more often accounts act in the same ``bucket_s`` than chance says.

    Counts pairs of distinct accounts active in the same time bucket and
    divides by the pairs expected if each account's events were placed
    independently, each account keeping how active it was in every
    ``stratum_s`` (strata counted back from the newest event), with one
    pseudo-pair added to both. About 1 for independent people, far above 1 for
    a farm firing waves across its accounts.

    Chance is judged stratum by stratum because people who merely keep the same
    hours (one office's working day, everyone's recent calls in the sample) are
    active in the same quarter-hours without acting together; only co-timing
    finer than that is evidence.

    >>> waves = [[3600.0 * w + a * 0.1 for w in range(8)] for a in range(10)]
    >>> co_activity(waves) > 20
    True
    >>> import random
    >>> rng = random.Random(1)
    >>> people = [[rng.uniform(0, 36000) for _ in range(8)] for _ in range(10)]
    >>> 0.0 <= co_activity(people) < 3
    True
    >>> office = [[d * 86400.0 + rng.uniform(9, 11) * 3600 for d in range(3) for _ in range(3)]
    ...           for _ in range(10)]
    >>> co_activity(office) < 3
    True
    """
    buckets: dict[int, set[int]] = {}
    per_account: list[set[int]] = []
    newest = -1 << 62
    for i, times in enumerate(times_by_account):
        seen = set()
        for t in times:
            b = int(t // bucket_s)
            seen.add(b)
            if b > newest:
                newest = b
        for b in seen:
            buckets.setdefault(b, set()).add(i)
        per_account.append(seen)
    if len(per_account) < 2:
        return 0.0
    per = max(1, int(stratum_s / bucket_s))
    # per stratum: the sum and the sum of squares of the accounts' active buckets
    sums: dict[int, int] = {}
    squares: dict[int, int] = {}
    for seen in per_account:
        counts: dict[int, int] = {}
        for b in seen:
            k = (newest - b) // per
            counts[k] = counts.get(k, 0) + 1
        for k, c in counts.items():
            sums[k] = sums.get(k, 0) + c
            squares[k] = squares.get(k, 0) + c * c
    expected = 0.0
    for k, total in sums.items():
        expected += (total * total - squares[k]) / (2.0 * per)
    observed = 0.0  # (summed in bucket order, as sum() over a generator adds them)
    for s in buckets.values():
        observed += len(s) * (len(s) - 1) / 2.0
    # one pseudo-pair on each side: a single chance coincidence among a few sparse
    # accounts (expected far below one pair) is no evidence of anything
    return (observed + 1.0) / (expected + 1.0) if expected > 0 else 0.0


class ClusterScorer:
    """Cluster score in [0, 1] from two families of evidence, damped for tiny clusters.

    *Coordination* (shared payment methods across owners, synchronised timing,
    load balance, accounts sharing egress networks, freshly created accounts) says the accounts are run by one
    operator; *content* (shared templates, chain-of-thought elicitation,
    capability mix unlike the population's) says they extract. Within a
    family the signals combine as a noisy-OR (one strong signal suffices, a
    second adds less); the families are then averaged, so neither alone can
    reach a high score.

    Parameters
    ----------
    coordination, content
        Reliability weight per signal (the largest contribution it can make).
    coordination_weight
        Share of the score that comes from coordination.
    full_size_owners
        Clusters with at least this many owners get no size damping.
    """

    def __init__(
        self,
        coordination: dict[str, float] | None = None,
        content: dict[str, float] | None = None,
        coordination_weight: float = 0.55,
        full_size_owners: int = 10,
    ):
        self.coordination = dict(coordination or {
            "shared_payment": 0.9, "synchrony": 0.8, "balance": 0.7, "egress_overlap": 0.6,
            "youth": 0.6})
        self.content = dict(content or {
            "template_share": 0.8, "cot": 0.7, "divergence": 0.6})
        self.coordination_weight = coordination_weight
        self.full_size_owners = full_size_owners

    def size_factor(self, owners: int) -> float:
        if owners >= self.full_size_owners:
            return 1.0
        return 0.6 + 0.4 * math.log(max(owners, 1)) / math.log(self.full_size_owners)

    @staticmethod
    def _noisy_or(weights: Mapping[str, float], features: Mapping[str, float]) -> float:
        miss = 1.0
        for name, weight in weights.items():
            value = features.get(name, 0.0)
            value = 0.0 if not math.isfinite(value) else min(1.0, max(0.0, value))
            miss *= 1.0 - weight * value
        return 1.0 - miss

    def families(self, features: Mapping[str, float]) -> tuple[float, float]:
        """(coordination, content) evidence, each in [0, 1]."""
        return (self._noisy_or(self.coordination, features),
                self._noisy_or(self.content, features))

    def score(self, features: Mapping[str, float], owners: int) -> float:
        coordination, content = self.families(features)
        w = self.coordination_weight
        base = w * coordination + (1.0 - w) * content
        return min(1.0, max(0.0, base * self.size_factor(owners)))

    def contributions(self, features: Mapping[str, float]) -> list[tuple[str, float]]:
        weights = {**self.coordination, **self.content}
        parts = [(k, weights[k] * min(1.0, max(0.0, v))) for k, v in features.items()
                 if k in weights and math.isfinite(v)]
        return sorted(parts, key=by_value_desc)
