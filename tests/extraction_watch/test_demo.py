"""`extraction-watch demo`: simulate, replay and report in one command."""

from __future__ import annotations

import re
from pathlib import Path

import orjson

from tests.extraction_watch.conftest import RunCli, describe

ALERT_HEADER = re.compile(r"^\[(CRITICAL|WARNING|INFO)\s*\] (account|proxy|cluster|pivot)\s+(\S+)\s+entity ")
EVIDENCE_LINE = re.compile(r"^\s+- (\w+)\s+\S")
BAR_ROW = re.compile(r"^(.+?)\s+(PASS|FAIL)$")


def test_demo_simulates_replays_and_reports(cli: RunCli, tmp_path: Path) -> None:
    out = tmp_path / "demo"
    result = cli("demo", "--scenario", "small", "--seed", "2", "--out", out, cwd=tmp_path)
    assert result.returncode == 0, describe(result)
    stdout = result.stdout.decode()
    lines = stdout.splitlines()

    for heading in ("== 1/3 simulating scenario 'small' (seed 2)", "== 2/3 replaying",
                    "== alerts (latest update of each)", "== 3/3 detection quality"):
        assert heading in stdout, f"missing section {heading!r}:\n{stdout}"
    assert re.search(r"^events read\s+[\d,]+ lines", stdout, re.M)
    assert re.search(r"^dead letters\s+[\d,]+", stdout, re.M)
    assert re.search(r"^speed\s+[\d,]+ events/s", stdout, re.M)
    for name in ("events.jsonl", "releases.jsonl", "truth.json", "alerts.jsonl",
                 "dead_letters.jsonl"):
        assert (out / name).is_file(), name

    # Alerts: each alert id of alerts.jsonl is printed once, with one evidence line per
    # signal of its latest update (at most 8), in order.
    latest: dict[str, dict] = {}
    for line in (out / "alerts.jsonl").read_bytes().splitlines():
        alert = orjson.loads(line)
        if alert["alert_id"] not in latest or alert["seq"] >= latest[alert["alert_id"]]["seq"]:
            latest[alert["alert_id"]] = alert
    printed: dict[str, list[str]] = {}
    current = None
    section = lines[lines.index("== alerts (latest update of each)"):]
    for line in section:
        if line.startswith("== 3/3"):
            break
        header = ALERT_HEADER.match(line)
        if header:
            current = header.group(3)
            printed[current] = []
        elif current is not None and (evidence := EVIDENCE_LINE.match(line)):
            printed[current].append(evidence.group(1))
    assert printed, f"no alert printed:\n{stdout}"
    assert any(printed.values()), "no evidence line printed"
    assert set(printed) == set(latest)
    for alert_id, signals in printed.items():
        assert signals == [e["signal"] for e in latest[alert_id]["evidence"][:8]], alert_id

    # The quality-bar table and its verdict.
    start = lines.index("Quality bars")
    assert re.match(r"^bar\s+result$", lines[start + 1])
    rows = []
    for line in lines[start + 3:]:
        row = BAR_ROW.match(line)
        if not row:
            break
        rows.append(row.group(1))
    assert "every campaign detected" in rows, rows
    assert len(rows) >= 5, rows
    assert "ALL BARS PASSED" in stdout or "SOME BARS FAILED" in stdout
