"""``extraction-watch alerts diff kafka:TOPIC`` and ``alerts tail`` against the real broker."""

from __future__ import annotations

import io
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaProducer

from extraction_watch.alerts_tool import AlertSourceError, load_alert_set, tail
from extraction_watch.cli import main
from models.contract import format_rfc3339
from tests.extraction_watch.test_alerts_tool import accts, alert, write_jsonl
from tests.integration.conftest import consume_all, create_topics

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z in ms
STEP_MS = 60_000


def alert_records(n: int, prefix: str = "k") -> list[dict[str, Any]]:
    """``n`` updates over ``n // 3 + 1`` alert ids, stamped as the publisher stamps them."""
    records = []
    for i in range(n):
        aid, seq = f"exw-{prefix}{i % (n // 3 + 1)}", i // (n // 3 + 1) + 1
        records.append(alert(aid, seq, severity="warning" if seq == 1 else "critical",
                             accounts=accts(f"{aid}-", 3, 3 * seq),
                             detected_at=format_rfc3339(T0 / 1000 + 3600 * seq),
                             first_seen=format_rfc3339(T0 / 1000),
                             emitted_at=format_rfc3339(time.time())))
    return records


def produce(bootstrap: str, topic: str, values: list[bytes], keys: list[bytes],
            t0_ms: int = T0) -> None:
    """One record per value, timestamps ``t0_ms + i minutes``."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    try:
        for i, (key, value) in enumerate(zip(keys, values, strict=True)):
            producer.send(topic, key=key, value=value, timestamp_ms=t0_ms + i * STEP_MS)
        producer.flush(timeout=30)
    finally:
        producer.close()


def produce_alerts(bootstrap: str, topic: str, records: list[dict[str, Any]],
                   t0_ms: int = T0) -> None:
    produce(bootstrap, topic, [orjson.dumps(r) for r in records],
            [r["alert_id"].encode() for r in records], t0_ms)


def canonical(records: list[dict[str, Any]]) -> list[bytes]:
    return sorted(orjson.dumps(r, option=orjson.OPT_SORT_KEYS) for r in records)


@pytest.fixture
def alerts_topic(kafka_bootstrap: str, unique_topics: str) -> str:
    topic = f"{unique_topics}alerts"
    create_topics(kafka_bootstrap, {topic: 3})
    return topic


def test_diff_topic_against_file(kafka_bootstrap: str, alerts_topic: str, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    records = alert_records(30)
    produce_alerts(kafka_bootstrap, alerts_topic, records)
    assert len({r.partition for r in consume_all(kafka_bootstrap, alerts_topic)}) > 1

    loaded = load_alert_set(f"kafka:{alerts_topic}", bootstrap=kafka_bootstrap)
    assert canonical(loaded) == canonical(records)

    # the file was stamped at another moment: emitted_at differs, the sets do not
    same = write_jsonl(tmp_path / "same.jsonl",
                       [dict(r, emitted_at="2030-01-01T00:00:00.000Z") for r in records])
    source = f"kafka:{alerts_topic}"
    assert main(["alerts", "diff", "--bootstrap", kafka_bootstrap, source, str(same)]) == 0
    out = capsys.readouterr().out
    assert "EQUIVALENT" in out and f"A  {source}: 11 alerts, 30 updates" in out

    fewer = write_jsonl(tmp_path / "fewer.jsonl", [r for r in records if r["alert_id"] != "exw-k0"])
    assert main(["alerts", "diff", "--json", "--bootstrap", kafka_bootstrap, str(fewer),
                 source]) == 1
    result = orjson.loads(capsys.readouterr().out)
    assert [e["alert_id"] for e in result["added"]] == ["exw-k0"]
    assert result["counts"]["unchanged"] == 10
    # both sides from the broker
    assert main(["alerts", "diff", "--bootstrap", kafka_bootstrap, source, source]) == 0
    capsys.readouterr()


def test_diff_reads_the_default_bootstrap_from_the_environment(
        kafka_bootstrap: str, alerts_topic: str, tmp_path: Path) -> None:
    records = alert_records(6)
    produce_alerts(kafka_bootstrap, alerts_topic, records)
    same = write_jsonl(tmp_path / "same.jsonl", records)
    env = {"EXW_KAFKA_BOOTSTRAP": kafka_bootstrap, "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-m", "extraction_watch.cli", "alerts", "diff",
         f"kafka:{alerts_topic}", str(same)],
        capture_output=True, env=env, timeout=120, check=False)
    assert result.returncode == 0, result.stderr.decode()
    assert b"EQUIVALENT" in result.stdout


def test_diff_bad_record_and_missing_topic(kafka_bootstrap: str, alerts_topic: str,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    produce(kafka_bootstrap, alerts_topic, [orjson.dumps(alert("a")), b"{oops"], [b"a", b"a"])
    source = f"kafka:{alerts_topic}"
    assert main(["alerts", "diff", "--bootstrap", kafka_bootstrap, source, source]) == 2
    err = capsys.readouterr().err
    assert f"{source} partition " in err and "offset 1: not JSON" in err
    missing = f"kafka:{alerts_topic}-missing"
    assert main(["alerts", "diff", "--bootstrap", kafka_bootstrap, missing, missing]) == 2
    assert "topic not found" in capsys.readouterr().err
    # and reading did not create it
    with pytest.raises(AlertSourceError, match="topic not found"):
        load_alert_set(missing, bootstrap=kafka_bootstrap)


def test_tail_from_beginning_prints_exactly_the_records(
        kafka_bootstrap: str, alerts_topic: str, capsys: pytest.CaptureFixture[str]) -> None:
    records = alert_records(12)
    produce_alerts(kafka_bootstrap, alerts_topic, records)
    argv = ["alerts", "tail", "--bootstrap", kafka_bootstrap, "--topic", alerts_topic,
            "--from-beginning", "--json", "--timeout", "30"]
    started = time.monotonic()
    assert main([*argv, "--max", "12"]) == 0
    assert time.monotonic() - started < 25, "--max should stop without waiting for --timeout"
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert len(lines) == 12 and captured.err == ""
    assert canonical([orjson.loads(line) for line in lines]) == canonical(records)

    assert main([*argv, "--max", "5"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 5

    # readable lines: one per record, with the alert's id and seq
    assert main(["alerts", "tail", "--bootstrap", kafka_bootstrap, "--topic", alerts_topic,
                 "--from-beginning", "--timeout", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert sorted(line.rsplit("[", 1)[1] for line in lines) == sorted(
        f"{r['alert_id']} #{r['seq']}]" for r in records)


def test_tail_since_skips_earlier_records(kafka_bootstrap: str, alerts_topic: str,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    records = alert_records(20)
    produce_alerts(kafka_bootstrap, alerts_topic, records)  # record i at T0 + i minutes
    since = format_rfc3339((T0 + 12 * STEP_MS) / 1000)
    assert main(["alerts", "tail", "--bootstrap", kafka_bootstrap, "--topic", alerts_topic,
                 "--since", since, "--json", "--timeout", "3"]) == 0
    got = [orjson.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert canonical(got) == canonical(records[12:])
    # a time after every record: nothing
    later = format_rfc3339((T0 + 60 * STEP_MS) / 1000)
    assert main(["alerts", "tail", "--bootstrap", kafka_bootstrap, "--topic", alerts_topic,
                 "--since", later, "--timeout", "2"]) == 0
    assert capsys.readouterr().out == ""


def test_tail_from_end_sees_only_new_records_and_skips_bad_ones(
        kafka_bootstrap: str, alerts_topic: str) -> None:
    old = alert_records(6, prefix="old")
    produce_alerts(kafka_bootstrap, alerts_topic, old)
    out, err = io.StringIO(), io.StringIO()
    thread = threading.Thread(target=tail, args=(alerts_topic,), kwargs=dict(
        bootstrap=kafka_bootstrap, as_json=True, max_records=2, idle_timeout_s=60,
        out=out, err=err), daemon=True)
    thread.start()
    # the tail starts at the end as of its start, which we cannot observe: keep publishing
    # a bad record and then a fresh alert until it has printed two alerts
    new: list[dict[str, Any]] = []
    deadline = time.monotonic() + 60
    while thread.is_alive() and time.monotonic() < deadline:
        record = alert(f"exw-new{len(new)}", 1)
        new.append(record)
        produce(kafka_bootstrap, alerts_topic, [b"\x00not json", orjson.dumps(record)],
                [b"x", record["alert_id"].encode()], t0_ms=int(time.time() * 1000))
        thread.join(0.5)
    assert not thread.is_alive()
    got = [orjson.loads(line) for line in out.getvalue().splitlines()]
    assert len(got) == 2
    assert all(g in new for g in got) and not any(g in old for g in got)
    assert "not JSON" in err.getvalue() and "not json" not in err.getvalue()


def test_tail_ctrl_c_exits_cleanly(kafka_bootstrap: str, alerts_topic: str) -> None:
    produce_alerts(kafka_bootstrap, alerts_topic, alert_records(3))
    process = subprocess.Popen(
        [sys.executable, "-m", "extraction_watch.cli", "alerts", "tail", "--bootstrap",
         kafka_bootstrap, "--topic", alerts_topic, "--from-beginning"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        # a shell may start background jobs with SIGINT ignored; a terminal would not
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline() for _ in range(3)]  # the tail is up and printing
        assert all(b"[exw-k" in line for line in lines), lines
        process.send_signal(signal.SIGINT)
        rest, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err.decode()
    assert rest == b""
    assert b"Traceback" not in err and b"KeyboardInterrupt" not in err
