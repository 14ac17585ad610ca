"""``extraction-watch alerts diff`` and the broker-free parts of ``alerts tail``."""

from __future__ import annotations

import io
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from extraction_watch import alerts_tool
from extraction_watch.alerts_tool import (
    AlertSourceError,
    alert_json,
    check_alert,
    diff_alert_sets,
    episodes,
    format_alert_line,
    format_diff,
    load_alert_set,
)
from extraction_watch.cli import main
from extraction_watch.evaluate import load_alerts
from extraction_watch.replay import replay_lines
from models.engine import EngineConfig
from tests.extraction_watch.conftest import ReplayRun, SimulatedRun


def alert(alert_id: str, seq: int = 1, *, kind: str = "cluster", severity: str = "warning",
          status: str = "firing", entity: str | None = None, accounts: list[str] | None = None,
          total: int | None = None, detected_at: str = "2026-03-06T02:00:00.000Z",
          first_seen: str = "2026-03-06T01:00:00.000Z", score: float = 0.5,
          emitted_at: str | None = "2026-11-21T07:00:00.000Z") -> dict[str, Any]:
    accounts = ["a1", "a2"] if accounts is None else accounts
    return {
        "v": 1, "alert_id": alert_id, "seq": seq, "status": status, "kind": kind,
        "severity": severity, "score": score,
        "entity": {"type": "cluster", "id": entity or f"cl-{alert_id}"},
        "accounts": accounts, "accounts_total": len(accounts) if total is None else total,
        "first_seen": first_seen, "detected_at": detected_at, "emitted_at": emitted_at,
        "summary": f"cluster {alert_id}", "evidence": [], "sample_event_ids": [],
        "detector_version": "test-1",
    }


def accts(prefix: str, n: int, start: int = 0) -> list[str]:
    return [f"{prefix}{i}" for i in range(start, start + n)]


BASE = [
    alert("x", 1, severity="info", accounts=accts("x", 5), detected_at="2026-03-06T01:30:00Z"),
    alert("x", 2, severity="warning", accounts=accts("x", 5, 5), detected_at="2026-03-06T02:00:00Z"),
    alert("x", 3, severity="critical", accounts=[], total=10, detected_at="2026-03-06T03:00:00Z"),
    alert("y", 1, accounts=accts("y", 4), first_seen="2026-03-06T04:00:00Z",
          detected_at="2026-03-06T04:10:00Z"),
    alert("y", 2, status="resolved", accounts=[], total=4, first_seen="2026-03-06T04:00:00Z",
          detected_at="2026-03-06T10:10:00Z"),
    alert("p", 1, kind="pivot", entity="cl-x", severity="critical", accounts=accts("x", 3),
          detected_at="2026-03-07T02:00:00Z"),
]


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    return path


def changed(result: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return [m for m in result["matched"] if name in m["changes"]]


# ---------------------------------------------------------------- episodes


def test_episode_reduces_all_updates() -> None:
    by_id = {e.alert_id: e for e in episodes(BASE)}
    x = by_id["x"]
    assert x.final["seq"] == 3
    assert x.peak_severity == "critical"
    assert x.first_actionable_at == "2026-03-06T02:00:00Z"  # the info update does not count
    assert x.accounts == set(accts("x", 10))  # union over updates
    assert x.accounts_total == 10
    assert by_id["y"].final["status"] == "resolved"
    assert [e.alert_id for e in episodes(BASE)] == ["x", "p", "y"]  # by first evidence


def test_duplicate_deliveries_count_once() -> None:
    (episode,) = episodes([BASE[0], BASE[1], dict(BASE[1], emitted_at="2026-11-22T00:00:00Z")])
    assert episode.updates == 2


def test_resolved_or_info_updates_never_start_the_clock() -> None:
    records = [alert("z", 1, severity="info"),
               alert("z", 2, status="resolved", severity="warning")]
    (episode,) = episodes(records)
    assert episode.first_actionable_at is None and episode.peak_severity == "warning"


# ---------------------------------------------------------------- diff


def test_a_set_is_equivalent_to_itself() -> None:
    result = diff_alert_sets(BASE, BASE)
    assert result["equivalent"]
    assert result["counts"]["unchanged"] == result["counts"]["matched"] == 3
    assert "EQUIVALENT" in format_diff(result)


def test_wall_clock_version_score_and_text_are_ignored() -> None:
    other = [dict(r, emitted_at="2030-01-01T00:00:00Z", detector_version="test-2",
                  score=0.99, summary="reworded", evidence=[{"signal": "s", "value": 1,
                                                          "baseline": None, "detail": ""}])
             for r in BASE]
    assert diff_alert_sets(BASE, other)["equivalent"]
    assert diff_alert_sets(BASE, list(reversed(BASE)))["equivalent"]  # order does not matter


def test_added_and_removed() -> None:
    b = [r for r in BASE if r["alert_id"] != "y"] + [
        alert("w", accounts=accts("w", 3), first_seen="2026-03-06T05:00:00Z")]
    result = diff_alert_sets(BASE, b)
    assert not result["equivalent"]
    assert [e["alert_id"] for e in result["added"]] == ["w"]
    assert [e["alert_id"] for e in result["removed"]] == ["y"]
    assert result["counts"]["unchanged"] == 2
    text = format_diff(result)
    assert "added (in B only): 1" in text and "removed (in A only): 1" in text
    assert "cluster:cl-w" in text and "DIFFERENT" in text


def test_peak_severity_change() -> None:
    b = [dict(r, severity="warning") if r["alert_id"] == "x" and r["seq"] == 3 else r
         for r in BASE]
    result = diff_alert_sets(BASE, b)
    (pair,) = changed(result, "severity")
    assert pair["changes"] == {"severity": {"a": "critical", "b": "warning"}}
    assert result["counts"]["severity_changed"] == 1 and result["counts"]["unchanged"] == 2
    assert "changed peak severity: 1" in format_diff(result)


def test_time_to_detect_change_in_minutes_b_minus_a() -> None:
    b = [dict(r, detected_at="2026-03-06T02:45:00Z") if (r["alert_id"], r["seq"]) == ("x", 2)
         else r for r in BASE]
    (pair,) = changed(diff_alert_sets(BASE, b), "time_to_detect")
    assert pair["changes"]["time_to_detect"] == {
        "a": "2026-03-06T02:00:00Z", "b": "2026-03-06T02:45:00Z", "delta_min": 45.0}
    (pair,) = changed(diff_alert_sets(b, BASE), "time_to_detect")
    assert pair["changes"]["time_to_detect"]["delta_min"] == -45.0


def test_time_to_detect_when_one_side_never_warns() -> None:
    b = [dict(r, severity="info") if r["alert_id"] == "y" else r for r in BASE]
    result = diff_alert_sets(BASE, b)
    (pair,) = changed(result, "time_to_detect")
    assert pair["changes"]["time_to_detect"] == {
        "a": "2026-03-06T04:10:00Z", "b": None, "delta_min": None}
    assert "never" in format_diff(result)


def test_accounts_and_status_changes() -> None:
    b = [r for r in BASE if r["alert_id"] != "y"] + [
        alert("y", 1, accounts=accts("y", 3) + ["new1", "new2"],
              first_seen="2026-03-06T04:00:00Z", detected_at="2026-03-06T04:10:00Z")]
    result = diff_alert_sets(BASE, b)
    (pair,) = result["matched"][-1:]
    assert pair["b"]["alert_id"] == "y"
    assert pair["changes"]["accounts"] == {
        "added": 2, "removed": 1, "total_a": 4, "total_b": 5,
        "added_ids": ["new1", "new2"], "removed_ids": ["y3"]}
    assert pair["changes"]["status"] == {"a": "resolved", "b": "firing"}
    text = format_diff(result)
    assert "changed accounts: 1" in text and "changed final status: 1" in text


def renamed_pair(overlap: int, size: int = 10) -> tuple[list[dict], list[dict]]:
    """A cluster of ``size`` accounts, and the same cluster renamed sharing ``overlap``."""
    a = [alert("old", accounts=accts("m", size), entity="cl-old")]
    b = [alert("new", accounts=accts("m", overlap) + accts("n", size - overlap), entity="cl-new")]
    return a, b


def test_renamed_cluster_matched_by_accounts() -> None:
    a, b = renamed_pair(overlap=8)  # Jaccard 8 / 12 = 0.667
    result = diff_alert_sets(a, b)
    assert result["counts"]["matched_by_accounts"] == 1
    assert result["counts"]["added"] == result["counts"]["removed"] == 0
    (pair,) = result["matched"]
    assert pair["match"] == "accounts" and pair["jaccard"] == pytest.approx(0.6667)
    assert pair["changes"]["renamed"] == {
        "a": {"alert_id": "old", "entity": "cluster:cl-old"},
        "b": {"alert_id": "new", "entity": "cluster:cl-new"}}
    assert not result["equivalent"]  # a new id pages again: that is a difference
    assert "renamed (matched by accounts or id): 1" in format_diff(result)


def test_renamed_cluster_below_threshold_is_removed_and_added() -> None:
    a, b = renamed_pair(overlap=6)  # Jaccard 6 / 14 = 0.43
    result = diff_alert_sets(a, b)
    assert result["counts"]["matched"] == 0
    assert result["counts"]["added"] == result["counts"]["removed"] == 1
    assert diff_alert_sets(a, b, jaccard=0.4)["counts"]["matched_by_accounts"] == 1
    a, b = renamed_pair(overlap=8)
    assert diff_alert_sets(a, b, jaccard=0.7)["counts"]["matched"] == 0


def test_matching_by_accounts_is_greedy_best_first_and_per_kind() -> None:
    a = [alert("a1", accounts=accts("m", 10)), alert("a2", accounts=accts("m", 10, 5))]
    b = [alert("b1", accounts=accts("m", 10, 4)),   # J(a2)=9/11, J(a1)=6/14
         alert("b2", accounts=accts("m", 9)),       # J(a1)=9/10
         alert("b3", kind="pivot", accounts=accts("m", 10))]  # another kind: never matched
    result = diff_alert_sets(a, b)
    pairs = {m["a"]["alert_id"]: m["b"]["alert_id"] for m in result["matched"]}
    assert pairs == {"a1": "b2", "a2": "b1"}
    assert [e["alert_id"] for e in result["added"]] == ["b3"]


def test_exact_entity_match_wins_over_accounts() -> None:
    a = [alert("c", accounts=accts("m", 10))]
    b = [alert("c", accounts=accts("n", 10)), alert("d", accounts=accts("m", 10))]
    result = diff_alert_sets(a, b)
    (pair,) = result["matched"]
    assert pair["match"] == "entity" and pair["b"]["alert_id"] == "c"
    assert pair["changes"]["accounts"]["added"] == 10
    assert [e["alert_id"] for e in result["added"]] == ["d"]


def test_counts_add_up() -> None:
    a, b = renamed_pair(overlap=8)
    result = diff_alert_sets(BASE + a, BASE[:3] + b)
    c = result["counts"]
    assert c["added"] + c["matched"] == c["b_alerts"]
    assert c["removed"] + c["matched"] == c["a_alerts"]
    assert c["matched_by_entity"] + c["matched_by_accounts"] == c["matched"]


def test_bad_threshold_and_records_are_rejected() -> None:
    with pytest.raises(ValueError, match="jaccard"):
        diff_alert_sets(BASE, BASE, jaccard=0)
    with pytest.raises(AlertSourceError, match="B: record 2"):
        diff_alert_sets(BASE, [BASE[0], {"v": 1}])


@pytest.mark.parametrize(("field", "value", "message"), [
    ("v", 2, "version"), ("seq", 0, "seq"), ("seq", True, "seq"), ("severity", "high", "severity"),
    ("status", "open", "status"), ("entity", {"type": "cluster"}, "entity"),
    ("accounts", "a1", "accounts"), ("detected_at", "2026-03-06T02:00:00", "detected_at"),
    ("accounts_total", -1, "accounts_total"), ("score", "high", "score"),
])
def test_check_alert_names_the_field(field: str, value: Any, message: str) -> None:
    assert check_alert(alert("x")) is None
    problem = check_alert(dict(alert("x"), **{field: value}))
    assert problem is not None and message in problem


# ---------------------------------------------------------------- files and the command line


def test_load_alert_set_from_file(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "a.jsonl", BASE)
    path.write_bytes(path.read_bytes() + b"\n  \n")  # blank lines are skipped
    assert load_alert_set(str(path)) == load_alerts(path) == BASE


def test_cli_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = write_jsonl(tmp_path / "a.jsonl", BASE)
    same = write_jsonl(tmp_path / "same.jsonl",
                       [dict(r, emitted_at="2030-01-01T00:00:00Z") for r in BASE])
    other = write_jsonl(tmp_path / "other.jsonl", BASE[:3])
    assert main(["alerts", "diff", str(a), str(same)]) == 0
    assert "EQUIVALENT" in capsys.readouterr().out
    assert main(["alerts", "diff", str(a), str(other)]) == 1
    out = capsys.readouterr().out
    assert "removed (in A only): 2" in out and out.rstrip().endswith("DIFFERENT")
    assert main(["alerts", "diff", str(a), str(tmp_path / "missing.jsonl")]) == 2
    err = capsys.readouterr().err
    assert "missing.jsonl" in err and "cannot read" in err


def test_cli_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = write_jsonl(tmp_path / "a.jsonl", BASE)
    b = write_jsonl(tmp_path / "b.jsonl", BASE[:3])
    assert main(["alerts", "diff", "--json", str(a), str(b)]) == 1
    result = orjson.loads(capsys.readouterr().out)
    assert result["equivalent"] is False
    assert result["counts"]["removed"] == 2 and result["a"]["source"] == str(a)
    assert result == orjson.loads(orjson.dumps(diff_alert_sets(
        BASE, BASE[:3], labels=(str(a), str(b)))))


def test_cli_jaccard_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ra, rb = renamed_pair(overlap=6)
    a, b = write_jsonl(tmp_path / "a.jsonl", ra), write_jsonl(tmp_path / "b.jsonl", rb)
    assert main(["alerts", "diff", "--json", str(a), str(b)]) == 1
    assert orjson.loads(capsys.readouterr().out)["counts"]["added"] == 1
    assert main(["alerts", "diff", "--json", "--jaccard", "0.4", str(a), str(b)]) == 1
    assert orjson.loads(capsys.readouterr().out)["counts"]["matched_by_accounts"] == 1
    with pytest.raises(SystemExit) as exc:
        main(["alerts", "diff", "--jaccard", "0", str(a), str(b)])
    assert exc.value.code == 2


@pytest.mark.parametrize(("line", "message"), [
    (b'{"v": 1, "alert_id": ', "not JSON"),
    (b"[1, 2]", "JSON object"),
    (orjson.dumps(dict(alert("q"), severity="high")), "severity"),
])
def test_cli_bad_line_names_file_and_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                          line: bytes, message: str) -> None:
    good = write_jsonl(tmp_path / "good.jsonl", BASE)
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(orjson.dumps(BASE[0]) + b"\n\n" + line + b"\n" + orjson.dumps(BASE[1]))
    assert main(["alerts", "diff", str(good), str(bad)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"{bad}:3:" in captured.err and message in captured.err


def test_cli_empty_kafka_topic_name(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["alerts", "diff", "kafka:", "kafka:"]) == 2
    assert "no topic name" in capsys.readouterr().err


def test_tail_rejects_bad_options(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["--max", "0"], ["--timeout", "-1"], ["--from-beginning", "--since", "x"]):
        with pytest.raises(SystemExit) as exc:
            main(["alerts", "tail", *argv])
        assert exc.value.code == 2
    capsys.readouterr()


# ---------------------------------------------------------------- tail without a broker


def test_alert_line_has_the_fields_and_no_control_characters() -> None:
    record = alert("exw-1", 4, severity="critical", accounts=accts("a", 1234), score=0.8567)
    record["summary"] = "evil\x1b[2J summary\nnext line " + "x" * 300
    line = format_alert_line(record)
    assert "\n" not in line and "\x1b" not in line
    for part in ("2026-03-06T02:00:00.000Z", "CRITICAL", "firing", "cluster",
                 "cluster:cl-exw-1", "score 0.86", "accounts 1,234", "evil [2J summary",
                 "[exw-1 #4]"):
        assert part in line
    assert len(line) < 400


def test_alert_json_keeps_only_alert_fields() -> None:
    record = alert("x")
    assert orjson.loads(alert_json(record)) == record
    assert orjson.loads(alert_json(dict(record, prompt="secret"))) == record


class FakeConsumer:
    """Enough of KafkaConsumer.poll for ``_records``: one batch per call."""

    def __init__(self, batches: list[list[tuple[int, int, bytes | None]]]) -> None:
        self.batches = batches

    def poll(self, timeout_ms: int, max_records: int | None = None) -> dict:
        if not self.batches:
            return {}
        batch = self.batches.pop(0)[: max_records or None]
        return {p: [SimpleNamespace(partition=p, offset=o, timestamp=o, value=v)
                    for q, o, v in batch if q == p] for p in {q for q, _, _ in batch}}


def test_records_skip_bad_ones_stop_at_max_and_on_idle() -> None:
    good = [orjson.dumps(alert("x", seq)) for seq in (1, 2, 3)]
    consumer = FakeConsumer([[(0, 0, good[0]), (1, 1, b"not json"), (1, 2, None)],
                             [(0, 3, orjson.dumps({"v": 1})), (0, 4, good[1])],
                             [(1, 5, good[2])]])
    err = io.StringIO()
    got = list(alerts_tool._records(consumer, "alerts", max_records=None,
                                    idle_timeout_s=0.2, err=err))
    assert [r["seq"] for r in got] == [1, 2, 3]
    assert "partition 1 offset 1: not JSON" in err.getvalue()
    assert "partition 0 offset 3: not an alert v1 record" in err.getvalue()
    assert "not json" not in err.getvalue()  # never the record's content
    consumer = FakeConsumer([[(0, 0, good[0]), (0, 1, good[1]), (0, 2, good[2])]])
    got = list(alerts_tool._records(consumer, "alerts", max_records=2, idle_timeout_s=None,
                                    err=err))
    assert [r["seq"] for r in got] == [1, 2]


# ---------------------------------------------------------------- two real replays


def _replay(simulated: SimulatedRun, out: Path, **config: Any) -> Path:
    with simulated.events.open("rb") as events, out.open("wb") as alerts_out:
        replay_lines(events, "events.jsonl", alerts_out=alerts_out,
                     releases=simulated.releases.read_bytes().splitlines(),
                     config=EngineConfig(**config))
    return out


@pytest.fixture(scope="module")
def replays(simulated: SimulatedRun, replayed: ReplayRun,
            tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The session's CLI replay, the same in-process, and one with clusters scored every 20 min."""
    out = tmp_path_factory.mktemp("alerts_diff")
    return {"cli": replayed.alerts, "same": _replay(simulated, out / "same.jsonl"),
            "other": _replay(simulated, out / "other.jsonl", cluster_every_ticks=2)}


def test_two_runs_of_one_detector_are_equivalent(replays: dict[str, Path],
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    a, b = load_alert_set(str(replays["cli"])), load_alert_set(str(replays["same"]))
    assert a, "the scenario should raise alerts"
    assert [dict(r, emitted_at=None) for r in a] == [dict(r, emitted_at=None) for r in b]
    assert a != b  # stamped with wall-clock time at different moments
    assert main(["alerts", "diff", str(replays["cli"]), str(replays["same"])]) == 0
    assert "EQUIVALENT" in capsys.readouterr().out


def test_two_detector_configs_differ_consistently(replays: dict[str, Path],
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    a, b = load_alert_set(str(replays["cli"])), load_alert_set(str(replays["other"]))
    result = diff_alert_sets(a, b)
    c = result["counts"]
    assert not result["equivalent"]
    assert c["a_alerts"] == len({r["alert_id"] for r in a})
    assert c["b_alerts"] == len({r["alert_id"] for r in b})
    assert c["added"] + c["matched"] == c["b_alerts"]
    assert c["removed"] + c["matched"] == c["a_alerts"]
    assert c["unchanged"] == sum(1 for m in result["matched"] if not m["changes"])
    assert all(m["jaccard"] >= 0.5 for m in result["matched"] if m["match"] == "accounts")
    # the reverse diff mirrors this one
    back = diff_alert_sets(b, a)["counts"]
    assert (back["added"], back["removed"], back["matched"]) == (c["removed"], c["added"],
                                                                 c["matched"])
    # a strict threshold only turns matches by accounts into removals and additions
    strict = diff_alert_sets(a, b, jaccard=1.0)["counts"]
    assert strict["matched_by_entity"] == c["matched_by_entity"]
    assert strict["added"] - c["added"] == c["matched_by_accounts"] - strict["matched_by_accounts"]
    assert main(["alerts", "diff", str(replays["cli"]), str(replays["other"])]) == 1
    assert capsys.readouterr().out == format_diff(
        diff_alert_sets(a, b, labels=(str(replays["cli"]), str(replays["other"]))))
