"""One conformance suite over every scorer, aggregator and detector in models/.

Each case builds a fresh instance from a seed and feeds it a seeded input
sequence. For each we check: the input is not mutated, a pickle round-trip
gives an object that continues identically, the same seed gives the same
output, missing or extra features are tolerated, outputs are finite and in
range.
"""

from __future__ import annotations

import copy
import math
import pickle
import random

import pytest

from models.account_score import AccountScorer
from models.cluster_score import ClusterScorer
from models.cohort import CohortScorer
from models.pivot import PivotDetector
from models.templates import TemplateIndex

ACCOUNT_FEATURES = ["template_share", "shared_payment", "cot", "youth", "regularity",
                    "concentration", "volume", "output_ratio"]
CLUSTER_FEATURES = ["template_share", "balance", "synchrony", "divergence", "shared_payment",
                    "cot", "youth"]


def _feature_stream(names, seed, n=300):
    rng = random.Random(seed)
    return [{k: rng.random() for k in names} for _ in range(n)]


class AccountScorerCase:
    name = "account_scorer"

    def make(self, seed):
        return AccountScorer()

    def inputs(self, seed):
        return _feature_stream(ACCOUNT_FEATURES, seed)

    def step(self, obj, x):
        return obj.score(x, cohort=x.get("cot", 0.0))


class ClusterScorerCase:
    name = "cluster_scorer"

    def make(self, seed):
        return ClusterScorer()

    def inputs(self, seed):
        return _feature_stream(CLUSTER_FEATURES, seed)

    def step(self, obj, x):
        return obj.score(x, owners=int(x["balance"] * 50) + 1)


class CohortCase:
    name = "cohort"

    def make(self, seed):
        return CohortScorer(seed=seed, window_size=50)

    def inputs(self, seed):
        return _feature_stream(ACCOUNT_FEATURES, seed)

    def step(self, obj, x):
        return obj.score_then_learn(x)


class PivotCase:
    name = "pivot"

    def make(self, seed):
        return PivotDetector(min_events=10)

    def inputs(self, seed):
        rng = random.Random(seed)
        return [{"new": rng.randint(0, 40), "total": 40, "pop_new": rng.randint(0, 100),
                 "pop_total": 1000} for _ in range(200)]

    def step(self, obj, x):
        fired = obj.update(x["new"], x["total"], x["pop_new"], x["pop_total"])
        return (fired, obj.share, obj.population_share)


class TemplateCase:
    name = "templates"

    def make(self, seed):
        return TemplateIndex(max_distance=4)

    def inputs(self, seed):
        rng = random.Random(seed)
        bases = [rng.getrandbits(64) for _ in range(5)]
        out = []
        for i in range(400):
            if rng.random() < 0.5:
                h = rng.choice(bases)
                for _ in range(rng.randint(0, 3)):
                    h ^= 1 << rng.randrange(64)
            else:
                h = rng.getrandbits(64)
            out.append({"h": h, "owner": f"o{rng.randint(0, 30)}", "t": float(i)})
        return out

    def step(self, obj, x):
        tid = obj.match(x["h"], x["owner"], x["t"])
        return (tid, obj.owners(tid) if tid else 0)


CASES = [AccountScorerCase(), ClusterScorerCase(), CohortCase(), PivotCase(), TemplateCase()]


def _outputs_ok(value):
    values = value if isinstance(value, tuple) else (value,)
    for v in values:
        if isinstance(v, float):
            assert math.isfinite(v)
            assert 0.0 <= v <= 1.0, v


def _run(case, obj, xs):
    return [case.step(obj, x) for x in xs]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_input_not_mutated(case):
    xs = case.inputs(1)
    before = copy.deepcopy(xs)
    _run(case, case.make(1), xs)
    assert xs == before


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_same_seed_same_output(case):
    assert _run(case, case.make(5), case.inputs(5)) == _run(case, case.make(5), case.inputs(5))


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_pickle_round_trip_continues_identically(case):
    xs = case.inputs(2)
    a = case.make(2)
    _run(case, a, xs[: len(xs) // 2])
    b = pickle.loads(pickle.dumps(a))
    assert _run(case, a, xs[len(xs) // 2:]) == _run(case, b, xs[len(xs) // 2:])


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_outputs_finite_and_in_range(case):
    for out in _run(case, case.make(3), case.inputs(3)):
        _outputs_ok(out)


@pytest.mark.parametrize("case", [CASES[0], CASES[1], CASES[2]], ids=lambda c: c.name)
def test_missing_and_new_features_tolerated(case):
    obj = case.make(4)
    for i, x in enumerate(case.inputs(4)[:100]):
        x = dict(x)
        x.pop(sorted(x)[i % len(x)])
        x["a_feature_from_the_future"] = 0.5
        if case.name == "cluster_scorer":
            _outputs_ok(obj.score(x, owners=5))
        elif case.name == "account_scorer":
            _outputs_ok(obj.score(x, cohort=0.0))
        else:
            _outputs_ok(obj.score_then_learn(x))


def test_cohort_rejects_non_finite_inputs_gracefully():
    cohort = CohortScorer(seed=1, window_size=10)
    for _ in range(30):
        _outputs_ok(cohort.score_then_learn({"a": float("nan"), "b": float("inf"), "c": -3.0}))
