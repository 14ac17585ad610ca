"""The random-world quality sweep, and worlds that once failed kept as regression cases."""

from __future__ import annotations

import orjson
import pytest

from extraction_watch import sweep
from extraction_watch.cli import main
from extraction_watch.sweep import draw, run_world, summarise


def test_a_world_is_always_drawn_the_same_and_worlds_differ():
    assert draw(12) == draw(12)
    assert len({str(sorted(draw(i).items())) for i in range(20)}) == 20
    # every shape the sweep varies stays in the range the simulator accepts
    for i in range(50):
        o = draw(i)
        for group in ("reasoning", "agentic", "hydra"):
            if o.get(f"{group}.enabled") is False:
                continue
            assert o[f"{group}.accounts"] >= 4 and o[f"{group}.payment_methods"] >= 1
            assert 0.4 <= o[f"{group}.templated_share"] <= 0.95
        assert 2 <= o["research_team.accounts"] <= 45
        assert 0.25 <= o["research_team.rate_sigma"] <= 1.0
    # the research team is drawn apart: about half the worlds have one without an org
    assert 15 <= sum(not draw(i)["research_team.shared_org"] for i in range(50)) <= 35


@pytest.mark.parametrize("world, why", [
    # a proxy-network customer asking for reasoning traces was linked to the hydra
    # behind the same network by egress alone (precision 0.998, a trap account named)
    (4, "egress-only joiner off the cluster's capability focus"),
    # a farm of 8 accounts whose last 2 joined the alerted cluster one at a time and were
    # never named by an update (recall 0.75)
    (33, "late joiners of a small cluster"),
    # research teams without an org (each researcher signed up alone, all paying with the
    # lab's card from its office) alerted as clusters and named whole: 30 researchers with
    # volumes as even as a farm's (load balance 0.82; precision 0.93), and 20 whose shared
    # working hours read as synchrony (0.45; once balance was no longer taken as concert)
    (94, "organisation with even volumes"),
    (160, "organisation keeping the same hours"),
])
def test_worlds_that_once_failed_pass_every_bar(world, why):
    row = run_world(world)
    assert row["passed"], (why, row)
    assert row["trap_accounts_named"] == {} and row["precision"] == 1.0


def test_a_pivot_carried_by_accounts_that_joined_after_moving_is_seen_when_they_join(
        tmp_path):
    # world 18: a hydra of 573 accounts at under one call an hour each moved to the new
    # model through accounts not yet in its alerted cluster (each calls in a burst, then
    # rests for hours); the members' own calls showed no move for 9 h (pivot alert 9.3 h
    # after the release). The members' calls since the release now count from the tick
    # they join, and the alert says that this view raised it
    row = run_world(18, keep=tmp_path)
    assert row["passed"] and row["precision"] == 1.0, row
    hydra = next(c for c in row["campaigns"] if c["archetype"] == "hydra")
    assert hydra["pivot_latency_s"] < 5 * 3600
    pivots = [orjson.loads(x) for x in (tmp_path / "w18" / "alerts.jsonl").read_bytes().splitlines()
              if b'"kind":"pivot"' in x]
    first = pivots[0]["evidence"][0]
    assert first["signal"] == "new_model_share" and first["value"] > 3 * first["baseline"]
    assert "with the calls since the release of the members that joined it" in first["detail"]


def test_summary_counts_failures_by_bar():
    rows = [{"world": 0, "passed": True, "failed": [], "precision": 1.0, "recall": 1.0},
            {"world": 1, "passed": False, "failed": ["recall", "traps"], "precision": 0.99,
             "recall": 0.8}]
    s = summarise(rows)
    assert s["passed_all_bars"] == 1 and s["failures_by_bar"] == {"recall": 1, "traps": 1}
    assert s["mean_recall"] == 0.9 and s["min_precision"] == 0.99 and s["failing_worlds"] == [1]


def test_sweep_command_writes_its_results(tmp_path, capsys):
    out = tmp_path / "sweep.json"
    assert main(["sweep", "--first", "5", "--worlds", "1", "--jobs", "1", "--json", str(out),
                 "--keep", str(tmp_path / "worlds")]) == 0
    result = orjson.loads(out.read_bytes())
    assert result["summary"]["worlds"] == 1 and result["worlds"][0]["world"] == 5
    assert result["machine"]["cores"] >= 1 and result["machine"]["models_build"] in (
        "compiled", "pure-python")
    assert (tmp_path / "worlds" / "w5" / "overrides.json").exists()
    printed = capsys.readouterr().out
    assert "world    5" in printed and "of 1 worlds pass every bar" in printed


def _fake_world(world, keep=None):
    if world == 7:
        raise OSError(28, "No space left on device")
    return {"world": world, "events": 10, "passed": True, "failed": [], "precision": 1.0,
            "recall": 1.0, "campaigns": [], "trap_accounts_named": {}, "wall_s": 0.0}


def test_a_world_that_cannot_run_is_reported_and_the_sweep_goes_on(tmp_path, capsys,
                                                                      monkeypatch):
    monkeypatch.setattr(sweep, "run_world", _fake_world)
    out = tmp_path / "sweep.json"
    assert main(["sweep", "--first", "6", "--worlds", "3", "--jobs", "1",
                 "--json", str(out)]) == 1
    result = orjson.loads(out.read_bytes())
    assert [r["world"] for r in result["worlds"]] == [6, 8]
    assert result["errors"] == [{"world": 7, "error": "OSError: [Errno 28] No space left on device"}]
    assert result["summary"]["errors"] == 1
    assert "world    7  ERROR OSError" in capsys.readouterr().out
