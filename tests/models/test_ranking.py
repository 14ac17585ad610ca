"""The shared ordering: largest value first, ties by key, whatever the insertion order."""

import random

from models.ranking import by_value_desc, by_value_desc_str, ranked, ranked_items


def _mix(rng: random.Random, n: int) -> dict:
    # few distinct values, so ties are common
    return {f"acct_{rng.randrange(10 * n)}": rng.choice([0.5, 0.25, 0.125, 1.0, 0.0])
            for _ in range(n)}


def test_ranked_is_value_descending_then_key_ascending() -> None:
    rng = random.Random(7)
    for n in (0, 1, 2, 17, 300):
        mix = _mix(rng, n)
        expected = sorted(mix, key=lambda a: (-mix[a], a))
        assert ranked(mix) == expected
        assert ranked_items(mix) == [(a, mix[a]) for a in expected]


def test_ranked_ignores_insertion_order() -> None:
    rng = random.Random(11)
    mix = _mix(rng, 200)
    shuffled = list(mix.items())
    rng.shuffle(shuffled)
    assert ranked(dict(shuffled)) == ranked(mix)
    assert ranked_items(dict(shuffled)) == ranked_items(mix)


def test_ranked_breaks_ties_by_key() -> None:
    assert ranked({"b": 2, "a": 2, "c": 3}) == ["c", "a", "b"]
    assert ranked({3: 1, 1: 1, 2: 5}) == [2, 1, 3]


def test_keys_for_sorted_and_min() -> None:
    counts = {"x": 1, "y": 4, "w": 4}
    assert sorted(counts.items(), key=by_value_desc) == [("w", 4), ("y", 4), ("x", 1)]
    assert min(counts.items(), key=by_value_desc) == ("w", 4)
    # None among strings (an account with no egress network yet) sorts as "None"
    mixed = {None: 2, "net-a": 2, "net-b": 5}
    assert sorted(mixed.items(), key=by_value_desc_str) == [("net-b", 5), (None, 2), ("net-a", 2)]


def test_ranked_limit_is_the_head_of_the_full_ranking() -> None:
    rng = random.Random(13)
    for n in (0, 1, 31, 32, 33, 500):
        mix = {rng.randrange(10 * n + 1): rng.randrange(5) for _ in range(n)}
        for limit in (0, 1, 32, n, n + 5):
            assert ranked(mix, limit) == ranked(mix)[:limit]
