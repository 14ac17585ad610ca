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
...          "balance": 0.0, "synchrony": 0.2, "divergence": 0.1}
>>> scorer.score(crowd, owners=40) < 0.45 < scorer.score(farm, owners=40)
True
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

__all__ = ["ClusterScorer", "js_divergence", "dispersion_balance"]


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


def dispersion_balance(volumes: Iterable[float]) -> float:
    """1 when volumes are as even as Poisson noise allows, 0 when heavy-tailed.

    Uses the index of dispersion (variance / mean): about 1 for load-balanced
    accounts, far above 1 for honest populations.

    >>> dispersion_balance([10, 11, 9, 10, 12, 8])
    1.0
    >>> dispersion_balance([1, 1, 2, 3, 150, 900, 4])
    0.0
    """
    xs = list(volumes)
    if len(xs) < 2:
        return 0.0
    mean = sum(xs) / len(xs)
    if mean <= 0:
        return 0.0
    var = sum((x - mean) ** 2 for x in xs) / (len(xs) - 1)
    fano = max(var / mean, 1e-9)
    # fano <= 2 -> 1.0; fano >= 60 -> 0.0, log-linear between
    return min(1.0, max(0.0, 1.0 - math.log(fano / 2.0) / math.log(30.0)))


class ClusterScorer:
    """Weighted cluster score in [0, 1], damped for very small clusters.

    Parameters
    ----------
    weights
        Weight per signal, normalised to sum to 1.
    full_size_owners
        Clusters with at least this many owners get no size damping.
    """

    def __init__(self, weights: dict[str, float] | None = None, full_size_owners: int = 10):
        self.weights = dict(weights or {
            "template_share": 0.20,
            "balance": 0.15,
            "synchrony": 0.10,
            "divergence": 0.15,
            "shared_payment": 0.15,
            "cot": 0.15,
            "youth": 0.10,
        })
        self.full_size_owners = full_size_owners
        total = sum(self.weights.values())
        self._w = {k: v / total for k, v in self.weights.items()}

    def size_factor(self, owners: int) -> float:
        if owners >= self.full_size_owners:
            return 1.0
        return 0.6 + 0.4 * math.log(max(owners, 1)) / math.log(self.full_size_owners)

    def score(self, features: Mapping[str, float], owners: int) -> float:
        base = sum(self._w.get(k, 0.0) * v for k, v in features.items())
        return min(1.0, max(0.0, base * self.size_factor(owners)))

    def contributions(self, features: Mapping[str, float]) -> list[tuple[str, float]]:
        parts = [(k, self._w[k] * v) for k, v in features.items() if k in self._w]
        return sorted(parts, key=lambda kv: (-kv[1], kv[0]))
