"""extraction_watch.replay in process: replay_lines on in-memory lines, and stamp()."""

from __future__ import annotations

import io
import re
from typing import Any

import orjson
import pytest

from extraction_watch.replay import replay_lines, stamp
from models.contract import format_rfc3339, parse_rfc3339
from tests.extraction_watch.conftest import ReplayRun, SimulatedRun

START = parse_rfc3339("2026-03-06T10:00:00.000Z")
RFC3339_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


def event(n: int, **changes: Any) -> dict[str, Any]:
    """A valid api_call v1, the n-th of a quiet account, one call a minute."""
    call = {
        "v": 1, "event_id": f"{n:032x}", "ts": format_rfc3339(START + 60 * n),
        "account_id": "acct_00000000abcd", "org_id": None, "api_key_id": "key_00000000000000aa",
        "access_path": "api", "client_ip": "203.0.113.7", "asn": 64500,
        "tls_fingerprint": None, "user_agent": "python-httpx/0.27.0",
        "payment_fingerprint": None, "account_created_at": "2025-01-02T03:04:05.000Z",
        "model": "claude-sim-3", "features": [], "task": "chat",
        "prompt_simhash": "0123456789abcdef", "cot_elicitation": 0.1,
        "input_tokens": 120, "output_tokens": 80, "status": 200, "latency_ms": 900,
    }
    call.update(changes)
    return call


def line(n: int, **changes: Any) -> bytes:
    return orjson.dumps(event(n, **changes)) + b"\n"


def without(n: int, name: str) -> bytes:
    call = event(n)
    del call[name]
    return orjson.dumps(call) + b"\n"


def replay(lines: list[bytes], source_name: str = "calls.jsonl"):
    alerts, dead = io.BytesIO(), io.BytesIO()
    summary = replay_lines(lines, source_name, alerts_out=alerts, dead_letters_out=dead)
    return (summary, [orjson.loads(x) for x in alerts.getvalue().splitlines()],
            [orjson.loads(x) for x in dead.getvalue().splitlines()])


def test_blank_lines_are_skipped_and_counted() -> None:
    lines = [line(0), b"\n", line(1), b"   \t\r\n", b"", line(2), b"not json\n", b"\n"]
    summary, alerts, dead = replay(lines)
    assert summary.lines == len(lines)
    assert summary.blank_lines == 4
    assert summary.processed == 3
    assert summary.dead_letters == {"not_json": 1}
    assert alerts == []
    # blank lines give no dead letter, yet still count for the line numbers after them
    assert [(d["reason"], d["source"]) for d in dead] == [
        ("not_json", {"file": "calls.jsonl", "line": 7})]


BAD_LINES: list[tuple[bytes, str]] = [
    (b"<html><body><h1>502 Bad Gateway</h1></body></html>\n", "not_json"),
    (b'{"v": 1, "event_id": "abc", "ts": NaN}\n', "not_json"),
    (b"[1, 2, 3]\n", "not_object"),
    (b'"just a string"\n', "not_object"),
    (b'{"v": 1, "account_id": "\xff\xfe"}\n', "not_utf8"),
    (line(1, v=2), "unsupported_version"),
    (without(2, "ts"), "missing_field"),
    (without(3, "account_id"), "missing_field"),
    (line(4, input_tokens="120"), "wrong_type"),
    (line(5, status=999), "out_of_range"),
    (line(6, cot_elicitation=1.7), "out_of_range"),
    (line(7, ts="2026-13-45T99:00:00.000Z"), "bad_timestamp"),
    (line(8, client_ip="999.12.0.1"), "bad_ip"),
]


def test_a_file_of_bad_lines_gives_only_dead_letters_with_their_line_numbers() -> None:
    summary, alerts, dead = replay([bad for bad, _ in BAD_LINES], source_name="bad.jsonl")
    assert alerts == []
    assert summary.processed == 0
    assert summary.alerts == {} and summary.alert_ids == 0
    assert [d["source"] for d in dead] == [
        {"file": "bad.jsonl", "line": n} for n in range(1, len(BAD_LINES) + 1)]
    assert [d["reason"] for d in dead] == [reason for _, reason in BAD_LINES]
    assert sum(summary.dead_letters.values()) == len(BAD_LINES)


def test_line_numbers_count_every_line_of_a_mixed_file() -> None:
    lines = [line(0), BAD_LINES[0][0], line(1), b"\n", line(2, status=999), line(1), line(3)]
    _, _, dead = replay(lines, source_name="mixed.jsonl")
    assert [(d["source"]["line"], d["reason"]) for d in dead] == [
        (2, "not_json"), (5, "out_of_range"), (6, "duplicate")]
    assert all(d["source"]["file"] == "mixed.jsonl" for d in dead)


ALERT = {
    "v": 1, "alert_id": "exw-0123456789abcdef0123", "seq": 2, "status": "firing",
    "kind": "cluster", "severity": "critical", "score": 0.9,
    "entity": {"type": "cluster", "id": "cl-0123456789abcdef"},
    "accounts": ["acct_00000000abcd"], "accounts_total": 1,
    "first_seen": "2026-03-06T10:00:00.000Z", "detected_at": "2026-03-06T10:10:00.000Z",
    "emitted_at": None, "summary": "s",
    "evidence": [{"signal": "template_share", "value": 0.9, "baseline": 0.03, "detail": "d"}],
    "sample_event_ids": [], "detector_version": "0.1.0",
}


@pytest.mark.parametrize(("now", "expected"), [
    (1772791200.123, "2026-03-06T10:00:00.123Z"),
    (0.0, "1970-01-01T00:00:00.000Z"),
    (1772791199.9996, "2026-03-06T10:00:00.000Z"),  # rounded to the millisecond
])
def test_stamp_fills_emitted_at_from_the_injected_clock(now: float, expected: str) -> None:
    calls = []

    def clock() -> float:
        calls.append(now)
        return now

    record = orjson.loads(orjson.dumps(ALERT))
    stamped = orjson.loads(stamp(record, clock))
    assert calls == [now]
    assert stamped["emitted_at"] == expected
    assert RFC3339_MS.match(stamped["emitted_at"])
    assert list(stamped) == list(ALERT), "field order kept"
    assert {k: v for k, v in stamped.items() if k != "emitted_at"} == {
        k: v for k, v in ALERT.items() if k != "emitted_at"}
    assert record == ALERT, "the engine's record is not mutated"


def test_stamp_leaves_an_already_stamped_record_alone() -> None:
    record = dict(ALERT, emitted_at="2026-03-07T00:00:00.000Z")

    def clock() -> float:
        raise AssertionError("clock read for a record that is already stamped")

    assert orjson.loads(stamp(record, clock)) == record


def test_replay_lines_stamps_every_alert_with_the_injected_clock(
        simulated: SimulatedRun, replayed: ReplayRun) -> None:
    """In process, with a fixed clock: the CLI's alerts, emitted_at aside, all stamped alike."""
    fixed = 1800000000.5
    alerts = io.BytesIO()
    with simulated.events.open("rb") as lines:
        replay_lines(lines, "events.jsonl", alerts_out=alerts,
                     releases=simulated.releases.read_bytes().splitlines(), clock=lambda: fixed)
    ours = [orjson.loads(x) for x in alerts.getvalue().splitlines()]
    cli = [orjson.loads(x) for x in replayed.alerts.read_bytes().splitlines()]
    assert ours, "expected alerts on the simulated run"
    assert {a["emitted_at"] for a in ours} == {format_rfc3339(fixed)}
    assert [dict(a, emitted_at=None) for a in ours] == [dict(a, emitted_at=None) for a in cli]
