"""The account score: transparent evidence that one account takes part in extraction.

Each signal from MISSION.md is mapped to [0, 1] and weighted; the weights are
hyperparameters. The score only marks an account as a *suspect*: an alert
needs a linked cluster of several owners whose combined behaviour is
extraction-like (:mod:`models.cluster_score`). Signals that a single honest
customer can show on its own (one private template at high volume, a narrow
task mix, step-by-step prompts) carry little weight here; signals that need
other accounts (a template shared across owners, a payment method shared
across owners) carry more.

>>> scorer = AccountScorer()
>>> benign = {"template_share": 0.0, "cot": 0.1, "youth": 0.0, "shared_payment": 0.0,
...           "regularity": 0.1, "concentration": 0.3}
>>> farm = {"template_share": 0.9, "cot": 0.8, "youth": 1.0, "shared_payment": 1.0,
...         "regularity": 0.6, "concentration": 0.7}
>>> scorer.score(benign, cohort=0.0) < 0.2 < 0.6 < scorer.score(farm, cohort=0.5)
True
"""

from __future__ import annotations

import math

from models.ranking import by_value_desc

__all__ = ["AccountScorer", "TASK_VOCABULARY"]

TASK_VOCABULARY = (
    "coding", "agentic", "reasoning", "math", "vision",
    "data_analysis", "writing", "chat", "grading", "other",
)
_LOG_TASKS = math.log(len(TASK_VOCABULARY))


def _clip(x: float) -> float:
    return 0.0 if x < 0.0 else 1.0 if x > 1.0 else x


class AccountScorer:
    """Weighted evidence score of one account, in [0, 1].

    Parameters
    ----------
    weights
        Weight per signal; they are normalised to sum to 1.
    youth_days
        Accounts younger than this (at first sight) count as new.
    min_template_owners
        A template is *shared* when this many owners used it.
    """

    def __init__(
        self,
        weights: dict[str, float] | None = None,
        youth_days: float = 30.0,
        min_template_owners: int = 3,
    ):
        self.weights = dict(weights or {
            "template_share": 0.30,
            "shared_payment": 0.20,
            "cot": 0.15,
            "youth": 0.15,
            "regularity": 0.10,
            "concentration": 0.05,
            "cohort": 0.05,
        })
        self.youth_days = youth_days
        self.min_template_owners = min_template_owners
        total = sum(self.weights.values())
        self._w = {k: v / total for k, v in self.weights.items()}

    def features(self, acc, template_owners, payment_owners: int) -> dict[str, float]:
        """Signals of ``acc`` in [0, 1]; ``template_owners(tid)`` counts a template's owners."""
        return _features(acc, template_owners, payment_owners, self.youth_days,
                         self.min_template_owners)

    def upper_bound(self, acc, template_owners, payment_owners: int) -> float:
        """A cheap bound on :meth:`score`, to skip accounts that cannot become suspects."""
        return _upper_bound(self._w, acc, template_owners, payment_owners, self.youth_days,
                            self.min_template_owners)

    def score(self, features: dict[str, float], cohort: float) -> float:
        return _score(self._w, features, cohort)

    def contributions(self, features: dict[str, float], cohort: float) -> list[tuple[str, float]]:
        """Per-signal contributions, largest first (for evidence)."""
        w = self._w
        parts = [(k, w[k] * v) for k, v in features.items() if k in w]
        parts.append(("cohort", w.get("cohort", 0.0) * cohort))
        return sorted(parts, key=by_value_desc)


# The per-scoring work, as module functions: the compiled build types them
# (account_score.pxd), which it cannot do for methods of a plain class.

def _template_calls(acc, template_owners, min_owners):  # (typed in account_score.pxd)
    """Calls of ``acc`` whose template has at least ``min_owners`` owners."""
    shared = 0
    for tid, count in acc.templates.items():
        if template_owners(tid) >= min_owners:
            shared += count
    return shared


def _features(acc, template_owners, payment_owners, youth_days, min_owners):
    # (typed in account_score.pxd)
    shared = _template_calls(acc, template_owners, min_owners) if acc.n_hashed else 0
    template_share = shared / acc.n_hashed if acc.n_hashed else 0.0
    age = acc.age_days()
    youth = 0.0 if age is None else _clip(1.0 - age / youth_days)
    spread = acc.gap_spread()
    regularity = 0.0 if spread is None else _clip((2.0 - spread) / 1.5)
    tasks = acc.task_counts()
    task_total = sum(tasks.values())
    if task_total >= 8:
        entropy = 0.0
        for count in tasks.values():
            p = count / task_total
            entropy -= p * math.log(p)
        concentration = _clip(1.0 - entropy / _LOG_TASKS)
    else:
        concentration = 0.0
    tokens = acc.in_tokens + acc.out_tokens
    return {
        "template_share": _clip(template_share),
        "shared_payment": _clip((payment_owners - 1) / 4.0),
        "cot": _clip(acc.cot_mean()),
        "youth": youth,
        "regularity": regularity,
        "concentration": concentration,
        "volume": _clip(math.log1p(acc.w_n) / math.log1p(2000.0)),
        "output_ratio": acc.out_tokens / tokens if tokens > 0 else 0.0,
    }


def _upper_bound(w, acc, template_owners, payment_owners, youth_days, min_owners):
    # (typed in account_score.pxd)
    age = acc.age_days()
    youth = 0.0 if age is None else _clip(1.0 - age / youth_days)
    shared = _template_calls(acc, template_owners, min_owners) if acc.templates else 0
    return (
        w.get("template_share", 0.0) * (shared / acc.n_hashed if acc.n_hashed else 0.0)
        + w.get("shared_payment", 0.0) * _clip((payment_owners - 1) / 4.0)
        + w.get("cot", 0.0) * _clip(acc.cot_mean())
        + w.get("youth", 0.0) * youth
        + w.get("regularity", 0.0) + w.get("concentration", 0.0) + w.get("cohort", 0.0)
    )


def _score(w, features, cohort):  # (typed in account_score.pxd)
    total = w.get("cohort", 0.0) * cohort
    for name, value in features.items():
        weight = w.get(name)
        if weight:
            total += weight * value
    return _clip(total)
