"""``extraction-watch alerts``: compare two alert sets, follow the alerts topic.

``alerts diff A B`` compares two sets of alert v1 records (say, two detector
versions replayed over the same history). Each side is a JSONL file or a Kafka
topic written ``kafka:TOPIC`` (read from the beginning up to the end offsets at
the time of the call, with no consumer group and no commits).

Definitions
-----------

Episode
    All updates of one ``alert_id``. Its *final state* is the update with the
    highest ``seq``; its kind and entity are those of the final state. Its
    *peak severity* is the highest severity of any update; its *first
    warning+* is the earliest ``detected_at`` of a firing update at warning or
    critical (the reference of the time to detect, as in ``eval``); its
    accounts are the union of ``accounts`` over its updates (one update lists
    at most 1000) and its ``accounts_total`` the largest announced.

Matching
    First exactly, by ``(kind, entity.type, entity.id)``. Then, among the
    episodes left, by accounts: pairs of the same kind and entity type whose
    account sets have a Jaccard index at or above a threshold (0.5 by
    default) are taken greedily, best first, so that a detector change that
    renames a cluster (its id hashes its anchor account and first evidence
    time) is seen as a renamed alert, not as one removed and one added.

Differences
    ``added`` (in B only), ``removed`` (in A only), and for matched pairs:
    ``renamed`` (alert id or entity id differ), ``severity`` (peak),
    ``time_to_detect`` (first warning+ ``detected_at``, B minus A in minutes:
    positive means B is slower; one side may never reach warning),
    ``accounts`` (accounts added and removed, or a different
    ``accounts_total``) and ``status`` (of the final state). A matched pair
    with none of these is *unchanged*. Score, summary, evidence, samples,
    ``detector_version`` and the wall-clock ``emitted_at`` are not compared.
    The sets are *equivalent* when nothing is added, removed or changed.

``alerts tail`` follows the alerts topic and prints one line per update.

>>> def upd(seq, severity, at, accounts):
...     return {"v": 1, "alert_id": "exw-1", "seq": seq, "status": "firing",
...             "kind": "cluster", "severity": severity, "score": 0.5,
...             "entity": {"type": "cluster", "id": "cl-1"}, "accounts": accounts,
...             "accounts_total": len(accounts), "first_seen": "2026-03-06T00:00:00Z",
...             "detected_at": at}
>>> a = [upd(1, "info", "2026-03-06T01:00:00Z", ["x"]),
...      upd(2, "warning", "2026-03-06T02:00:00Z", ["x", "y"])]
>>> b = [upd(1, "critical", "2026-03-06T01:30:00Z", ["x", "y"])]
>>> result = diff_alert_sets(a, b)
>>> result["equivalent"], result["counts"]["severity_changed"]
(False, 1)
>>> result["matched"][0]["changes"]["time_to_detect"]["delta_min"]
-30.0
>>> diff_alert_sets(a, a)["equivalent"]
True
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import IO, TYPE_CHECKING, Any

import orjson

from models.contract import parse_rfc3339

if TYPE_CHECKING:
    from streams.config import Settings

__all__ = [
    "AlertSourceError",
    "Episode",
    "KAFKA_PREFIX",
    "alert_json",
    "check_alert",
    "diff_alert_sets",
    "episodes",
    "format_alert_line",
    "format_diff",
    "load_alert_set",
    "register",
    "tail",
]

KAFKA_PREFIX = "kafka:"
SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}
ACTIONABLE = frozenset({"warning", "critical"})
STATUSES = frozenset({"firing", "resolved"})
# alert v1 fields, in schema order: ``--json`` never prints anything else.
ALERT_FIELDS = (
    "v", "alert_id", "seq", "status", "kind", "severity", "score", "entity", "accounts",
    "accounts_total", "first_seen", "detected_at", "emitted_at", "summary", "evidence",
    "sample_event_ids", "detector_version",
)
DEFAULT_JACCARD = 0.5
SUMMARY_CHARS = 160
# How long reading a topic may go without progress before ``diff`` gives up.
TOPIC_STALL_S = 30.0
_CLIENT_ID = "extraction-watch-alerts"


class AlertSourceError(ValueError):
    """An alert source cannot be read: missing file or topic, bad record, no broker."""


# ---------------------------------------------------------------- records


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_alert(record: Any) -> str | None:
    """Why ``record`` is not an alert v1 record this tool can use, or None.

    Only the fields the tool reads are checked (``models/schemas`` has the
    whole contract).

    >>> check_alert({"v": 2}) is not None
    True
    """
    if not isinstance(record, dict):
        return f"alert must be a JSON object, got {type(record).__name__}"
    if record.get("v") != 1:
        return f"unsupported alert version v={record.get('v')!r} (expected 1)"
    for name in ("alert_id", "kind"):
        if not isinstance(record.get(name), str) or not record[name]:
            return f"{name} must be a non-empty string"
    if not _is_int(record.get("seq")) or record["seq"] < 1:
        return "seq must be an integer >= 1"
    if record.get("status") not in STATUSES:
        return f"status must be one of {sorted(STATUSES)}"
    if record.get("severity") not in SEVERITY_RANK:
        return f"severity must be one of {list(SEVERITY_RANK)}"
    entity = record.get("entity")
    if (not isinstance(entity, dict) or not isinstance(entity.get("type"), str)
            or not isinstance(entity.get("id"), str) or not entity["id"]):
        return "entity must be an object with string type and id"
    accounts = record.get("accounts")
    if not isinstance(accounts, list) or not all(isinstance(a, str) for a in accounts):
        return "accounts must be a list of strings"
    if not _is_int(record.get("accounts_total")) or record["accounts_total"] < 0:
        return "accounts_total must be an integer >= 0"
    score = record.get("score")
    if isinstance(score, bool) or not isinstance(score, int | float) or not math.isfinite(score):
        return "score must be a number"
    for name in ("first_seen", "detected_at"):
        try:
            parse_rfc3339(record.get(name))  # type: ignore[arg-type]
        except ValueError:
            return f"{name} must be an RFC 3339 timestamp"
    return None


def _parse_line(line: bytes, where: str) -> dict[str, Any]:
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise AlertSourceError(f"{where}: not JSON: {exc}") from None
    problem = check_alert(record)
    if problem is not None:
        raise AlertSourceError(f"{where}: not an alert v1 record: {problem}")
    return record


def _load_file(path: str) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise AlertSourceError(f"{path}: cannot read: {exc.strerror or exc}") from None
    with handle:
        try:
            for line_no, line in enumerate(handle, start=1):
                if line.strip():
                    records.append(_parse_line(line, f"{path}:{line_no}"))
        except OSError as exc:
            raise AlertSourceError(f"{path}: cannot read: {exc.strerror or exc}") from None
    return records


def _settings(settings: Settings | None, bootstrap: str | None) -> Settings:
    from streams.config import ConfigError
    from streams.config import settings as process_settings

    try:
        chosen = settings if settings is not None else process_settings()
        if bootstrap:
            chosen = dataclasses.replace(chosen, bootstrap=bootstrap)
            chosen.validate()
    except ConfigError as exc:
        raise AlertSourceError(f"configuration: {exc}") from None
    return chosen


def _describe(exc: Exception) -> str:
    text, name = str(exc), type(exc).__name__
    return text if text.startswith(name) else f"{name}: {text}"


def _consumer(settings: Settings) -> Any:
    """A kafka-python consumer with no group: nothing is committed, nothing is joined."""
    from kafka import KafkaConsumer
    from kafka.errors import KafkaError

    try:
        return KafkaConsumer(
            group_id=None, enable_auto_commit=False, allow_auto_create_topics=False,
            isolation_level="read_committed", client_id=_CLIENT_ID,
            **settings.kafka_python_kwargs())
    except KafkaError as exc:
        raise AlertSourceError(
            f"cannot reach Kafka at {settings.bootstrap}: {_describe(exc)}") from None


def _assign_all(consumer: Any, topic: str) -> list[Any]:
    from kafka import TopicPartition

    partitions = consumer.partitions_for_topic(topic)
    if not partitions:
        raise AlertSourceError(f"{KAFKA_PREFIX}{topic}: topic not found")
    tps = [TopicPartition(topic, p) for p in sorted(partitions)]
    consumer.assign(tps)
    return tps


def _load_topic(topic: str, settings: Settings,
                stall_s: float = TOPIC_STALL_S) -> list[dict[str, Any]]:
    from kafka.errors import KafkaError

    consumer = _consumer(settings)
    try:
        tps = _assign_all(consumer, topic)
        end = consumer.end_offsets(tps)
        consumer.seek_to_beginning(*tps)
        pending = {tp for tp in tps if consumer.position(tp) < end[tp]}
        consumer.pause(*[tp for tp in tps if tp not in pending])
        found: list[tuple[int, int, dict[str, Any]]] = []
        last_progress = time.monotonic()
        while pending:
            batch = consumer.poll(timeout_ms=500)
            for tp, messages in batch.items():
                for message in messages:
                    if message.offset >= end[tp] or message.value is None:
                        continue  # after the snapshot, or a tombstone
                    where = f"{KAFKA_PREFIX}{topic} partition {tp.partition} offset {message.offset}"
                    found.append((tp.partition, message.offset, _parse_line(message.value, where)))
            done = {tp for tp in pending if consumer.position(tp) >= end[tp]}
            if done or batch:
                last_progress = time.monotonic()
                consumer.pause(*done)
                pending -= done
            elif time.monotonic() - last_progress > stall_s:
                raise AlertSourceError(
                    f"{KAFKA_PREFIX}{topic}: no progress for {stall_s:.0f} s before reaching "
                    f"the end offsets of partitions {sorted(tp.partition for tp in pending)}")
    except KafkaError as exc:
        raise AlertSourceError(
            f"{KAFKA_PREFIX}{topic}: Kafka error: {_describe(exc)}") from None
    finally:
        consumer.close(autocommit=False)
    found.sort(key=lambda item: (item[0], item[1]))
    return [record for _, _, record in found]


def load_alert_set(source: str, settings: Settings | None = None, *,
                   bootstrap: str | None = None) -> list[dict[str, Any]]:
    """Alert v1 records of a JSONL file, or of a topic written ``kafka:TOPIC``.

    A topic is read from its beginning to its end offsets at the time of the
    call (records of aborted transactions and tombstones are skipped).
    ``settings`` defaults to ``streams.config.settings()``; ``bootstrap``
    overrides its bootstrap servers. Raises :class:`AlertSourceError` naming
    the file and line (or topic, partition and offset) of a bad record.
    """
    if source.startswith(KAFKA_PREFIX):
        topic = source[len(KAFKA_PREFIX):]
        if not topic:
            raise AlertSourceError(f"{source}: no topic name after {KAFKA_PREFIX!r}")
        return _load_topic(topic, _settings(settings, bootstrap))
    return _load_file(source)


# ---------------------------------------------------------------- episodes


@dataclasses.dataclass
class Episode:
    """All updates of one alert id, reduced to what the diff compares."""

    alert_id: str
    final: dict[str, Any]
    peak_severity: str
    first_actionable_at: str | None
    first_actionable_t: float | None
    first_seen: str
    accounts: set[str]
    accounts_total: int
    updates: int

    @property
    def kind(self) -> str:
        return str(self.final["kind"])

    @property
    def entity_type(self) -> str:
        return str(self.final["entity"]["type"])

    @property
    def entity_id(self) -> str:
        return str(self.final["entity"]["id"])

    @property
    def entity(self) -> str:
        return f"{self.entity_type}:{self.entity_id}"

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.kind, self.entity_type, self.entity_id)

    @property
    def order(self) -> tuple[float, str, str, str]:
        return (parse_rfc3339(self.first_seen), self.kind, self.entity_id, self.alert_id)

    def as_dict(self) -> dict[str, Any]:
        return {
            "alert_id": self.alert_id,
            "kind": self.kind,
            "entity": {"type": self.entity_type, "id": self.entity_id},
            "peak_severity": self.peak_severity,
            "first_warning_at": self.first_actionable_at,
            "first_seen": self.first_seen,
            "accounts": len(self.accounts),
            "accounts_total": self.accounts_total,
            "updates": self.updates,
            "final": {"seq": self.final["seq"], "status": self.final["status"],
                      "severity": self.final["severity"], "score": self.final["score"],
                      "detected_at": self.final["detected_at"]},
        }


def episodes(records: Iterable[Mapping[str, Any]]) -> list[Episode]:
    """One :class:`Episode` per alert id, ordered by first evidence.

    Records must pass :func:`check_alert`. A duplicated update (same id and
    seq, as at-least-once delivery may give) counts once.
    """
    by_id: dict[str, dict[int, Mapping[str, Any]]] = {}
    for record in records:
        by_id.setdefault(record["alert_id"], {})[record["seq"]] = record
    out: list[Episode] = []
    for alert_id, updates in by_id.items():
        final = dict(updates[max(updates)])
        peak = max((u["severity"] for u in updates.values()), key=SEVERITY_RANK.__getitem__)
        actionable = [(parse_rfc3339(u["detected_at"]), u["detected_at"])
                      for u in updates.values()
                      if u["status"] == "firing" and u["severity"] in ACTIONABLE]
        first_t, first_at = min(actionable) if actionable else (None, None)
        first_seen = min((u["first_seen"] for u in updates.values()), key=parse_rfc3339)
        out.append(Episode(
            alert_id=alert_id, final=final, peak_severity=peak, first_actionable_at=first_at,
            first_actionable_t=first_t, first_seen=first_seen,
            accounts={a for u in updates.values() for a in u["accounts"]},
            accounts_total=max(u["accounts_total"] for u in updates.values()),
            updates=len(updates)))
    out.sort(key=lambda e: e.order)
    return out


# ---------------------------------------------------------------- diff


def _match_exact(a: list[Episode], b: list[Episode]) -> list[tuple[Episode, Episode]]:
    by_key: dict[tuple[str, str, str], list[Episode]] = {}
    for episode in b:
        by_key.setdefault(episode.key, []).append(episode)
    pairs = []
    for episode in a:  # both sides are in first-evidence order: duplicates pair in order
        candidates = by_key.get(episode.key)
        if candidates:
            pairs.append((episode, candidates.pop(0)))
    return pairs


def _match_by_accounts(a: list[Episode], b: list[Episode],
                       jaccard: float) -> list[tuple[Episode, Episode, float]]:
    """Greedy matching, best Jaccard index first, over an account -> episode index."""
    index: dict[str, list[int]] = {}
    for j, episode in enumerate(b):
        for account in episode.accounts:
            index.setdefault(account, []).append(j)
    candidates = []
    for i, episode in enumerate(a):
        shared: dict[int, int] = {}
        for account in episode.accounts:
            for j in index.get(account, ()):
                shared[j] = shared.get(j, 0) + 1
        for j, inter in shared.items():
            other = b[j]
            if (other.kind, other.entity_type) != (episode.kind, episode.entity_type):
                continue
            score = inter / (len(episode.accounts) + len(other.accounts) - inter)
            if score >= jaccard:
                candidates.append((-score, -inter, i, j))
    candidates.sort()
    used_a: set[int] = set()
    used_b: set[int] = set()
    pairs = []
    for neg_score, _, i, j in candidates:
        if i in used_a or j in used_b:
            continue
        used_a.add(i)
        used_b.add(j)
        pairs.append((a[i], b[j], round(-neg_score, 4)))
    return pairs


def _jaccard(x: set[str], y: set[str]) -> float:
    union = len(x | y)
    return round(len(x & y) / union, 4) if union else 1.0


def _changes(a: Episode, b: Episode) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    if a.alert_id != b.alert_id or a.entity != b.entity:
        changes["renamed"] = {"a": {"alert_id": a.alert_id, "entity": a.entity},
                              "b": {"alert_id": b.alert_id, "entity": b.entity}}
    if a.peak_severity != b.peak_severity:
        changes["severity"] = {"a": a.peak_severity, "b": b.peak_severity}
    if a.first_actionable_t != b.first_actionable_t:
        delta = None
        if a.first_actionable_t is not None and b.first_actionable_t is not None:
            delta = round((b.first_actionable_t - a.first_actionable_t) / 60.0, 2)
        changes["time_to_detect"] = {"a": a.first_actionable_at, "b": b.first_actionable_at,
                                     "delta_min": delta}
    added, removed = b.accounts - a.accounts, a.accounts - b.accounts
    if added or removed or a.accounts_total != b.accounts_total:
        changes["accounts"] = {"added": len(added), "removed": len(removed),
                               "total_a": a.accounts_total, "total_b": b.accounts_total,
                               "added_ids": sorted(added), "removed_ids": sorted(removed)}
    if a.final["status"] != b.final["status"]:
        changes["status"] = {"a": a.final["status"], "b": b.final["status"]}
    return changes


def diff_alert_sets(a: Sequence[Mapping[str, Any]], b: Sequence[Mapping[str, Any]],
                    jaccard: float = DEFAULT_JACCARD, *,
                    labels: tuple[str, str] = ("A", "B")) -> dict[str, Any]:
    """Compare two lists of alert v1 records (see the module docstring).

    Returns a JSON-serialisable dict: ``equivalent``, ``counts``, ``added`` and
    ``removed`` (episode summaries), ``matched`` (every matched pair, with how
    it matched and its ``changes``, empty when unchanged), and per side its
    label, alert and update counts.
    """
    if not 0.0 < jaccard <= 1.0:
        raise ValueError(f"jaccard threshold must be in (0, 1], got {jaccard}")
    for label, records in zip(labels, (a, b), strict=True):
        for n, record in enumerate(records, start=1):
            problem = check_alert(record)
            if problem is not None:
                raise AlertSourceError(f"{label}: record {n}: not an alert v1 record: {problem}")
    eps_a, eps_b = episodes(a), episodes(b)
    exact = _match_exact(eps_a, eps_b)
    taken_a = {id(x) for x, _ in exact}
    taken_b = {id(y) for _, y in exact}
    by_accounts = _match_by_accounts([e for e in eps_a if id(e) not in taken_a],
                                     [e for e in eps_b if id(e) not in taken_b], jaccard)
    taken_a |= {id(x) for x, _, _ in by_accounts}
    taken_b |= {id(y) for _, y, _ in by_accounts}

    pairs = [(x, y, "entity", _jaccard(x.accounts, y.accounts)) for x, y in exact]
    pairs += [(x, y, "accounts", score) for x, y, score in by_accounts]
    pairs.sort(key=lambda pair: pair[1].order)
    matched: list[dict[str, Any]] = [
        {"match": how, "jaccard": score, "a": x.as_dict(), "b": y.as_dict(),
         "changes": _changes(x, y)}
        for x, y, how, score in pairs]

    added = [e.as_dict() for e in eps_b if id(e) not in taken_b]
    removed = [e.as_dict() for e in eps_a if id(e) not in taken_a]

    def changed(name: str) -> int:
        return sum(1 for m in matched if name in m["changes"])

    counts = {
        "a_alerts": len(eps_a), "b_alerts": len(eps_b),
        "matched": len(matched), "matched_by_entity": len(exact),
        "matched_by_accounts": len(by_accounts),
        "unchanged": sum(1 for m in matched if not m["changes"]),
        "added": len(added), "removed": len(removed),
        "renamed": changed("renamed"), "severity_changed": changed("severity"),
        "time_to_detect_changed": changed("time_to_detect"),
        "accounts_changed": changed("accounts"), "status_changed": changed("status"),
    }
    return {
        "equivalent": not added and not removed and counts["unchanged"] == len(matched),
        "jaccard": jaccard,
        "a": {"source": labels[0], "alerts": len(eps_a), "updates": len(a)},
        "b": {"source": labels[1], "alerts": len(eps_b), "updates": len(b)},
        "counts": counts,
        "added": added,
        "removed": removed,
        "matched": matched,
    }


# ---------------------------------------------------------------- rendering


def _clean(value: Any) -> str:
    """A string safe for a terminal: control characters become spaces."""
    text = str(value)
    return "".join(" " if (ord(c) < 32 or 127 <= ord(c) < 160) else c for c in text)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  " + "  ".join(str(c).ljust(w) for c, w in zip(header, widths, strict=True))]
    lines += ["  " + "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True))
              for row in rows]
    return [line.rstrip() for line in lines]


def _entity(summary: Mapping[str, Any]) -> str:
    return _clean(f"{summary['entity']['type']}:{summary['entity']['id']}")


def _episode_rows(items: list[dict[str, Any]]) -> list[list[str]]:
    return [[_clean(e["kind"]), _entity(e), e["peak_severity"], e["first_warning_at"] or "-",
             f"{e['accounts_total']:,}", _clean(e["alert_id"])] for e in items]


def _minutes(delta: float | None) -> str:
    return "n/a" if delta is None else f"{delta:+g}"


def format_diff(result: Mapping[str, Any]) -> str:
    """A plain-text report of :func:`diff_alert_sets`' result."""
    counts = result["counts"]
    out = [
        f"A  {_clean(result['a']['source'])}: {result['a']['alerts']} alerts, "
        f"{result['a']['updates']} updates",
        f"B  {_clean(result['b']['source'])}: {result['b']['alerts']} alerts, "
        f"{result['b']['updates']} updates",
        f"matched {counts['matched']} ({counts['matched_by_entity']} by entity, "
        f"{counts['matched_by_accounts']} by accounts at Jaccard >= {result['jaccard']:g}), "
        f"unchanged {counts['unchanged']}, added {counts['added']}, removed {counts['removed']}",
    ]
    episode_header = ["kind", "entity", "peak", "first warning+", "accounts", "alert_id"]
    if result["added"]:
        out += ["", f"added (in B only): {counts['added']}"]
        out += _table(episode_header, _episode_rows(result["added"]))
    if result["removed"]:
        out += ["", f"removed (in A only): {counts['removed']}"]
        out += _table(episode_header, _episode_rows(result["removed"]))

    def section(name: str, title: str, header: list[str], row) -> None:
        pairs = [m for m in result["matched"] if name in m["changes"]]
        if pairs:
            out.extend(["", f"{title}: {len(pairs)}"])
            out.extend(_table(["kind", "entity (B)", *header],
                              [[_clean(m["b"]["kind"]), _entity(m["b"]),
                                *row(m["changes"][name], m)] for m in pairs]))

    section("renamed", "renamed (matched by accounts or id)",
            ["entity (A)", "alert_id A -> B", "jaccard"],
            lambda c, m: [_clean(c["a"]["entity"]),
                          _clean(f"{c['a']['alert_id']} -> {c['b']['alert_id']}"),
                          f"{m['jaccard']:.2f}"])
    section("severity", "changed peak severity", ["A", "B"],
            lambda c, m: [c["a"], c["b"]])
    section("time_to_detect", "changed time to detect (first warning+ detected_at)",
            ["A", "B", "B-A min"],
            lambda c, m: [c["a"] or "never", c["b"] or "never", _minutes(c["delta_min"])])
    section("accounts", "changed accounts", ["total A", "total B", "added", "removed"],
            lambda c, m: [f"{c['total_a']:,}", f"{c['total_b']:,}", f"+{c['added']:,}",
                          f"-{c['removed']:,}"])
    section("status", "changed final status", ["A", "B"], lambda c, m: [c["a"], c["b"]])
    out += ["", "EQUIVALENT" if result["equivalent"] else "DIFFERENT"]
    return "\n".join(out) + "\n"


def format_alert_line(record: Mapping[str, Any]) -> str:
    """One readable line for an alert update (fields only, control characters removed)."""
    summary = _clean(record.get("summary", ""))
    if len(summary) > SUMMARY_CHARS:
        summary = summary[: SUMMARY_CHARS - 1] + "…"
    entity = record["entity"]
    return (f"{_clean(record['detected_at'])}  {record['severity'].upper():<8} "
            f"{record['status']:<8} {_clean(record['kind']):<7} "
            f"{_clean(entity['type'])}:{_clean(entity['id'])}  score {record['score']:.2f}  "
            f"accounts {record['accounts_total']:,}  {summary}  "
            f"[{_clean(record['alert_id'])} #{record['seq']}]")


def alert_json(record: Mapping[str, Any]) -> bytes:
    """The record as JSON, restricted to alert v1 fields (in schema order)."""
    return orjson.dumps({k: record[k] for k in ALERT_FIELDS if k in record})


# ---------------------------------------------------------------- tail


def _since_ms(value: str) -> int:
    try:
        return int(round(parse_rfc3339(value) * 1000))
    except ValueError:
        raise AlertSourceError(f"--since: not an RFC 3339 timestamp with an offset: "
                               f"{value!r}") from None


def _records(consumer: Any, topic: str, *, max_records: int | None,
             idle_timeout_s: float | None, err: IO[str]) -> Iterator[dict[str, Any]]:
    """Valid alert records as they arrive; stops after ``idle_timeout_s`` with nothing new."""
    delivered = 0
    last_new = time.monotonic()
    while max_records is None or delivered < max_records:
        wait_s = 1.0
        if idle_timeout_s is not None:
            left = idle_timeout_s - (time.monotonic() - last_new)
            if left <= 0:
                return
            wait_s = min(wait_s, left)
        batch = consumer.poll(timeout_ms=max(1, int(wait_s * 1000)),
                              max_records=None if max_records is None else max_records - delivered)
        messages = [m for records in batch.values() for m in records]
        if messages:
            last_new = time.monotonic()
        messages.sort(key=lambda m: (m.timestamp, m.partition, m.offset))
        for message in messages:
            if message.value is None:
                continue
            where = f"partition {message.partition} offset {message.offset}"
            try:
                record = orjson.loads(message.value)
            except orjson.JSONDecodeError:
                print(f"skipped {topic} {where}: not JSON", file=err, flush=True)
                continue
            problem = check_alert(record)
            if problem is not None:
                print(f"skipped {topic} {where}: not an alert v1 record: {problem}",
                      file=err, flush=True)
                continue
            delivered += 1
            yield record
            if max_records is not None and delivered >= max_records:
                return


def tail(topic: str | None = None, *, settings: Settings | None = None,
         bootstrap: str | None = None, from_beginning: bool = False, since: str | None = None,
         as_json: bool = False, max_records: int | None = None,
         idle_timeout_s: float | None = None, out: IO[str] | None = None,
         err: IO[str] | None = None) -> int:
    """Print alert updates of ``topic`` (default: the alerts topic) as they arrive.

    Starts at the end of every partition, at the beginning, or at the first
    record whose timestamp is at or after ``since``. Returns the number of
    records printed. Raises :class:`AlertSourceError` when the topic or broker
    cannot be reached.
    """
    from kafka.errors import KafkaError

    out = out or sys.stdout
    err = err or sys.stderr
    chosen = _settings(settings, bootstrap)
    topic = topic or chosen.topic_alerts
    since_ms = _since_ms(since) if since is not None else None
    consumer = _consumer(chosen)
    printed = 0
    try:
        tps = _assign_all(consumer, topic)
        if from_beginning:
            consumer.seek_to_beginning(*tps)
        elif since_ms is not None:
            found = consumer.offsets_for_times({tp: since_ms for tp in tps})
            for tp in tps:
                if found.get(tp) is None:
                    consumer.seek_to_end(tp)
                else:
                    consumer.seek(tp, found[tp].offset)
        else:
            consumer.seek_to_end(*tps)
        for tp in tps:  # resolve positions now: "the end" is the end at the time of the call
            consumer.position(tp)
        for record in _records(consumer, topic, max_records=max_records,
                               idle_timeout_s=idle_timeout_s, err=err):
            line = alert_json(record).decode() if as_json else format_alert_line(record)
            out.write(line + "\n")
            out.flush()
            printed += 1
    except KafkaError as exc:
        raise AlertSourceError(
            f"{KAFKA_PREFIX}{topic}: Kafka error: {_describe(exc)}") from None
    finally:
        consumer.close(autocommit=False)
    return printed


# ---------------------------------------------------------------- command line


def _fail(command: str, exc: Exception) -> int:
    print(f"extraction-watch alerts {command}: error: {exc}", file=sys.stderr)
    return 2


def cmd_diff(args: argparse.Namespace) -> int:
    try:
        a = load_alert_set(args.a, bootstrap=args.bootstrap)
        b = load_alert_set(args.b, bootstrap=args.bootstrap)
        result = diff_alert_sets(a, b, args.jaccard, labels=(args.a, args.b))
    except (AlertSourceError, ValueError) as exc:
        return _fail("diff", exc)
    if args.json:
        sys.stdout.write(orjson.dumps(result, option=orjson.OPT_INDENT_2
                                      | orjson.OPT_SORT_KEYS).decode() + "\n")
    else:
        sys.stdout.write(format_diff(result))
    sys.stdout.flush()
    return 0 if result["equivalent"] else 1


def cmd_tail(args: argparse.Namespace) -> int:
    try:
        tail(args.topic, bootstrap=args.bootstrap, from_beginning=args.from_beginning,
             since=args.since, as_json=args.json, max_records=args.max,
             idle_timeout_s=args.timeout)
    except KeyboardInterrupt:
        return 0
    except AlertSourceError as exc:
        return _fail("tail", exc)
    return 0


def _jaccard_arg(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {raw!r}") from None
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {raw}")
    return value


def _positive(kind: type) -> Any:
    def parse(raw: str) -> Any:
        try:
            value = kind(raw)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a {kind.__name__}: {raw!r}") from None
        if not value > 0 or (isinstance(value, float) and not math.isfinite(value)):
            raise argparse.ArgumentTypeError(f"must be > 0, got {raw}")
        return value
    return parse


def register(subparsers: Any) -> None:
    """Add ``alerts diff`` and ``alerts tail`` to the ``extraction-watch`` command line."""
    alerts = subparsers.add_parser("alerts", help="compare alert sets, follow the alerts topic")
    sub = alerts.add_subparsers(dest="alerts_command", required=True)

    diff = sub.add_parser(
        "diff", help="compare two alert sets (exit 0 equivalent, 1 different, 2 bad input)",
        description="Compare two alert sets by kind and entity (cluster renames matched by "
                    "their accounts): added, removed, changed peak severity, time to detect, "
                    "accounts, final status. Exit 0 when equivalent, 1 when they differ, "
                    "2 on bad input.")
    diff.add_argument("a", metavar="A", help="alert JSONL file, or kafka:TOPIC")
    diff.add_argument("b", metavar="B", help="alert JSONL file, or kafka:TOPIC")
    diff.add_argument("--json", action="store_true", help="print the result as JSON")
    diff.add_argument("--jaccard", type=_jaccard_arg, default=DEFAULT_JACCARD, metavar="J",
                      help="match renamed alerts whose account sets have a Jaccard index "
                           f">= J (default {DEFAULT_JACCARD})")
    diff.add_argument("--bootstrap", default=None, metavar="HOST:PORT",
                      help="Kafka bootstrap servers (default EXW_KAFKA_BOOTSTRAP)")
    diff.set_defaults(func=cmd_diff)

    tl = sub.add_parser("tail", help="follow the alerts topic, one line per update",
                        description="Follow the alerts topic (no consumer group), from its end "
                                    "unless told otherwise. Ctrl-C exits with code 0.")
    tl.add_argument("--bootstrap", default=None, metavar="HOST:PORT",
                    help="Kafka bootstrap servers (default EXW_KAFKA_BOOTSTRAP)")
    tl.add_argument("--topic", default=None, help="topic (default EXW_TOPIC_ALERTS, 'alerts')")
    start = tl.add_mutually_exclusive_group()
    start.add_argument("--from-beginning", action="store_true",
                       help="start at the beginning of every partition")
    start.add_argument("--since", default=None, metavar="RFC3339",
                       help="start at the first record whose timestamp is at or after this")
    tl.add_argument("--json", action="store_true", help="print each record as JSON")
    tl.add_argument("--max", type=_positive(int), default=None, metavar="N",
                    help="stop after N records")
    tl.add_argument("--timeout", type=_positive(float), default=None, metavar="S",
                    help="stop after S seconds with nothing new")
    tl.set_defaults(func=cmd_tail)
