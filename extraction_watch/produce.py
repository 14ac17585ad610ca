"""``extraction-watch produce``: send a JSON Lines file of api_call events to Kafka.

Each non-blank line goes out as-is (its bytes without the line ending), even
when it is not valid JSON, so that the worker's dead-letter path sees exactly
what a misbehaving client would send. The record key is the line's
``account_id`` when the line is a JSON object with a string ``account_id``
(else no key), and the record timestamp is the event's ``ts`` in milliseconds
when it parses (else the time of sending): replaying a time range with
``offsets_for_times`` relies on that. Release lines go to the releases topic,
keyed by ``model`` and stamped with ``released_at``, before any event.

Line contents are never logged or printed: a line may carry raw prompt text.
Only counts and exception type names are reported.
"""

from __future__ import annotations

import argparse
import collections
import logging
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import kafka.errors as kafka_errors
import orjson
from kafka import KafkaProducer
from kafka.codec import has_lz4

from models.contract import parse_rfc3339
from streams.config import ConfigError, Settings, settings
from streams.topics import ensure_topics, partitions_for

__all__ = ["produce_file", "register"]

# A record stamped further ahead of this machine's clock gets the current time
# instead: brokers refuse records more than message.timestamp.after.max.ms
# (one hour by default since Kafka 4.0) in the future, and such an event is
# rejected by the engine as out of range anyway.
_MAX_FUTURE_MS = 30 * 60 * 1000
# Bound on bytes handed to the producer and not yet acknowledged (kafka-python
# has no buffer limit of its own), checked on every _SAMPLE_EVERY-th record.
_MAX_PENDING_BYTES = 64 << 20
_SAMPLE_EVERY = 1024
_READ_BYTES = 1 << 20
# Lines up to the brokers' message.max.bytes of deploy/kafka and docker-compose.yml
# (16 MiB) are sent, so payloads over the contract's 1 MiB reach the worker and
# become too_large dead letters. A broker with a lower limit refuses them: they
# are then counted as failed.
_MAX_REQUEST_BYTES = 16 << 20


class _Pacer:
    """Token bucket: on average ``rate`` records per second, bursts of at most 10 ms."""

    def __init__(self, rate: float) -> None:
        if not rate > 0:
            raise ValueError(f"rate must be > 0 events/s, got {rate!r}")
        self.rate = rate
        self.capacity = max(1.0, rate / 100)
        self.tokens = 1.0
        self.last = time.perf_counter()

    def take(self) -> None:
        self.tokens -= 1
        if self.tokens >= 0:
            return
        now = time.perf_counter()
        self.tokens = min(self.capacity, self.tokens + (now - self.last) * self.rate)
        self.last = now
        while self.tokens < 0:
            # Sleep at least a millisecond: shorter sleeps cost more than they pace.
            time.sleep(max(-self.tokens / self.rate, 0.001))
            now = time.perf_counter()
            self.tokens = min(self.capacity, self.tokens + (now - self.last) * self.rate)
            self.last = now


def _key_and_timestamp(line: bytes, key_field: str, ts_field: str,
                       now_ms: int) -> tuple[bytes | None, int | None, bool]:
    """(key, timestamp in ms or None for "now", whether the line is a JSON object).

    >>> line = b'{"account_id": "acct-7", "ts": "2026-03-06T10:00:00.123Z"}'
    >>> _key_and_timestamp(line, "account_id", "ts", now_ms=1772791200123)
    (b'acct-7', 1772791200123, True)
    >>> _key_and_timestamp(line, "account_id", "ts", now_ms=0)  # far in the future
    (b'acct-7', None, True)
    >>> _key_and_timestamp(b'{"account_id": 7}', "account_id", "ts", now_ms=0)
    (None, None, True)
    >>> _key_and_timestamp(b'not json', "account_id", "ts", now_ms=0)
    (None, None, False)
    """
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None, None, False
    if type(obj) is not dict:
        return None, None, False
    key = obj.get(key_field)
    ts = obj.get(ts_field)
    ts_ms: int | None = None
    if type(ts) is str:
        try:
            ts_ms = round(parse_rfc3339(ts) * 1000)
        except ValueError:
            ts_ms = None
        if ts_ms is not None and ts_ms > now_ms + _MAX_FUTURE_MS:
            ts_ms = None
    return (key.encode() if type(key) is str else None), ts_ms, True


def _lines(handle: IO[bytes], chunked: bool = True) -> Iterator[bytes]:
    """Lines without their ending (``\\n`` or ``\\r\\n``).

    ``chunked`` reads about a megabyte at a time: each read releases the GIL
    and the producer's sender thread then holds it for a while, so fewer reads
    are markedly faster (about 40% here). Pipes are read line by line instead,
    so that a live stream is not held back until a megabyte has arrived.
    """
    chunks = iter(lambda: handle.readlines(_READ_BYTES), []) if chunked else iter((handle,))
    for chunk in chunks:
        for line in chunk:
            if line.endswith(b"\n"):
                line = line[:-1]
                if line.endswith(b"\r"):
                    line = line[:-1]
            yield line


class _Sender:
    """Sends records, counts delivery failures by exception type, bounds pending bytes."""

    def __init__(self, producer: KafkaProducer) -> None:
        self.producer = producer
        self.failed: collections.Counter[str] = collections.Counter()
        self.too_large = 0
        self._lock = threading.Lock()
        self._sent = 0
        self._bytes = 0
        self._samples: collections.deque[tuple[Any, int]] = collections.deque()

    def _on_error(self, exc: BaseException) -> None:
        with self._lock:
            self.failed[type(exc).__name__] += 1

    def send(self, topic: str, value: bytes, key: bytes | None, ts_ms: int | None) -> bool:
        try:
            future = self.producer.send(topic, value=value, key=key, timestamp_ms=ts_ms)
        except kafka_errors.MessageSizeTooLargeError:
            self.too_large += 1
            return False
        future.add_errback(self._on_error)
        self._sent += 1
        self._bytes += len(value)
        if self._sent % _SAMPLE_EVERY == 0:
            self._samples.append((future, self._bytes))
            while self._samples and self._bytes - self._samples[0][1] > _MAX_PENDING_BYTES:
                oldest, _ = self._samples.popleft()
                try:
                    oldest.get()
                except Exception:  # noqa: BLE001 - counted by the errback
                    pass
        return True


def _open(path: str | Path) -> IO[bytes]:
    if str(path) == "-":
        return sys.stdin.buffer
    return open(path, "rb")  # noqa: SIM115 - closed by the caller


def produce_file(settings: Settings, events_path: str | Path,
                 releases_path: str | Path | None = None, topic: str | None = None,
                 rate: float | None = None, limit: int | None = None, *,
                 releases_topic: str | None = None,
                 create_topics: bool = False) -> dict[str, Any]:
    """Send the lines of ``events_path`` (``"-"``: stdin) and ``releases_path`` to Kafka.

    ``topic`` and ``releases_topic`` default to the settings' events and
    releases topics. ``rate`` caps the send rate (events per second, steady);
    ``limit`` stops after that many events. With ``create_topics`` missing
    topics are created (:func:`streams.topics.ensure_topics`); otherwise a
    missing topic is an error (the producer never auto-creates topics).

    Returns counts: ``events`` sent, ``unparseable`` (not a JSON object, sent
    without key), ``unkeyed`` (sent without key, unparseable included),
    ``untimed`` (stamped with the previous event's time), ``blank_lines`` skipped,
    ``releases`` sent, ``too_large`` (refused by the client, not sent),
    ``failed`` (delivery failures by exception type), ``seconds``,
    ``events_per_s``, ``topic``, ``releases_topic``.
    """
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    pacer = _Pacer(rate) if rate is not None else None
    topic = topic or settings.topic_events
    releases_topic = releases_topic or settings.topic_releases
    wanted = {topic: settings.topic_partitions}
    if releases_path is not None:
        wanted[releases_topic] = 1
    if create_topics:
        ensure_topics(settings, wanted)
    else:
        for name in wanted:
            try:
                partitions_for(settings, name)
            except kafka_errors.UnknownTopicOrPartitionError:
                raise ConfigError(f"topic {name!r} does not exist (use --create-topics)") from None

    # kafka-python logs record values at DEBUG level: keep its producer quieter
    # than that whatever the caller configured, lines may carry raw text.
    producer_log = logging.getLogger("kafka.producer")
    if producer_log.getEffectiveLevel() < logging.INFO:
        producer_log.setLevel(logging.INFO)

    # Idempotence is kafka-python's default; it turns itself off (with a
    # warning) on brokers too old for it. acks=all is what it requires.
    producer = KafkaProducer(client_id=f"{settings.app_id}-producer", acks="all",
                             linger_ms=20, batch_size=256 << 10,
                             max_request_size=_MAX_REQUEST_BYTES,
                             compression_type="lz4" if has_lz4() else None,
                             allow_auto_create_topics=False,
                             **settings.kafka_python_kwargs())
    sender = _Sender(producer)
    counts = {"events": 0, "unparseable": 0, "unkeyed": 0, "untimed": 0, "blank_lines": 0,
              "releases": 0}
    started = time.perf_counter()
    try:
        if releases_path is not None:
            with open(releases_path, "rb") as releases_handle:
                for line in _lines(releases_handle):
                    if not line.strip():
                        continue
                    key, ts_ms, _ = _key_and_timestamp(line, "model", "released_at",
                                                       int(time.time() * 1000))
                    if sender.send(releases_topic, line, key, ts_ms):
                        counts["releases"] += 1
        handle = _open(events_path)
        try:
            last_ts_ms: int | None = None
            for line in _lines(handle, chunked=handle is not sys.stdin.buffer):
                if limit is not None and counts["events"] >= limit:
                    break
                if not line.strip():
                    counts["blank_lines"] += 1
                    continue
                key, ts_ms, is_object = _key_and_timestamp(line, "account_id", "ts",
                                                           int(time.time() * 1000))
                if ts_ms is None:
                    counts["untimed"] += 1
                    # the previous event's time, not the sending time: one record
                    # stamped "now" among historical ones would end every
                    # partition's time index there, and replay --from/--to with it
                    ts_ms = last_ts_ms
                else:
                    last_ts_ms = ts_ms
                if pacer is not None:
                    pacer.take()
                if not sender.send(topic, line, key, ts_ms):
                    continue
                counts["events"] += 1
                counts["unparseable"] += not is_object
                counts["unkeyed"] += key is None
        finally:
            if handle is not sys.stdin.buffer:
                handle.close()
        producer.flush()
    finally:
        producer.close()
    seconds = time.perf_counter() - started
    return {**counts, "too_large": sender.too_large, "failed": dict(sender.failed),
            "seconds": round(seconds, 3),
            "events_per_s": round(counts["events"] / seconds, 1) if seconds > 0 else 0.0,
            "topic": topic, "releases_topic": releases_topic}


def format_summary(summary: dict[str, Any]) -> str:
    """One line for people (counts only, never contents)."""
    failed = sum(summary["failed"].values())
    releases = (f" and {summary['releases']:,} releases to {summary['releases_topic']}"
                if summary["releases"] else "")
    text = (f"produced {summary['events']:,} events to {summary['topic']} "
            f"({summary['unparseable']:,} unparseable lines, {summary['unkeyed']:,} without key, "
            f"{summary['untimed']:,} stamped with the previous event's time){releases} "
            f"in {summary['seconds']:.1f} s: {summary['events_per_s']:,.0f} events/s")
    if summary["too_large"]:
        text += f"; {summary['too_large']:,} lines too large for the producer, not sent"
    if failed:
        kinds = ", ".join(f"{name} x{n}" for name, n in sorted(summary["failed"].items()))
        text += f"; {failed:,} records FAILED ({kinds})"
    return text


def cmd_produce(args: argparse.Namespace) -> int:
    try:
        config = (Settings.from_env(bootstrap=args.bootstrap) if args.bootstrap
                  else settings())
        summary = produce_file(config, args.events, args.releases, topic=args.topic,
                               rate=args.rate, limit=args.limit,
                               releases_topic=args.releases_topic,
                               create_topics=args.create_topics)
    except (ConfigError, ValueError, OSError) as exc:
        print(f"extraction-watch produce: {exc}", file=sys.stderr)
        return 2
    except kafka_errors.KafkaError as exc:
        # Errors raised outside send() are about connections and topics, never record contents.
        print(f"extraction-watch produce: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(format_summary(summary), file=sys.stderr)
    return 1 if summary["failed"] or summary["too_large"] else 0


def register(subparsers: Any) -> None:
    """Add the ``produce`` subcommand."""
    p = subparsers.add_parser(
        "produce", help="send an api_call JSONL file (and releases) to Kafka",
        description="Send each line of an api_call JSONL file as one Kafka record "
                    "(key = account_id, timestamp = ts). Connection settings come from "
                    "the EXW_ environment variables.")
    p.add_argument("--events", required=True, help="api_call JSONL file ('-' for stdin)")
    p.add_argument("--releases", default=None, help="model_release JSONL file")
    p.add_argument("--bootstrap", default=None, metavar="HOST:PORT",
                   help="bootstrap servers (overrides EXW_KAFKA_BOOTSTRAP)")
    p.add_argument("--topic", default=None, help="events topic (default EXW_TOPIC_EVENTS)")
    p.add_argument("--releases-topic", default=None,
                   help="releases topic (default EXW_TOPIC_RELEASES)")
    p.add_argument("--rate", type=float, default=None, metavar="EV_PER_S",
                   help="steady send rate (default: as fast as possible)")
    p.add_argument("--create-topics", action="store_true",
                   help="create missing topics (EXW_TOPIC_PARTITIONS partitions)")
    p.add_argument("--limit", type=int, default=None, metavar="N",
                   help="stop after N events")
    p.set_defaults(func=cmd_produce)
