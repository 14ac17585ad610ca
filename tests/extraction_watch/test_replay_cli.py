"""The real command line, end to end: simulate, replay, eval.

Each command runs in a fresh interpreter (``python -m extraction_watch.cli``)
with stdout and stderr on pipes, as a batch job would run it.
"""

from __future__ import annotations

import json
import os
import pty
import re
import shutil
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
from jsonschema import Draft202012Validator, FormatChecker

import models.contract
from models.contract import ContractError, decode_api_call, format_rfc3339, parse_rfc3339
from tests.extraction_watch.conftest import (
    CLI_TIMEOUT_S,
    ReplayRun,
    RunCli,
    SimulatedRun,
    describe,
)

SCHEMA_DIR = Path(models.contract.__file__).parent / "schemas"
SIMULATED_RAW_TEXT = b"SIMULATED-RAW-TEXT"  # the simulator's marker in its raw_text lines
SENTINEL = "SENTINEL-RAW-TEXT-123"
EMITTED_AT = re.compile(rb'"emitted_at":"[^"\\]*"')
SUMMARY_RE = {
    "events": re.compile(r"^events read\s+([\d,]+) lines \(([\d,]+) processed, ([\d,]+) blank\)$", re.M),
    "dead": re.compile(r"^dead letters\s+([\d,]+)(?:\s+(.*))?$", re.M),
    "raw": re.compile(r"^raw text dropped\s+([\d,]+) fields$", re.M),
    "alerts": re.compile(r"^alerts\s+([\d,]+) distinct ids, ([\d,]+) updates", re.M),
    "speed": re.compile(r"^speed\s+[\d,]+ events/s \([\d.]+ s\)$", re.M),
}
# Dirty-line kinds of the simulator (docs/scenarios.md) whose dead-letter reason is fixed.
REASON_OF_KIND = {"not_json": "not_json", "missing_field": "missing_field",
                  "bad_version": "unsupported_version", "duplicate_id": "duplicate"}
# wrong_type / out_of_range lines land in one of these, depending on the field bent.
FIELD_REASONS = {"wrong_type", "out_of_range", "bad_timestamp", "bad_ip"}


def _validator(name: str) -> Draft202012Validator:
    schema = json.loads((SCHEMA_DIR / f"{name}.v1.schema.json").read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=FormatChecker())


@pytest.fixture(scope="module")
def alert_schema() -> Draft202012Validator:
    return _validator("alert")


@pytest.fixture(scope="module")
def dead_letter_schema() -> Draft202012Validator:
    return _validator("dead_letter")


def _records(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def _without_emitted_at(path: Path) -> list[bytes]:
    """Alert lines, byte for byte, with the value of ``emitted_at`` blanked."""
    out = []
    for line in path.read_bytes().splitlines():
        blanked, n = EMITTED_AT.subn(b'"emitted_at":null', line)
        assert n == 1, f"expected one stamped emitted_at in {line[:300]!r}"
        out.append(blanked)
    return out


def _summary(stdout: bytes) -> dict[str, Any]:
    text = stdout.decode()
    found = {name: rx.search(text) for name, rx in SUMMARY_RE.items()}
    missing = [name for name, match in found.items() if match is None]
    assert not missing, f"summary lines {missing} not found in:\n{text}"
    lines, processed, blank = (int(g.replace(",", "")) for g in found["events"].groups())
    dead_total = int(found["dead"].group(1).replace(",", ""))
    by_reason = {}
    if found["dead"].group(2):
        for item in found["dead"].group(2).split(", "):
            reason, _, count = item.partition("=")
            by_reason[reason] = int(count.replace(",", ""))
    return {"lines": lines, "processed": processed, "blank": blank, "dead": dead_total,
            "dead_by_reason": by_reason,
            "raw_dropped": int(found["raw"].group(1).replace(",", "")),
            "alert_ids": int(found["alerts"].group(1).replace(",", "")),
            "alert_updates": int(found["alerts"].group(2).replace(",", ""))}


# ---------------------------------------------------------------------------
# simulate
# ---------------------------------------------------------------------------

def test_simulate_writes_events_releases_and_truth(simulated: SimulatedRun) -> None:
    for path in (simulated.events, simulated.releases, simulated.truth_path):
        assert path.is_file() and path.stat().st_size > 0, path
    truth = simulated.truth
    assert (truth["scenario"], truth["seed"]) == ("small", 3)
    event_lines = simulated.events.read_bytes().splitlines()
    assert len(event_lines) == truth["lines"] == truth["events"] + sum(truth["bad_lines"].values())
    # the raised dirty rate gives every kind the replay assertions below rely on
    assert {"raw_text", "duplicate_id", "not_json"} <= set(truth["bad_lines"])
    printed = orjson.loads(simulated.result.stdout)
    assert printed["events"] == truth["events"]
    release_schema = _validator("model_release")
    releases = _records(simulated.releases)
    assert releases and [r["model"] for r in releases] == [r["model"] for r in truth["releases"]]
    for release in releases:
        release_schema.validate(release)


# ---------------------------------------------------------------------------
# replay: summary, contracts of the outputs, agreement with the truth
# ---------------------------------------------------------------------------

def test_replay_prints_a_summary_that_matches_its_outputs(
        simulated: SimulatedRun, replayed: ReplayRun) -> None:
    summary = _summary(replayed.result.stdout)
    truth = simulated.truth
    dead = _records(replayed.dead_letters)
    alerts = _records(replayed.alerts)
    assert summary["lines"] == truth["lines"]
    assert summary["blank"] == 0
    # every line is either processed or a dead letter
    assert summary["processed"] + summary["dead"] == summary["lines"]
    assert summary["dead"] == len(dead)
    assert summary["dead_by_reason"] == dict(Counter(d["reason"] for d in dead))
    assert summary["raw_dropped"] == truth["bad_lines"].get("raw_text", 0)
    assert summary["alert_ids"] == len({a["alert_id"] for a in alerts})
    assert summary["alert_updates"] == len(alerts)


def test_every_alert_is_a_valid_alert_v1(replayed: ReplayRun,
                                          alert_schema: Draft202012Validator) -> None:
    alerts = _records(replayed.alerts)
    assert alerts, "the small scenario has three campaigns; expected at least one alert"
    for alert in alerts:
        errors = sorted(alert_schema.iter_errors(alert), key=str)
        assert not errors, f"{alert['alert_id']} seq {alert['seq']}: {errors[0].message}"


def test_every_dead_letter_is_a_valid_dead_letter_v1(
        replayed: ReplayRun, dead_letter_schema: Draft202012Validator) -> None:
    dead = _records(replayed.dead_letters)
    assert dead
    for record in dead:
        errors = sorted(dead_letter_schema.iter_errors(record), key=str)
        assert not errors, f"{record['source']}: {errors[0].message}"


def test_dead_letters_are_exactly_the_invalid_lines_of_the_truth(
        simulated: SimulatedRun, replayed: ReplayRun) -> None:
    """raw_text lines are valid events (text dropped); a duplicate_id line is a
    dead letter 'duplicate'; every other dirty kind is one dead letter."""
    bad = simulated.truth["bad_lines"]
    dead = _records(replayed.dead_letters)
    assert len(dead) == sum(bad.values()) - bad.get("raw_text", 0)
    reasons = Counter(d["reason"] for d in dead)
    for kind, reason in REASON_OF_KIND.items():
        assert reasons[reason] == bad.get(kind, 0), (kind, reason, dict(reasons))
    assert sum(reasons[r] for r in FIELD_REASONS) == bad.get("wrong_type", 0) + bad.get("out_of_range", 0)
    assert set(reasons) <= set(REASON_OF_KIND.values()) | FIELD_REASONS

    lines = simulated.events.read_bytes().splitlines()
    numbers = [d["source"]["line"] for d in dead]
    assert numbers == sorted(set(numbers)), "one dead letter per line, in file order"
    for record in dead:
        assert record["source"] == {"file": "events.jsonl", "line": record["source"]["line"]}
        n = record["source"]["line"]
        line = lines[n - 1]
        assert SIMULATED_RAW_TEXT not in line, f"line {n}: a raw_text line is a valid event"
        if record["reason"] == "duplicate":
            assert line == lines[n - 2], f"line {n} is not a repeat of line {n - 1}"
        else:
            with pytest.raises(ContractError):
                decode_api_call(line)


def test_simulated_raw_text_is_not_in_any_output(replayed: ReplayRun) -> None:
    for blob in (replayed.alerts.read_bytes(), replayed.dead_letters.read_bytes(),
                 replayed.result.stdout, replayed.result.stderr):
        assert SIMULATED_RAW_TEXT not in blob


def test_no_progress_bar_when_stderr_is_not_a_terminal(replayed: ReplayRun) -> None:
    assert b"\r" not in replayed.result.stderr
    assert b"events/s" not in replayed.result.stderr


def test_progress_bar_on_a_terminal(simulated: SimulatedRun, tmp_path: Path) -> None:
    """The counterpart of the test above: the same replay with stderr on a pty draws the bar."""
    master, slave = pty.openpty()
    captured = bytearray()

    def drain() -> None:
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO once the child has closed the terminal
                return
            if not chunk:
                return
            captured.extend(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "extraction_watch.cli", "replay", "--file", str(simulated.events),
             "--alerts-out", str(tmp_path / "alerts.jsonl")],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave,
            timeout=CLI_TIMEOUT_S, check=False)
    finally:
        os.close(slave)
    reader.join(timeout=10)
    os.close(master)
    assert proc.returncode == 0, proc.stdout.decode()
    assert b"\r" in captured and b"events" in captured, bytes(captured[-500:])


# ---------------------------------------------------------------------------
# determinism and stdin
# ---------------------------------------------------------------------------

def test_replay_is_deterministic(cli: RunCli, simulated: SimulatedRun, replayed: ReplayRun,
                                 tmp_path: Path) -> None:
    """Same input, another process (and another str hash seed): same alerts but emitted_at."""
    alerts, dead = tmp_path / "alerts.jsonl", tmp_path / "dead_letters.jsonl"
    env = dict(os.environ, PYTHONHASHSEED="12345")
    result = cli("replay", "--file", simulated.events, "--releases", simulated.releases,
                 "--alerts-out", alerts, "--dead-letters-out", dead, cwd=tmp_path, env=env)
    assert result.returncode == 0, describe(result)
    assert _without_emitted_at(alerts) == _without_emitted_at(replayed.alerts)
    assert dead.read_bytes() == replayed.dead_letters.read_bytes()
    first, second = _summary(replayed.result.stdout), _summary(result.stdout)
    assert first == second


def test_replay_from_stdin_gives_the_same_alerts(cli: RunCli, simulated: SimulatedRun,
                                                 replayed: ReplayRun, tmp_path: Path) -> None:
    alerts, dead = tmp_path / "alerts.jsonl", tmp_path / "dead_letters.jsonl"
    with simulated.events.open("rb") as stdin:
        result = cli("replay", "--file", "-", "--releases", simulated.releases,
                     "--alerts-out", alerts, "--dead-letters-out", dead, stdin=stdin, cwd=tmp_path)
    assert result.returncode == 0, describe(result)
    assert _without_emitted_at(alerts) == _without_emitted_at(replayed.alerts)
    from_stdin = _records(dead)
    assert from_stdin and all(d["source"]["file"] == "<stdin>" for d in from_stdin)
    for d in from_stdin:
        d["source"]["file"] = "events.jsonl"
    assert from_stdin == _records(replayed.dead_letters)


# ---------------------------------------------------------------------------
# privacy: raw text never leaves, whatever the line
# ---------------------------------------------------------------------------

def _last_valid_event(lines: list[bytes]) -> dict[str, Any]:
    for line in reversed(lines):
        if SIMULATED_RAW_TEXT in line:
            continue
        try:
            decode_api_call(line)
        except ContractError:
            continue
        return orjson.loads(line)
    raise AssertionError("no valid event in the simulated file")


def _sentinel_lines(events: list[bytes]) -> list[tuple[bytes, str | None]]:
    """Lines carrying SENTINEL in raw-text fields, each with its expected dead-letter reason
    (None: a valid event)."""
    base = _last_valid_event(events)
    first_ts = orjson.loads(events[0])["ts"]
    last_t = parse_rfc3339(base["ts"])

    def event(n: int, **changes: Any) -> dict[str, Any]:
        return dict(base, event_id=f"{0x5e171e1 + n:032x}", **changes)

    dump = orjson.dumps
    accepted = event(1, prompt=SENTINEL, completion=f"{SENTINEL} answer",
                     messages=[{"role": "user", "content": SENTINEL}])
    missing_ts = event(3, prompt=SENTINEL)
    del missing_ts["ts"]
    return [
        (dump(accepted), None),
        (dump(event(2, text=SENTINEL, content=SENTINEL, extra={"prompt": SENTINEL})), None),
        (dump(missing_ts), "missing_field"),
        (dump(event(4, input_tokens="12", prompt=SENTINEL, completion=SENTINEL,
                    messages=[{"role": "assistant", "content": SENTINEL}])), "wrong_type"),
        (dump(event(5, v=2, messages=[SENTINEL, {"text": SENTINEL}])), "unsupported_version"),
        (dump(event(6, asn="AS1", metadata={"content": SENTINEL, "items": [{"text": SENTINEL}]})),
         "wrong_type"),
        (dump([{"prompt": SENTINEL}]), "not_object"),
        (b'{"v": 1, "event_id": "x", "prompt": "' + SENTINEL.encode() + b'", "ts": ', "not_json"),
        (b'{"v": 1, "event_id": "y", "prompt": "' + SENTINEL.encode() + b" and then the write stopp",
         "not_json"),
        (b'{"v": 1, "prompt": "' + SENTINEL.encode() + b' \xff\xfe"}', "not_utf8"),
        (dump(accepted), "duplicate"),
        (dump(event(7, ts=first_ts, prompt=SENTINEL)), "late"),
        (dump(event(8, prompt=SENTINEL, padding="x" * (1 << 20))), "too_large"),
        (dump(event(9, ts=format_rfc3339(last_t + 3 * 86400), prompt=SENTINEL)),
         "time_out_of_range"),
    ]


@pytest.fixture(scope="module")
def privacy_run(cli: RunCli, simulated: SimulatedRun, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("privacy")
    events = out / "events.jsonl"
    shutil.copyfile(simulated.events, events)
    original = simulated.events.read_bytes().splitlines()
    added = _sentinel_lines(original)
    with events.open("ab") as handle:
        for line, _ in added:
            handle.write(line + b"\n")
    outputs = out / "outputs"
    outputs.mkdir()
    result = cli("replay", "--file", events, "--releases", simulated.releases,
                     "--alerts-out", outputs / "alerts.jsonl",
                     "--dead-letters-out", outputs / "dead_letters.jsonl",
                     "--summary-json", outputs / "summary.json", cwd=out)
    assert result.returncode == 0, describe(result)
    expected = {len(original) + i: reason for i, (_, reason) in enumerate(added, 1)}
    return outputs, result, expected


def test_raw_text_never_reaches_outputs_stdout_or_stderr(privacy_run) -> None:
    outputs, result, _ = privacy_run
    files = sorted(outputs.iterdir())
    assert {f.name for f in files} == {"alerts.jsonl", "dead_letters.jsonl", "summary.json"}
    needle = SENTINEL.encode()
    for path in files:
        assert needle not in path.read_bytes(), f"raw text leaked into {path.name}"
    assert needle not in result.stdout
    assert needle not in result.stderr


def test_lines_with_raw_text_get_their_ordinary_fate(
        privacy_run, dead_letter_schema: Draft202012Validator) -> None:
    """Valid events with raw text are accepted (text dropped); invalid ones give one
    dead letter each, with the documented reason, valid under the schema."""
    outputs, _, expected = privacy_run
    dead = {d["source"]["line"]: d for d in _records(outputs / "dead_letters.jsonl")
            if d["source"]["line"] in expected}
    assert {n: d["reason"] for n, d in dead.items()} == {
        n: reason for n, reason in expected.items() if reason is not None}
    for record in dead.values():
        errors = sorted(dead_letter_schema.iter_errors(record), key=str)
        assert not errors, f"{record['source']}: {errors[0].message}"


# ---------------------------------------------------------------------------
# eval
# ---------------------------------------------------------------------------

def test_eval_json(cli: RunCli, simulated: SimulatedRun, replayed: ReplayRun,
                   tmp_path: Path) -> None:
    result = cli("eval", "--truth", simulated.truth_path, "--alerts", replayed.alerts, "--json",
                 cwd=tmp_path)
    assert result.returncode == 0, describe(result)
    report = orjson.loads(result.stdout)
    assert {"campaigns", "accounts", "traps", "alerts", "passed"} <= set(report)
    truth = simulated.truth
    assert [c["id"] for c in report["campaigns"]] == [c["id"] for c in truth["campaigns"]]
    assert set(report["traps"]) == set(truth["traps"])
    alert_ids = {a["alert_id"] for a in _records(replayed.alerts)}
    assert report["alerts"]["distinct_ids"] == len(alert_ids)
    assert isinstance(report["passed"]["all"], bool)
