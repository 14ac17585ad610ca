"""`extraction-watch produce` and streams.topics against the real broker."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import orjson
import pytest
from kafka.errors import UnknownTopicOrPartitionError

from extraction_watch.cli import main
from extraction_watch.produce import produce_file
from extraction_watch.simulator import simulate
from models.contract import parse_rfc3339
from streams.config import Settings
from streams.topics import ensure_topics, partitions_for
from tests.integration.conftest import consume_all, create_topics

SECRET = "SECRET-PROMPT-TEXT-4711"
# Lines no producer should fix up: each is sent as-is.
ODD_LINES = [
    b"not json at all " + SECRET.encode(),
    b'["an", "array"]',
    b'{"account_id": 7, "ts": "2026-03-06T00:00:00Z"}',
    b'{"account_id": "acct-bad-ts", "ts": "yesterday", "prompt": "' + SECRET.encode() + b'"}',
    b'{"account_id": "acct-no-ts"}',
    b'{"account_id": "acct-future", "ts": "2999-01-01T00:00:00Z"}',
]


def _settings(bootstrap: str, **env: str) -> Settings:
    return Settings.from_env({"EXW_KAFKA_BOOTSTRAP": bootstrap, **env})


def _expected(line: bytes, key_field: str, ts_field: str) -> tuple[bytes | None, int | None]:
    """The key and timestamp (None: the sending time) a line should get."""
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None, None
    if not isinstance(obj, dict):
        return None, None
    key = obj.get(key_field)
    ts, ts_ms = obj.get(ts_field), None
    if isinstance(ts, str):
        try:
            ts_ms = round(parse_rfc3339(ts) * 1000)
        except ValueError:
            pass
    if ts_ms is not None and ts_ms > time.time() * 1000 + 30 * 60_000:
        ts_ms = None
    return (key.encode() if isinstance(key, str) else None), ts_ms


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny simulated scenario (with some dirty lines) plus odd lines, a blank
    line and a CRLF line ending."""
    out = tmp_path_factory.mktemp("sim")
    simulate("small", 1, out, scale=0.02, hours=3, bad_rate=0.05)
    events = out / "events.jsonl"
    lines = events.read_bytes().splitlines()
    assert len(lines) > 50
    mixed = lines[:10] + ODD_LINES[:3] + lines[10:] + ODD_LINES[3:]
    text = b"\n".join(mixed) + b"\n"
    text = text.replace(b"\n", b"\r\n", 1) + b"   \n"  # a CRLF line, a blank line
    events.write_bytes(text)
    return out


def _lines(path: Path) -> list[bytes]:
    return [line.rstrip(b"\r") for line in path.read_bytes().splitlines() if line.strip()]


def test_produce_file_round_trip(kafka_bootstrap: str, unique_topics: str,
                                 scenario: Path) -> None:
    topic, releases_topic = f"{unique_topics}events", f"{unique_topics}releases"
    create_topics(kafka_bootstrap, {topic: 4, releases_topic: 1})
    before = int(time.time() * 1000)
    summary = produce_file(_settings(kafka_bootstrap), scenario / "events.jsonl",
                           scenario / "releases.jsonl", topic=topic,
                           releases_topic=releases_topic)
    after = int(time.time() * 1000)

    lines = _lines(scenario / "events.jsonl")
    expected = {}
    last_ts = None
    for line in lines:  # untimed lines take the previous event's time (sending time if none)
        key, ts_ms = _expected(line, "account_id", "ts")
        expected[line] = (key, ts_ms if ts_ms is not None else last_ts)
        last_ts = ts_ms if ts_ms is not None else last_ts
    untimed = sum(1 for line in lines if _expected(line, "account_id", "ts")[1] is None)
    assert summary["events"] == len(lines)
    assert summary["blank_lines"] == 1
    assert summary["failed"] == {} and summary["too_large"] == 0
    assert summary["unkeyed"] == sum(1 for line in lines if expected[line][0] is None)
    assert summary["untimed"] == untimed
    assert summary["unparseable"] >= 2

    records = consume_all(kafka_bootstrap, topic)
    assert len(records) == len(lines)
    # Values as-is (line endings removed), so compare as multisets.
    assert Counter(r.value for r in records) == Counter(lines)
    for record in records:
        assert record.value is not None
        key, ts_ms = expected[record.value]
        assert record.key == key
        if ts_ms is None:
            assert before <= record.timestamp <= after
        else:
            assert record.timestamp == ts_ms
    # The malformed lines went out too, without a key, stamped with the time of
    # the event before them (the far-future one too: brokers would refuse it).
    odd = {r.value: r for r in records if r.value in ODD_LINES}
    assert set(odd) == set(ODD_LINES)
    assert odd[ODD_LINES[0]].key is None
    assert odd[ODD_LINES[0]].timestamp == expected[lines[lines.index(ODD_LINES[0]) - 1]][1]
    assert odd[ODD_LINES[2]].key is None
    assert odd[ODD_LINES[3]].key == b"acct-bad-ts"
    assert odd[ODD_LINES[5]].timestamp < before
    # Keyed records: one account, one partition; all four partitions used.
    partitions: dict[bytes, set[int]] = {}
    for record in records:
        if record.key is not None:
            partitions.setdefault(record.key, set()).add(record.partition)
    assert all(len(p) == 1 for p in partitions.values())
    assert len({r.partition for r in records}) == 4

    releases = consume_all(kafka_bootstrap, releases_topic)
    release_lines = _lines(scenario / "releases.jsonl")
    assert summary["releases"] == len(releases) == len(release_lines) > 0
    for record in releases:
        assert record.value is not None
        model = orjson.loads(record.value)["model"]
        assert record.key == model.encode()
        assert record.timestamp == round(
            parse_rfc3339(orjson.loads(record.value)["released_at"]) * 1000)


def test_produce_command(kafka_bootstrap: str, unique_topics: str, scenario: Path,
                         capsys: pytest.CaptureFixture[str]) -> None:
    topic = f"{unique_topics}calls"
    events = str(scenario / "events.jsonl")
    base = ["produce", "--events", events, "--bootstrap", kafka_bootstrap, "--topic", topic]

    assert main(base) == 2  # the topic does not exist and is not created silently
    assert "does not exist" in capsys.readouterr().err

    started = time.perf_counter()
    assert main([*base, "--create-topics", "--limit", "30", "--rate", "100"]) == 0
    elapsed = time.perf_counter() - started
    assert elapsed >= 0.25  # 30 events at 100/s
    assert partitions_for(_settings(kafka_bootstrap), topic) == Settings().topic_partitions
    assert len(consume_all(kafka_bootstrap, topic)) == 30

    assert main([*base, "--limit", "0"]) == 0
    assert main(base) == 0
    assert len(consume_all(kafka_bootstrap, topic)) == 30 + len(_lines(scenario / "events.jsonl"))
    out = capsys.readouterr()
    assert "produced" in out.err and "events/s" in out.err
    # Counts only, never contents (the odd lines carry "raw text").
    assert SECRET not in out.out + out.err


def test_ensure_topics(kafka_bootstrap: str, unique_topics: str) -> None:
    settings = _settings(kafka_bootstrap, EXW_TOPIC_PARTITIONS="3",
                         EXW_TOPIC_EVENTS=f"{unique_topics}ev",
                         EXW_TOPIC_RELEASES=f"{unique_topics}rel",
                         EXW_TOPIC_ALERTS=f"{unique_topics}al",
                         EXW_TOPIC_DEAD_LETTERS=f"{unique_topics}dl")
    with pytest.raises(UnknownTopicOrPartitionError):
        partitions_for(settings, settings.topic_events)

    created = ensure_topics(settings)
    assert created == sorted([settings.topic_events, settings.topic_releases,
                              settings.topic_alerts, settings.topic_dead_letters])
    assert partitions_for(settings, settings.topic_events) == 3
    assert partitions_for(settings, settings.topic_releases) == 1
    assert partitions_for(settings, settings.topic_alerts) == 3
    assert partitions_for(settings, settings.topic_dead_letters) == 3
    assert ensure_topics(settings) == []  # idempotent

    extra = {f"{unique_topics}x7": 7, settings.topic_events: 5}
    assert ensure_topics(settings, extra, configs={f"{unique_topics}x7": {"retention.ms": "-1"}}
                         ) == [f"{unique_topics}x7"]
    assert partitions_for(settings, f"{unique_topics}x7") == 7
    assert partitions_for(settings, settings.topic_events) == 3  # existing topics are not altered


def test_ensure_topics_race(kafka_bootstrap: str, unique_topics: str) -> None:
    """Two workers starting at once: exactly one creates the topic, neither fails."""
    settings = _settings(kafka_bootstrap)
    topics = {f"{unique_topics}shared": 2}
    results: list[list[str]] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(3)

    def worker() -> None:
        barrier.wait()
        try:
            results.append(ensure_topics(settings, topics))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert sorted(len(r) for r in results) == [0, 0, 1]
    assert partitions_for(settings, f"{unique_topics}shared") == 2


def test_line_over_one_mib_is_sent(kafka_bootstrap: str, unique_topics: str,
                                   tmp_path: Path) -> None:
    """A payload over the contract's 1 MiB still reaches the topic (the worker turns
    it into a too_large dead letter); the test broker accepts records up to 16 MiB."""
    topic = f"{unique_topics}big"
    create_topics(kafka_bootstrap, {topic: 1})
    big = b'{"account_id": "acct-big", "ts": "2026-03-06T00:00:00Z", "pad": "' + \
        b"x" * (2 << 20) + b'"}'
    events = tmp_path / "events.jsonl"
    events.write_bytes(b'{"account_id": "acct-small"}\n' + big + b"\n")
    summary = produce_file(_settings(kafka_bootstrap), events, topic=topic)
    assert summary["events"] == 2 and summary["failed"] == {} and summary["too_large"] == 0
    records = consume_all(kafka_bootstrap, topic)
    assert [r.key for r in records] == [b"acct-small", b"acct-big"]
    assert records[1].value == big
    assert records[1].timestamp == round(parse_rfc3339("2026-03-06T00:00:00Z") * 1000)
