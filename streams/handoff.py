"""The pipeline's two stages and what passes between them, with no Kafka in sight.

Stage 1 (``Validator``, parallel, one per assigned partition of the events
topic): decodes and validates each api_call record, turns bad ones into dead
letters at once, and forwards valid events in a compact form, batched per
source partition, to a single-partition *hand-off* topic. It also says when a
source partition has nothing more to read (``idle``), so that a quiet
partition does not hold event time back.

Stage 2 (``Reducer``, one active instance): the engine from ``models/``
unchanged, fed from the hand-off topic with per-partition watermarks (see
:meth:`models.engine.Engine.set_partitions`). Linking accounts into clusters
is a global graph problem (a campaign spans payment methods, egress networks
and templates that hash to every partition), so detection state lives in one
place; what scales out is the reading, decoding and validation in front of it.

The reducer skips a source record it has already applied (by partition and
offset), so a stage-1 worker that crashed and re-forwards from its last
committed offset changes nothing. Its whole state (engine, source positions,
hand-off position) pickles into a checkpoint.

Hand-off records (orjson):

* ``{"k": "ev", "p": P, "o": [offsets], "e": [compact events], "hw": H}``:
  valid events of source partition ``P`` in offset order; ``hw`` is the
  partition's high watermark when the batch was sent (caught up when the
  last offset + 1 >= hw);
* ``{"k": "idle", "p": P, "next": N}``: partition ``P`` has nothing beyond ``N``;
* ``{"k": "rel", "p": P, "o": O, "v": "<model_release JSON>"}``: a model release;
* ``{"k": "parts", "n": N}``: the events topic has ``N`` partitions.
"""

from __future__ import annotations

import hashlib
import pickle
import zlib
from collections.abc import Iterable
from typing import Any

import orjson

from models.contract import ApiCall, ContractError, dead_letter, format_rfc3339
from models.engine import Engine, EngineConfig
from models.wire import decode as decode_event  # decode_api_call without its interpreted frame

__all__ = ["Validator", "Reducer", "alert_headers", "dead_letter_headers", "split_blob",
           "join_blob", "CHECKPOINT_FORMAT"]

CHECKPOINT_FORMAT = 1
_dumps = orjson.dumps
_loads = orjson.loads


class Validator:
    """Stage 1 for one worker: raw records in, hand-off batches and dead letters out."""

    def __init__(self, topic: str) -> None:
        self.topic = topic
        self.received = 0
        self.dead = 0
        self.raw_text_dropped = 0

    def validate(self, partition: int, records: Iterable[tuple[int, bytes | None]]
                 ) -> tuple[list[int], list[list[Any]], list[tuple[int, dict]]]:
        """Validate ``(offset, value)`` records of one partition, in offset order."""
        offsets: list[int] = []
        events: list[list[Any]] = []
        dead: list[tuple[int, dict]] = []
        topic = self.topic
        for offset, value in records:
            self.received += 1
            try:
                event = decode_event(value if value is not None else b"")
            except ContractError as err:
                self.dead += 1
                source = {"topic": topic, "partition": partition, "offset": offset}
                dead.append((offset, dead_letter(err.reason, err.message, source, value)))
                continue
            if event.raw_text_dropped:
                self.raw_text_dropped += event.raw_text_dropped
            offsets.append(offset)
            events.append(event.to_compact())
        return offsets, events, dead

    @staticmethod
    def batch_record(partition: int, offsets: list[int], events: list[list[Any]],
                     highwater: int | None) -> bytes:
        return _dumps({"k": "ev", "p": partition, "o": offsets, "e": events, "hw": highwater})

    @staticmethod
    def idle_record(partition: int, next_offset: int) -> bytes:
        return _dumps({"k": "idle", "p": partition, "next": next_offset})

    @staticmethod
    def release_record(partition: int, offset: int, value: bytes | None) -> bytes:
        text = (value or b"").decode("utf-8", "replace")
        return _dumps({"k": "rel", "p": partition, "o": offset, "v": text})

    @staticmethod
    def partitions_record(count: int) -> bytes:
        return _dumps({"k": "parts", "n": count})


class Reducer:
    """Stage 2: the engine behind the hand-off topic.

    ``apply(value, offset)`` returns the engine's outputs for one hand-off
    record (``(kind, record)`` pairs as :meth:`models.engine.Engine.process`).
    """

    def __init__(self, events_topic: str, config: EngineConfig | None = None) -> None:
        self.engine = Engine(config)
        self.events_topic = events_topic
        self.src_next: dict[int, int] = {}       # source partition -> next offset to apply
        self.release_next: dict[int, int] = {}
        self.handoff_next = 0                    # next hand-off offset to apply
        self.skipped = 0                         # re-forwarded records ignored

    def apply(self, value: bytes, offset: int) -> list:
        if offset < self.handoff_next:
            return []
        self.handoff_next = offset + 1
        record = _loads(value)
        kind = record.get("k")
        out: list = []
        engine = self.engine
        if kind == "ev":
            out = self.apply_events(record["p"], record["o"], record["e"], record.get("hw"))
        elif kind == "idle":
            p = record["p"]
            if record.get("next", 0) >= self.src_next.get(p, 0):
                out.extend(engine.mark_idle(p))
        elif kind == "parts":
            out.extend(engine.set_partitions(range(int(record["n"]))))
        elif kind == "rel":
            p, off = record["p"], record["o"]
            if off >= self.release_next.get(p, 0):
                self.release_next[p] = off + 1
                out.extend(engine.add_release(record["v"].encode(),
                                              {"topic": "releases", "partition": p,
                                               "offset": off}))
        return out

    def apply_events(self, p: int, offsets: list[int], events: list[list[Any]],
                     highwater: int | None) -> list:
        """Valid events of source partition ``p`` in offset order (compact form)."""
        start = self.src_next.get(p, -1)
        from_compact = ApiCall.from_compact
        topic = self.events_topic
        batch: list[ApiCall] = []
        sources: list[dict] = []
        for off, compact in zip(offsets, events, strict=True):
            if off < start:
                self.skipped += 1  # re-forwarded after a stage-1 restart
                continue
            batch.append(from_compact(compact))
            sources.append({"topic": topic, "partition": p, "offset": off})
        out = self.engine.process_batch(batch, p, sources) if batch else []
        if offsets:
            self.src_next[p] = max(start, offsets[-1] + 1)
        if highwater is not None and offsets and offsets[-1] + 1 >= highwater:
            out.extend(self.engine.mark_idle(p))
        return out

    # ------------------------------------------------------------ checkpoints
    def snapshot(self) -> bytes:
        """The whole state as one compressed blob."""
        raw = pickle.dumps({"format": CHECKPOINT_FORMAT, "reducer": self},
                           protocol=pickle.HIGHEST_PROTOCOL)
        return zlib.compress(raw, 1)

    @staticmethod
    def restore(blob: bytes) -> Reducer:
        state = pickle.loads(zlib.decompress(blob))
        if state.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"unsupported checkpoint format {state.get('format')!r}")
        reducer = state["reducer"]
        if not isinstance(reducer, Reducer):
            raise ValueError("checkpoint does not hold a reducer")
        return reducer


def split_blob(blob: bytes, generation: int, chunk_bytes: int = 900_000
               ) -> tuple[list[tuple[bytes, bytes]], tuple[bytes, bytes]]:
    """Cut a checkpoint into keyed chunks plus a manifest (written last).

    Keys carry the generation, so a crash halfway through writing a new
    checkpoint leaves the previous manifest and its chunks intact.

    >>> chunks, manifest = split_blob(b"x" * 10, 3, chunk_bytes=4)
    >>> [k for k, _ in chunks], manifest[0]
    ([b'chunk-3-0', b'chunk-3-1', b'chunk-3-2'], b'manifest')
    >>> join_blob(orjson.loads(manifest[1]), dict(chunks))
    b'xxxxxxxxxx'
    """
    pieces = [blob[i:i + chunk_bytes] for i in range(0, len(blob), chunk_bytes)] or [b""]
    chunks = [(f"chunk-{generation}-{i}".encode(), piece) for i, piece in enumerate(pieces)]
    manifest = {"generation": generation, "chunks": len(pieces), "bytes": len(blob),
                "sha256": hashlib.sha256(blob).hexdigest()}
    return chunks, (b"manifest", _dumps(manifest))


def join_blob(manifest: dict[str, Any], chunks: dict[bytes, bytes]) -> bytes:
    generation = manifest["generation"]
    parts = []
    for i in range(manifest["chunks"]):
        piece = chunks.get(f"chunk-{generation}-{i}".encode())
        if piece is None:
            raise ValueError(f"checkpoint generation {generation} misses chunk {i}")
        parts.append(piece)
    blob = b"".join(parts)
    if hashlib.sha256(blob).hexdigest() != manifest["sha256"]:
        raise ValueError(f"checkpoint generation {generation} is corrupt (sha256 mismatch)")
    return blob


def alert_headers(record: dict[str, Any], source: str) -> list[tuple[str, bytes]]:
    """CloudEvents 1.0 binary-mode headers of an alert record.

    ``ce_id`` is the alert id and seq: a record published twice (at-least-once)
    carries the same id, so consumers can drop the repeat.
    """
    return [
        ("ce_specversion", b"1.0"),
        ("ce_id", f"{record['alert_id']}:{record['seq']}".encode()),
        ("ce_type", b"dev.extraction-watch.alert.v1"),
        ("ce_source", source.encode()),
        ("ce_time", (record.get("emitted_at") or record["detected_at"]).encode()),
        ("ce_subject", f"{record['kind']}/{record['entity']['id']}".encode()),
        ("content-type", b"application/json"),
    ]


def dead_letter_headers(record: dict[str, Any]) -> list[tuple[str, bytes]]:
    return [("reason", str(record.get("reason", "")).encode()),
            ("content-type", b"application/json")]


def stamp(record: dict[str, Any], now: float) -> dict[str, Any]:
    """Set ``emitted_at`` (wall clock, the only field that differs between runs)."""
    record["emitted_at"] = format_rfc3339(now)
    return record
