"""Tests for extraction_watch.evaluate: scoring alerts against simulator truth."""

from __future__ import annotations

import copy

import orjson
import pytest

from extraction_watch.evaluate import (
    QUALITY_BARS,
    evaluate,
    format_report,
    load_alerts,
    load_truth,
)

START = "2026-03-06T00:00:00Z"


def make_truth(**overrides):
    truth = {
        "scenario": "unit",
        "seed": 7,
        "start": START,
        "end": "2026-03-08T00:00:00Z",
        "releases": [{"model": "m-next", "released_at": "2026-03-07T00:00:00Z"}],
        "campaigns": [
            {
                "id": "camp-a",
                "archetype": "hydra",
                "accounts": ["a1", "a2", "a3", "a4"],
                "start": "2026-03-06T01:00:00Z",
                "end": "2026-03-08T00:00:00Z",
                "events": 1000,
                "pivot": {
                    "model": "m-next",
                    "release_at": "2026-03-07T00:00:00Z",
                    "start": "2026-03-07T02:00:00Z",
                    "target_share": 0.45,
                },
            },
            {
                "id": "camp-b",
                "archetype": "cot",
                "accounts": ["b1", "b2"],
                "start": "2026-03-06T02:00:00Z",
                "end": "2026-03-07T00:00:00Z",
                "events": 200,
                "pivot": None,
            },
        ],
        "traps": {"enterprise_batch": ["t1"], "nat": ["n1", "n2", "n3"]},
    }
    truth.update(overrides)
    return truth


def alert(
    alert_id,
    accounts,
    detected_at,
    *,
    seq=1,
    status="firing",
    kind="cluster",
    severity="critical",
    accounts_total=None,
):
    return {
        "v": 1,
        "alert_id": alert_id,
        "seq": seq,
        "status": status,
        "kind": kind,
        "severity": severity,
        "score": 0.9,
        "entity": {"type": kind, "id": alert_id},
        "accounts": list(accounts),
        "accounts_total": len(accounts) if accounts_total is None else accounts_total,
        "first_seen": detected_at,
        "detected_at": detected_at,
        "emitted_at": detected_at,
        "summary": "test",
        "evidence": [],
        "sample_event_ids": [],
        "detector_version": "test",
    }


def good_alerts():
    return [
        alert("al-a", ["a1", "a2", "a3", "a4"], "2026-03-06T01:30:00Z"),
        alert("al-b", ["b1", "b2"], "2026-03-06T02:10:00.500Z", kind="account", severity="warning"),
        alert("al-p", ["a1"], "2026-03-07T03:00:00Z", kind="pivot", severity="warning"),
    ]


def by_id(result):
    return {c["id"]: c for c in result["campaigns"]}


def test_good_run_detects_everything_and_passes():
    result = evaluate(make_truth(), good_alerts())
    camps = by_id(result)
    assert camps["camp-a"]["detected"] and camps["camp-b"]["detected"]
    assert camps["camp-a"]["time_to_detect_s"] == 1800.0
    assert camps["camp-b"]["time_to_detect_s"] == 600.5
    assert camps["camp-a"]["recall"] == 1.0
    assert camps["camp-a"]["alert_ids"] == ["al-a", "al-p"]
    assert camps["camp-a"]["pivot_latency_s"] == 3 * 3600.0
    assert camps["camp-b"]["pivot_latency_s"] is None and camps["camp-b"]["pivot"] is None
    assert result["accounts"]["precision"] == 1.0
    assert result["accounts"]["recall"] == 1.0
    assert result["passed"] == {
        "alert_ids": True,
        "all": True,
        "campaigns_detected": True,
        "pivot_latency": True,
        "precision": True,
        "recall": True,
        "time_to_detect": True,
        "traps": True,
    }


def test_time_to_detect_is_the_earliest_actionable_update():
    alerts = good_alerts() + [
        alert("al-a", ["a3"], "2026-03-06T01:05:00Z", seq=0),  # earlier update, same alert
        alert("al-info", ["a1"], "2026-03-06T01:01:00Z", severity="info"),
    ]
    assert by_id(evaluate(make_truth(), alerts))["camp-a"]["time_to_detect_s"] == 300.0


def test_accounts_are_the_union_over_updates():
    alerts = [
        alert("al-a", ["a1", "a2"], "2026-03-06T01:30:00Z", seq=1, accounts_total=3),
        alert("al-a", ["a3"], "2026-03-06T01:31:00Z", seq=2, accounts_total=3),
    ]
    result = evaluate(make_truth(), alerts)
    camp = by_id(result)["camp-a"]
    assert camp["accounts_named"] == 3
    assert camp["recall"] == 0.75
    assert result["accounts"]["named"] == 3
    assert result["alerts"]["distinct_ids"] == 1
    assert result["alerts"]["updates"] == 2
    assert result["alerts"]["truncated_alert_ids"] == []


def test_accounts_total_above_listed_accounts_is_reported():
    alerts = [alert("al-a", ["a1"], "2026-03-06T01:30:00Z", accounts_total=1500)]
    assert evaluate(make_truth(), alerts)["alerts"]["truncated_alert_ids"] == ["al-a"]


def test_info_alerts_do_not_count():
    alerts = [
        alert("al-a", ["a1", "a2", "a3", "a4", "b1", "b2"], "2026-03-06T01:30:00Z", severity="info")
    ]
    result = evaluate(make_truth(), alerts)
    assert not any(c["detected"] for c in result["campaigns"])
    assert all(c["time_to_detect_s"] is None for c in result["campaigns"])
    assert result["accounts"]["named"] == 0
    assert result["accounts"]["precision"] == 1.0
    assert result["accounts"]["recall"] == 0.0
    assert result["alerts"]["by_max_severity"] == {"info": 1}
    assert result["alerts"]["actionable_ids"] == 0


def test_resolved_updates_do_not_count():
    alerts = [
        alert("al-b", ["b1", "b2"], "2026-03-06T02:30:00Z", status="resolved"),
    ]
    result = evaluate(make_truth(), alerts)
    assert not by_id(result)["camp-b"]["detected"]
    assert result["accounts"]["named"] == 0
    assert result["alerts"]["resolved_updates"] == 1
    assert result["alerts"]["resolved_alerts"] == 1


def test_resolved_count_uses_the_latest_update():
    alerts = [
        alert("al-b", ["b1"], "2026-03-06T02:30:00Z", seq=2, status="resolved"),
        alert("al-b", ["b1"], "2026-03-06T02:20:00Z", seq=1),
        alert("al-c", ["b2"], "2026-03-06T02:20:00Z", seq=1, status="resolved"),
        alert("al-c", ["b2"], "2026-03-06T02:40:00Z", seq=2),
    ]
    summary = evaluate(make_truth(), alerts)["alerts"]
    assert summary["resolved_updates"] == 2
    assert summary["resolved_alerts"] == 1


def test_mostly_benign_alert_does_not_detect():
    benign = [f"u{i}" for i in range(10)]
    alerts = [alert("al-big", ["b1", *benign], "2026-03-06T02:05:00Z")]
    result = evaluate(make_truth(), alerts)
    camp = by_id(result)["camp-b"]
    assert camp["detected"] is False
    assert camp["time_to_detect_s"] is None
    assert camp["alert_ids"] == ["al-big"]
    assert camp["detecting_alert_ids"] == []
    # recall still credits the account it named
    assert camp["recall"] == 0.5
    assert result["alerts"]["per_alert"][0]["campaign_share"] == pytest.approx(1 / 11)


def test_share_is_over_the_alert_union_so_half_benign_still_detects():
    # exactly half campaign accounts across two updates qualifies
    alerts = [
        alert("al-x", ["b1", "u1"], "2026-03-06T02:05:00Z", seq=1),
        alert("al-x", ["b2", "u2"], "2026-03-06T02:06:00Z", seq=2),
    ]
    camp = by_id(evaluate(make_truth(), alerts))["camp-b"]
    assert camp["detected"] is True
    assert camp["time_to_detect_s"] == 300.0


def test_benign_accounts_in_info_updates_do_not_dilute_share():
    alerts = [
        alert("al-x", ["b1"], "2026-03-06T02:05:00Z", seq=1),
        alert("al-x", [f"u{i}" for i in range(10)], "2026-03-06T02:06:00Z", seq=2, severity="info"),
    ]
    assert by_id(evaluate(make_truth(), alerts))["camp-b"]["detected"] is True


def test_precision_and_recall_arithmetic():
    alerts = [
        alert("al-a", ["a1", "a2", "a3", "u1"], "2026-03-06T01:30:00Z"),
        alert("al-b", ["b1", "u2", "u3"], "2026-03-06T02:30:00Z"),
        alert("al-i", ["u4", "b2"], "2026-03-06T02:30:00Z", severity="info"),
    ]
    acc = evaluate(make_truth(), alerts)["accounts"]
    assert acc["named"] == 7
    assert acc["campaign"] == 6
    assert acc["true_positive"] == 4
    assert acc["false_positive"] == 3
    assert acc["missed"] == 2
    assert acc["precision"] == pytest.approx(4 / 7)
    assert acc["recall"] == pytest.approx(4 / 6)


def test_trap_counting():
    alerts = good_alerts() + [
        alert("al-t", ["n1", "n2"], "2026-03-06T05:00:00Z", kind="proxy", severity="warning"),
        alert("al-t2", ["n3", "n2"], "2026-03-06T05:00:00Z", severity="info"),
        alert("al-t3", ["t1"], "2026-03-06T05:00:00Z", status="resolved"),
    ]
    result = evaluate(make_truth(), alerts)
    assert result["traps"] == {
        "enterprise_batch": {
            "accounts": 1,
            "named_actionable": 0,
            "named_any": 1,
            "named_actionable_ids": [],
        },
        "nat": {
            "accounts": 3,
            "named_actionable": 2,
            "named_any": 3,
            "named_actionable_ids": ["n1", "n2"],
        },
    }
    assert result["passed"]["traps"] is False
    assert result["passed"]["all"] is False


def test_info_only_trap_alert_passes_trap_bar():
    alerts = good_alerts() + [alert("al-t", ["t1"], "2026-03-06T05:00:00Z", severity="info")]
    result = evaluate(make_truth(), alerts)
    assert result["traps"]["enterprise_batch"]["named_any"] == 1
    assert result["passed"]["traps"] is True


def test_pivot_before_release_does_not_count():
    alerts = good_alerts()[:2] + [
        alert("al-p", ["a1"], "2026-03-06T23:59:59Z", kind="pivot", severity="critical"),
    ]
    result = evaluate(make_truth(), alerts)
    camp = by_id(result)["camp-a"]
    assert camp["pivot_latency_s"] is None
    assert camp["pivot"]["alert_ids"] == []
    assert result["passed"]["pivot_latency"] is False


def test_pivot_latency_takes_earliest_qualifying_pivot_update():
    alerts = good_alerts()[:2] + [
        alert("al-p", ["a1"], "2026-03-06T20:00:00Z", kind="pivot", seq=1),
        alert("al-p", ["a2"], "2026-03-07T00:00:00Z", kind="pivot", seq=2),  # at release: counts
        alert("al-q", ["a3"], "2026-03-07T00:10:00Z", kind="cluster"),  # not a pivot alert
        alert("al-r", ["a4"], "2026-03-07T00:05:00Z", kind="pivot", severity="info"),
        alert("al-s", ["u9"], "2026-03-07T00:01:00Z", kind="pivot"),  # not its account
    ]
    camp = by_id(evaluate(make_truth(), alerts))["camp-a"]
    assert camp["pivot_latency_s"] == 0.0
    assert camp["pivot"]["alert_ids"] == ["al-p"]
    assert camp["pivot"]["model"] == "m-next"


def test_pivot_latency_over_bar_fails():
    alerts = good_alerts()[:2] + [
        alert("al-p", ["a1"], "2026-03-07T06:00:01Z", kind="pivot"),
    ]
    result = evaluate(make_truth(), alerts)
    assert by_id(result)["camp-a"]["pivot_latency_s"] == 21601.0
    assert result["passed"]["pivot_latency"] is False


def test_distinct_ids_by_kind_and_max_severity():
    alerts = [
        alert("al-a", ["a1"], "2026-03-06T01:30:00Z", seq=1, severity="info"),
        alert("al-a", ["a1"], "2026-03-06T01:40:00Z", seq=2, severity="critical"),
        alert("al-a", ["a1"], "2026-03-06T01:50:00Z", seq=3, severity="warning"),
        alert("al-b", ["b1"], "2026-03-06T02:30:00Z", kind="account", severity="warning"),
        alert("al-p", ["a2"], "2026-03-07T01:00:00Z", kind="pivot", severity="info"),
    ]
    summary = evaluate(make_truth(), alerts)["alerts"]
    assert summary["distinct_ids"] == 3
    assert summary["actionable_ids"] == 2
    assert summary["updates"] == 5
    assert summary["by_kind"] == {"account": 1, "cluster": 1, "pivot": 1}
    assert summary["by_max_severity"] == {"critical": 1, "info": 1, "warning": 1}
    assert [a["alert_id"] for a in summary["per_alert"]] == ["al-a", "al-b", "al-p"]
    assert summary["per_alert"][0]["first_actionable_at"] == "2026-03-06T01:40:00Z"


def test_too_many_alert_ids_fails_the_default_bar_only():
    alerts = good_alerts() + [
        alert(f"al-extra-{i}", ["a1"], "2026-03-06T03:00:00Z") for i in range(18)
    ]
    result = evaluate(make_truth(), alerts)
    assert result["alerts"]["distinct_ids"] == 21
    assert result["passed"]["alert_ids"] is False
    assert result["passed"]["all"] is False

    relaxed = evaluate(make_truth(), alerts, max_alert_ids=100)
    assert relaxed["passed"]["alert_ids"] is True and relaxed["passed"]["all"] is True
    assert relaxed["bars"]["max_alert_ids"] == 100

    off = evaluate(make_truth(), alerts, max_alert_ids=None)
    assert "alert_ids" not in off["passed"] and off["passed"]["all"] is True


def test_empty_alerts():
    result = evaluate(make_truth(), [])
    assert [c["detected"] for c in result["campaigns"]] == [False, False]
    assert result["accounts"]["precision"] == 1.0
    assert result["accounts"]["recall"] == 0.0
    assert result["alerts"]["distinct_ids"] == 0
    assert result["alerts"]["by_kind"] == {}
    assert result["passed"]["campaigns_detected"] is False
    assert result["passed"]["time_to_detect"] is False
    assert result["passed"]["alert_ids"] is True
    assert result["passed"]["all"] is False
    orjson.dumps(result)
    assert "SOME BARS FAILED" in format_report(result)


def test_no_campaigns():
    truth = make_truth(campaigns=[])
    result = evaluate(truth, [])
    assert result["campaigns"] == []
    assert result["accounts"]["precision"] == 1.0
    assert result["accounts"]["recall"] == 1.0
    assert result["passed"]["all"] is True

    noisy = evaluate(truth, [alert("al-u", ["u1"], "2026-03-06T03:00:00Z")])
    assert noisy["accounts"]["precision"] == 0.0
    assert noisy["accounts"]["recall"] == 1.0
    assert noisy["passed"]["precision"] is False


def test_bars_flip_when_violated():
    # camp-b detected late; camp-a's early alert names mostly benign accounts, so it is
    # only detected a day later by the pivot alert
    alerts = [
        alert(
            "al-a", ["a1", "a2", "a3", "a4", "u1", "u2", "u3", "u4", "u5"], "2026-03-06T01:10:00Z"
        ),
        alert("al-b", ["b1", "b2"], "2026-03-06T04:00:01Z"),
        alert("al-p", ["a1"], "2026-03-07T01:00:00Z", kind="pivot"),
    ]
    result = evaluate(make_truth(), alerts)
    camps = by_id(result)
    assert camps["camp-a"]["detected"] is True
    assert camps["camp-a"]["detecting_alert_ids"] == ["al-p"]
    assert camps["camp-a"]["time_to_detect_s"] == 86400.0
    assert camps["camp-b"]["time_to_detect_s"] == 7201.0
    passed = result["passed"]
    assert passed["campaigns_detected"] is True
    assert passed["time_to_detect"] is False
    assert passed["precision"] is False
    assert passed["recall"] is True
    assert passed["pivot_latency"] is True
    assert passed["all"] is False


def test_recall_bar_flips():
    alerts = [
        alert("al-a", ["a1", "a2", "a3"], "2026-03-06T01:10:00Z"),
        alert("al-b", ["b1", "b2"], "2026-03-06T02:10:00Z"),
        alert("al-p", ["a1"], "2026-03-07T01:00:00Z", kind="pivot"),
    ]
    result = evaluate(make_truth(), alerts)
    assert result["accounts"]["recall"] == pytest.approx(5 / 6)
    assert result["passed"]["recall"] is False
    assert result["passed"]["campaigns_detected"] is True


def test_quality_bars_values():
    assert QUALITY_BARS == {
        "all_campaigns_detected": True,
        "min_precision": 0.95,
        "min_recall": 0.90,
        "max_trap_accounts_actionable": 0,
        "max_time_to_detect_s": 7200,
        "max_pivot_latency_s": 21600,
        "max_alert_ids": 20,
    }


def test_inputs_not_mutated_and_output_deterministic():
    truth = make_truth()
    alerts = good_alerts() + [alert("al-t", ["n2", "n1"], "2026-03-06T05:00:00Z")]
    truth_before, alerts_before = copy.deepcopy(truth), copy.deepcopy(alerts)
    first = evaluate(truth, alerts)
    second = evaluate(truth, list(reversed(alerts)))
    assert truth == truth_before and alerts == alerts_before
    opts = orjson.OPT_SORT_KEYS
    assert orjson.dumps(first, option=opts) == orjson.dumps(second, option=opts)


def test_load_round_trip(tmp_path):
    truth_path = tmp_path / "truth.json"
    truth_path.write_bytes(orjson.dumps(make_truth()))
    alerts_path = tmp_path / "alerts.jsonl"
    lines = [orjson.dumps(a) for a in good_alerts()]
    alerts_path.write_bytes(b"\n".join([lines[0], b"", b"   ", *lines[1:]]) + b"\n\n")
    assert load_truth(truth_path) == make_truth()
    assert load_alerts(alerts_path) == good_alerts()
    assert evaluate(load_truth(truth_path), load_alerts(alerts_path))["passed"]["all"] is True


def test_load_alerts_reports_bad_line(tmp_path):
    path = tmp_path / "alerts.jsonl"
    path.write_bytes(b'{"v":1}\n{oops\n')
    with pytest.raises(ValueError, match=":2:"):
        load_alerts(path)


def test_format_report_contains_key_figures():
    alerts = good_alerts() + [
        alert("al-t", ["n1"], "2026-03-06T05:00:00Z", kind="proxy", severity="warning"),
    ]
    report = format_report(evaluate(make_truth(), alerts))
    for needle in [
        "scenario=unit",
        "seed=7",
        "camp-a",
        "camp-b",
        "hydra",
        "0h30m00s (1800s)",  # camp-a time to detect
        "0h10m00s (600.5s)",  # camp-b time to detect
        "3h00m00s (10800s)",  # camp-a pivot latency
        "precision 0.8571",
        "recall 1.0000",
        "nat",
        "distinct ids 4",
        "FAIL",
        "PASS",
        "SOME BARS FAILED",
    ]:
        assert needle in report, needle
    assert "ALL BARS PASSED" in format_report(evaluate(make_truth(), good_alerts()))


def test_format_report_shortens_long_alert_lists_and_durations():
    alerts = [alert(f"al-{i}", ["b1", "b2"], "2026-03-07T12:17:36.789Z") for i in range(6)]
    report = format_report(evaluate(make_truth(), alerts))
    assert "al-0,al-1,al-2,al-3 (+2)" in report
    assert "al-4" not in report
    assert "34h17m36s (123456.789s)" in report  # camp-b started 02:00 the day before
