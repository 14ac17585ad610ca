"""Historical replay: a time range of an events topic through an isolated pipeline.

Reads ``[from, to)`` of every partition (offsets found by record timestamp,
which the producer sets to the event time), with no consumer group, so the
production group's offsets are never touched; keeps its own state in memory;
writes alerts to a file or to a topic that must not be the production alerts
topic. Events go through the same two stages as the worker
(:class:`streams.handoff.Validator` then :class:`streams.handoff.Reducer`,
with per-partition watermarks), so a range that the live worker read from
the start gives the same alerts.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import IO, Any

import orjson
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from models.contract import parse_rfc3339
from streams.config import Settings
from streams.handoff import Reducer, Validator, alert_headers, stamp

__all__ = ["TopicReplaySummary", "replay_topic", "ReplayRefused"]


class ReplayRefused(ValueError):
    """The replay would write where production reads or writes."""


@dataclass
class TopicReplaySummary:
    topic: str
    events: int = 0
    processed: int = 0
    dead_letters: dict[str, int] = field(default_factory=dict)
    alerts: dict[str, int] = field(default_factory=dict)
    alert_ids: int = 0
    wall_s: float = 0.0
    partitions: dict[int, tuple[int, int]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"topic": self.topic, "events": self.events, "processed": self.processed,
                "dead_letters": self.dead_letters, "alerts": self.alerts,
                "alert_ids": self.alert_ids, "wall_s": round(self.wall_s, 3),
                "events_per_s": round(self.events / self.wall_s) if self.wall_s else None,
                "partitions": {str(p): list(r) for p, r in self.partitions.items()}}

    def format(self) -> str:
        rate = f"{self.events / self.wall_s:,.0f}" if self.wall_s else "-"
        dead = ", ".join(f"{k}={v}" for k, v in sorted(self.dead_letters.items())) or "none"
        alerts = ", ".join(f"{k}={v}" for k, v in sorted(self.alerts.items())) or "none"
        return (f"topic              {self.topic} ({len(self.partitions)} partitions)\n"
                f"events             {self.events:,} read, {self.processed:,} processed\n"
                f"dead letters       {dead}\n"
                f"alerts             {self.alert_ids} distinct ids: {alerts}\n"
                f"speed              {rate} events/s ({self.wall_s:.1f} s)")


def _ms(ts: str | None) -> int | None:
    return None if ts is None else int(round(parse_rfc3339(ts) * 1000))


def replay_topic(settings: Settings, topic: str, start: str | None = None, end: str | None = None,
                 *, alerts_out: IO[bytes] | None = None, alerts_topic: str | None = None,
                 dead_letters_out: IO[bytes] | None = None, releases_topic: str | None = None,
                 poll_records: int = 5000) -> TopicReplaySummary:
    """Replay ``topic`` from ``start`` to ``end`` (RFC 3339, either may be None)."""
    if alerts_topic is not None and alerts_topic == settings.topic_alerts:
        raise ReplayRefused(f"refusing to write replay alerts to the production alerts topic "
                            f"{alerts_topic!r}: name another topic or use --alerts-out")
    if alerts_out is None and alerts_topic is None:
        raise ReplayRefused("give an alerts file or an alerts topic")
    started = time.perf_counter()
    summary = TopicReplaySummary(topic)
    kwargs = settings.kafka_python_kwargs()
    consumer = KafkaConsumer(group_id=None, enable_auto_commit=False,
                             max_poll_records=poll_records, **kwargs)
    producer = KafkaProducer(acks="all", linger_ms=20, **kwargs) if alerts_topic else None
    validator = Validator(topic)
    reducer = Reducer(topic)
    engine = reducer.engine
    ids: set[str] = set()

    def emit(out: list | tuple) -> None:
        now = time.time()
        for kind, record in out:
            if kind == "alert":
                stamp(record, now)
                ids.add(record["alert_id"])
                label = f"{record['kind']}/{record['severity']}"
                summary.alerts[label] = summary.alerts.get(label, 0) + 1
                data = orjson.dumps(record)
                if alerts_out is not None:
                    alerts_out.write(data + b"\n")
                if producer is not None:
                    producer.send(alerts_topic, key=record["alert_id"].encode(), value=data,
                                  headers=alert_headers(record, f"extraction-watch/replay/{topic}"))
            else:
                reason = record["reason"]
                summary.dead_letters[reason] = summary.dead_letters.get(reason, 0) + 1
                if dead_letters_out is not None:  # a replay's dead letters stay local
                    dead_letters_out.write(orjson.dumps(record) + b"\n")

    try:
        if releases_topic:
            emit(_read_releases(consumer, releases_topic, engine))
        partitions = sorted(consumer.partitions_for_topic(topic) or ())
        if not partitions:
            raise ReplayRefused(f"topic {topic!r} does not exist or has no partitions")
        tps = [TopicPartition(topic, p) for p in partitions]
        first = consumer.beginning_offsets(tps)
        last = consumer.end_offsets(tps)
        begin = dict(first)
        stop = dict(last)
        start_ms, end_ms = _ms(start), _ms(end)
        if start_ms is not None:
            found = consumer.offsets_for_times({tp: start_ms for tp in tps})
            begin = {tp: (found[tp].offset if found.get(tp) else last[tp]) for tp in tps}
        if end_ms is not None:
            found = consumer.offsets_for_times({tp: end_ms for tp in tps})
            stop = {tp: (found[tp].offset if found.get(tp) else last[tp]) for tp in tps}
        summary.partitions = {tp.partition: (begin[tp], stop[tp]) for tp in tps}
        emit(engine.set_partitions(partitions))
        active = [tp for tp in tps if begin[tp] < stop[tp]]
        for tp in tps:
            if begin[tp] >= stop[tp]:
                emit(engine.mark_idle(tp.partition))
        consumer.assign(active)
        for tp in active:
            consumer.seek(tp, begin[tp])
        remaining = set(active)
        while remaining:
            polled = consumer.poll(timeout_ms=1000, max_records=poll_records)
            for tp, messages in polled.items():
                if tp not in remaining:
                    continue
                limit = stop[tp]
                records = [(m.offset, m.value) for m in messages if m.offset < limit]
                summary.events += len(records)
                offsets, events, dead = validator.validate(tp.partition, records)
                emit([("dead_letter", rec) for _, rec in dead])
                emit(reducer.apply_events(tp.partition, offsets, events, limit))
                if consumer.position(tp) >= limit:
                    remaining.discard(tp)
                    consumer.pause(tp)
                    emit(engine.mark_idle(tp.partition))
        emit(engine.flush())
    finally:
        consumer.close()
        if producer is not None:
            producer.flush()
            producer.close()
    summary.processed = engine.stats.processed
    summary.alert_ids = len(ids)
    summary.wall_s = time.perf_counter() - started
    return summary


def _read_releases(consumer: KafkaConsumer, topic: str, engine) -> list:
    out: list = []
    partitions = sorted(consumer.partitions_for_topic(topic) or ())
    if not partitions:
        return out
    tps = [TopicPartition(topic, p) for p in partitions]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    end = consumer.end_offsets(tps)
    while any(consumer.position(tp) < end[tp] for tp in tps):
        for tp, messages in consumer.poll(timeout_ms=1000).items():
            for m in messages:
                if m.offset < end[tp]:
                    out.extend(engine.add_release(m.value or b"", {
                        "topic": topic, "partition": tp.partition, "offset": m.offset}))
    consumer.unsubscribe()
    return out
