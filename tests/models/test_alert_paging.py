"""A cluster larger than one alert record names every member, in pages of one update."""

from __future__ import annotations

from models.alerts import MAX_ACCOUNTS, AlertEpisode
from models.engine import Engine


def _episode(members: int) -> AlertEpisode:
    episode = AlertEpisode.open("cluster", "acct-0", 0.0, "cluster")
    for i in range(members):
        episode.members[f"acct-{i:05d}"] = round(1.0 - i / (members * 2), 4)
    return episode


def test_an_update_pages_through_every_member_once() -> None:
    engine = Engine()
    episode = _episode(2 * MAX_ACCOUNTS + 500)
    out: list = []
    engine._emit(episode, 3600.0, out)
    records = [r for kind, r in out if kind == "alert"]
    assert [r["seq"] for r in records] == [1, 2, 3]
    assert {r["detected_at"] for r in records} == {records[0]["detected_at"]}
    pages = [r["accounts"] for r in records]
    assert set().union(*pages) == set(episode.members)
    # each page names members no earlier page named, first (the last page is
    # topped up with the strongest members)
    assert not set(pages[0]) & set(pages[1])
    assert not set(pages[2][:500]) & (set(pages[0]) | set(pages[1]))
    assert all(len(r["accounts"]) <= MAX_ACCOUNTS and r["accounts_total"] == len(episode.members)
               for r in records)
    # the strongest members come first
    assert records[0]["accounts"][0] == "acct-00000"


def test_a_small_cluster_stays_one_record_per_update() -> None:
    engine = Engine()
    episode = _episode(40)
    out: list = []
    engine._emit(episode, 3600.0, out)
    assert len(out) == 1 and out[0][1]["accounts_total"] == 40
    episode.members["acct-new"] = 0.9
    engine._emit(episode, 7200.0, out)
    # later updates name the new member first, then the strongest others
    assert out[1][1]["seq"] == 2 and out[1][1]["accounts"][0] == "acct-new"
