"""The pipeline's two stages and what passes between them, with no Kafka in sight.

Stage 1 (``Validator``, parallel, one per assigned partition of the events
topic): decodes and validates each api_call record, turns bad ones into dead
letters at once, and forwards valid events (msgpack), batched per
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
hand-off position) pickles into a checkpoint. The checkpoint's manifest names
its format (:data:`CHECKPOINT_FORMAT`); :func:`read_checkpoint` uses a
checkpoint only when that format is this release's and the blob restores, and
otherwise says why it discarded it, so that the worker rebuilds its state from
the hand-off topic instead of failing on every start.

Hand-off records:

* an event batch, in msgpack (:class:`EventBatch`): the array ``["ev", P,
  [offsets], [events], H]``, the valid events of source partition ``P`` in
  offset order, each an array of the decoded event's fields in declaration
  order (:class:`HandoffCall`), and ``H`` the partition's high watermark when
  the batch was sent (caught up when the last offset + 1 >= H). msgspec
  writes and reads it in one C call each, with no second validation and no
  timestamp parsing. The fields an event has for raw text are never written
  (they are cut off the end of each array), so no raw text can reach the
  topic whatever an event holds;
* the others in JSON (orjson), so a record's first byte tells its encoding:
* ``{"k": "ev", "p": P, "o": [offsets], "e": [compact events], "hw": H}``:
  an event batch as releases before the msgpack one wrote it
  (:meth:`models.contract.ApiCall.to_compact`): still read, so that an
  upgraded worker rebuilds its state from the records an older one left;
* ``{"k": "idle", "p": P, "next": N}``: partition ``P`` has nothing beyond ``N``;
* ``{"k": "rel", "p": P, "o": O, "v": "<model_release JSON>"}``: a model release;
* ``{"k": "parts", "n": N}``: the events topic has ``N`` partitions.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import re
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import msgspec
import orjson
import river

from models import account as _account
from models import aggregate as _aggregate
from models import engine as _engine
from models.contract import ApiCall, ContractError, dead_letter, format_rfc3339
from models.engine import DETECTOR_VERSION, Engine, EngineConfig
from models.wire import decode as decode_event  # decode_api_call without its interpreted frame

__all__ = ["Validator", "Reducer", "Forwarded", "HandoffCall", "EventBatch", "alert_headers",
           "dead_letter_headers", "split_blob", "join_blob", "read_checkpoint",
           "checkpoint_format", "CheckpointError", "LoadedCheckpoint", "CHECKPOINT_FORMAT",
           "CHECKPOINT_LAYOUT", "DISCARD_REASONS", "REDUCER_FIELDS", "placeholders_empty"]

# What a Reducer pickles (its __dict__; tests/streams/test_handoff.py keeps the
# list in step with the class).
REDUCER_FIELDS = ("engine", "events_topic", "src_next", "release_next", "handoff_next",
                  "skipped")

# The checkpoint layout number. Bump it whenever the pickled state changes in a way the
# lists hashed by checkpoint_format() do not show: a class's own __reduce__ tuple (e.g.
# models.templates.TemplateIndex), a field's type or meaning, what snapshot() wraps.
# 1: the releases before the manifest named a format (never written with a "format").
# 2: the first with a format. 3: a template pickles through its own __reduce__.
CHECKPOINT_LAYOUT = 3


def checkpoint_format(layout: int = CHECKPOINT_LAYOUT, detector_version: str = DETECTOR_VERSION,
                      field_lists: Sequence[Sequence[str]] | None = None,
                      river_version: str = river.__version__) -> str:
    """``<layout>-<12 hex digits>``: a digest of everything the pickled layout depends on.

    The layout number, the detector version, the River release (its detectors and trees
    are pickled as they are) and the field lists of the state classes that pickle
    positionally (a tuple in field order: a renamed or reordered field would otherwise
    load its neighbour's value). The same in the compiled and the pure-Python build.

    >>> fmt = checkpoint_format()
    >>> fmt.startswith(f"{CHECKPOINT_LAYOUT}-") and len(fmt) == len(str(CHECKPOINT_LAYOUT)) + 13
    True
    >>> checkpoint_format(layout=CHECKPOINT_LAYOUT + 1) == fmt
    False
    """
    if field_lists is None:
        field_lists = (_engine._FIELDS, _account._FIELDS, _aggregate._FIELDS, REDUCER_FIELDS)
    text = "\n".join([str(layout), detector_version, river_version,
                      *(",".join(names) for names in field_lists)])
    return f"{layout}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"


CHECKPOINT_FORMAT = checkpoint_format()
# metric label of each reason a checkpoint is discarded (exw_checkpoints_discarded_total)
DISCARD_REASONS = ("bad_manifest", "no_format", "other_format", "unreadable")
_dumps = orjson.dumps
_loads = orjson.loads


class HandoffCall(ApiCall, array_like=True):
    """An :class:`~models.contract.ApiCall` as an event batch carries it: an array
    of its fields in declaration order, the raw-text placeholders left out.

    Its instances are ApiCalls (a subclass with the same fields and slots, so the
    compiled engine reads them as it reads any event); only the encoding differs.
    """


# fields written per event: every field but the raw-text placeholders, which come last
_RAW_PLACEHOLDERS = tuple(f for f in ApiCall.__struct_fields__ if f.startswith("dropped_"))
_HANDOFF_FIELDS = len(ApiCall.__struct_fields__) - len(_RAW_PLACEHOLDERS)
if ApiCall.__struct_fields__[_HANDOFF_FIELDS:] != _RAW_PLACEHOLDERS:  # pragma: no cover
    raise ImportError("ApiCall's raw-text placeholders are no longer its last fields: "
                      "streams.handoff cuts them off the end of each event")
_astuple = msgspec.structs.astuple


def placeholders_empty(events: Iterable[ApiCall]) -> bool:
    """True when none of ``events`` that dropped raw-text fields holds anything in a
    raw-text placeholder: then a batch record of them says all they do.

    The decoder never puts text there (a payload with raw-text keys is built by the
    reference decoder, which leaves the placeholders empty); this checks it rather
    than trusts it, for the few events that dropped any.

    >>> from models.contract import decode_api_call
    >>> event = decode_api_call({"v": 1, "event_id": "e", "ts": "2026-03-06T12:00:05Z",
    ...     "account_id": "a", "access_path": "api", "client_ip": "10.0.0.1", "model": "m",
    ...     "features": [], "input_tokens": 1, "output_tokens": 2, "status": 200,
    ...     "prompt": "hidden"})
    >>> event.raw_text_dropped, placeholders_empty([event])
    (1, True)
    >>> placeholders_empty([msgspec.structs.replace(event, dropped_prompt=msgspec.Raw(b'"x"'))])
    False
    """
    for event in events:
        if event.raw_text_dropped:
            for name in _RAW_PLACEHOLDERS:
                if len(getattr(event, name)):
                    return False
    return True


class EventBatch(msgspec.Struct, array_like=True, tag="ev", gc=False):
    """An event-batch record (see the module's docstring)."""

    p: int
    o: list[int]
    e: list[HandoffCall]
    hw: int | None


_encode_batch = msgspec.msgpack.Encoder().encode
_decode_batch = msgspec.msgpack.Decoder(EventBatch).decode


class Validator:
    """Stage 1 for one worker: raw records in, hand-off batches and dead letters out."""

    def __init__(self, topic: str) -> None:
        self.topic = topic
        self.received = 0
        self.dead = 0
        self.raw_text_dropped = 0

    def validate(self, partition: int, records: Iterable[tuple[int, bytes | None]]
                 ) -> tuple[list[int], list[ApiCall], list[tuple[int, dict]]]:
        """Validate ``(offset, value)`` records of one partition, in offset order:
        the offsets of the valid ones, those events, and the dead letters with
        their offsets."""
        offsets: list[int] = []
        events: list[ApiCall] = []
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
            events.append(event)
        return offsets, events, dead

    @staticmethod
    def batch_record(partition: int, offsets: list[int], events: Sequence[ApiCall],
                     highwater: int | None) -> bytes:
        """An event-batch record of :meth:`validate`'s offsets and events."""
        n = _HANDOFF_FIELDS
        astuple = _astuple
        # each event's fields but the raw-text placeholders (cut off, whatever they hold)
        return _encode_batch(("ev", partition, offsets, [astuple(e)[:n] for e in events],
                              highwater))

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


class Forwarded:
    """Event batches this worker forwarded, held until its own reducer reads them back.

    A worker that runs both stages need not decode its own events twice: when a
    hand-off record the reducer reads is, byte for byte, one that stage 1 sent
    from this process, the reducer takes the events stage 1 decoded
    (:meth:`take`) instead of decoding the msgpack again. They are the events
    the record holds (the record was written from them), and they keep stage
    1's shared strings, whose hashes the engine's dicts have already met. Any
    other record (another worker's, one read again after a restore, one
    evicted) is decoded as before, so what the engine sees never depends on
    this: the file replay, the reducer with and without it give the same
    alerts (tests/streams/test_handoff.py).

    Bounded: at most ``limit`` events are held; the oldest batches go first. The
    worker holds a batch whose payloads carried raw-text fields too (the decoder
    keeps none of that text, and the counts of dropped fields travel in the
    record), but not one whose events hold anything in a raw-text placeholder
    (:func:`placeholders_empty`): the hand-off cuts placeholders off, so the
    engine would see what the record does not say. Events
    whose timestamps have whole seconds keep an int epoch here where the
    hand-off gives a float, as in the file replay; the alerts are the same.

    >>> sent = Forwarded(limit=3)
    >>> sent.remember(b"batch-1", 0, [0, 1], ["e0", "e1"], 2)
    >>> sent.remember(b"batch-2", 1, [5], ["e5"], None)
    >>> sent.pending, sent.take(b"batch-1"), sent.pending
    (3, (0, [0, 1], ['e0', 'e1'], 2), 1)
    >>> sent.take(b"batch-1"), sent.take(b"batch-3"), (sent.hits, sent.misses)
    (None, None, (1, 2))
    >>> sent.remember(b"batch-4", 2, [0, 1, 2], ["a", "b", "c"], None)
    >>> sent.pending, sent.evicted, sent.take(b"batch-2")
    (3, 1, None)
    """

    # a record's length and last bytes find its entry (no hash over the whole record);
    # the whole record is then compared
    _TAIL = 48

    def __init__(self, limit: int = 32_768) -> None:
        self.limit = limit
        self.pending = 0    # events held
        self.hits = 0       # batches taken
        self.misses = 0     # msgpack batches read that were not held
        self.evicted = 0    # batches dropped unread (the oldest, past the limit)
        self._held: dict[tuple[int, bytes], tuple[bytes, int, list[int], list, int | None]] = {}

    def remember(self, value: bytes, partition: int, offsets: list[int], events: list,
                 highwater: int | None) -> None:
        """Hold ``events``, just sent in the batch record ``value``."""
        held = self._held
        key = (len(value), value[-self._TAIL:])
        old = held.pop(key, None)
        if old is not None:
            self.pending -= len(old[3])
        held[key] = (value, partition, offsets, events, highwater)
        self.pending += len(events)
        while self.pending > self.limit and held:
            oldest = held.pop(next(iter(held)))
            self.pending -= len(oldest[3])
            self.evicted += 1

    def clear(self) -> None:
        """Hold nothing (the reducer read none of what is held for a while)."""
        self.evicted += len(self._held)
        self._held.clear()
        self.pending = 0

    def take(self, value: bytes) -> tuple[int, list[int], list, int | None] | None:
        """The partition, offsets, events and high watermark of the batch record
        ``value`` if it is held (and no longer held after this), else None."""
        entry = self.forget(value)
        if entry is None:
            self.misses += 1
            return None
        self.hits += 1
        return entry[1], entry[2], entry[3], entry[4]

    def forget(self, value: bytes) -> tuple | None:
        """Stop holding the batch record ``value`` (one applied already), uncounted;
        its entry, or None if it was not held."""
        key = (len(value), value[-self._TAIL:])
        entry = self._held.get(key)
        if entry is None or entry[0] != value:
            return None
        del self._held[key]
        self.pending -= len(entry[3])
        return entry


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

    def apply(self, value: bytes, offset: int, forwarded: Forwarded | None = None) -> list:
        """The engine's outputs for the hand-off record ``value`` at ``offset``; an
        event batch held in ``forwarded`` (this process sent it) is not decoded."""
        if offset < self.handoff_next:
            if forwarded is not None:
                forwarded.forget(value)  # applied already: not held any longer
            return []
        self.handoff_next = offset + 1
        if value[:1] != b"{":
            held = forwarded.take(value) if forwarded is not None else None
            if held is not None:
                return self.apply_events(*held)
            batch = _decode_batch(value)
            return self.apply_events(batch.p, batch.o, batch.e, batch.hw)
        record = _loads(value)
        kind = record.get("k")
        out: list = []
        engine = self.engine
        if kind == "ev":  # an older release's batch
            from_compact = ApiCall.from_compact
            out = self.apply_events(record["p"], record["o"],
                                    [from_compact(c) for c in record["e"]], record.get("hw"))
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

    def apply_events(self, p: int, offsets: list[int], events: Sequence[ApiCall],
                     highwater: int | None) -> list:
        """Valid events of source partition ``p`` in offset order."""
        start = self.src_next.get(p, -1)
        if offsets and offsets[0] < start:  # re-forwarded after a stage-1 restart
            kept = [i for i, off in enumerate(offsets) if off >= start]
            self.skipped += len(offsets) - len(kept)
            batch = [events[i] for i in kept]
            batch_offsets = [offsets[i] for i in kept]
        else:
            batch = events if type(events) is list else list(events)
            batch_offsets = offsets
        out = self.engine.process_batch(batch, p, batch_offsets, self.events_topic) \
            if batch else []
        if offsets:
            self.src_next[p] = max(start, offsets[-1] + 1)
        if highwater is not None and offsets and offsets[-1] + 1 >= highwater:
            out.extend(self.engine.mark_idle(p))
        return out

    # ------------------------------------------------------------ checkpoints
    def snapshot(self) -> bytes:
        """The whole state as one compressed blob."""
        blob = io.BytesIO()
        self.write_snapshot(blob)
        return blob.getvalue()

    def write_snapshot(self, out: BinaryIO) -> None:
        """Write :meth:`snapshot` to ``out`` as it is made: the pickle is compressed
        frame by frame, never held whole (the forked checkpoint child writes it into its
        pipe this way: at the public reports' scale that spares it the whole pickle)."""
        sink = _Deflating(out)
        pickle.dump({"format": CHECKPOINT_FORMAT, "reducer": self}, sink,
                    protocol=pickle.HIGHEST_PROTOCOL)
        sink.close()

    @staticmethod
    def restore(blob: bytes) -> Reducer:
        """The reducer of a :meth:`snapshot`; raises on a blob of another format (a
        layout other than this release's can fail anywhere while unpickling)."""
        state = pickle.loads(zlib.decompress(blob))
        fmt = state.get("format") if isinstance(state, dict) else None
        if fmt != CHECKPOINT_FORMAT:
            raise CheckpointError(f"the blob has format {_shown(fmt)}, this release reads "
                                  f"{CHECKPOINT_FORMAT}")
        reducer = state["reducer"]
        if not isinstance(reducer, Reducer):
            raise CheckpointError("the blob does not hold a reducer")
        missing = [name for name in REDUCER_FIELDS if not hasattr(reducer, name)]
        if missing:
            raise CheckpointError(f"the reducer misses {', '.join(missing)}")
        return reducer


class _Deflating:
    """A file-like sink that zlib-compresses (level 1, as ``zlib.compress(raw, 1)``) what
    is written to it into ``out``."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self._deflate = zlib.compressobj(1)

    def write(self, data: bytes) -> int:
        chunk = self._deflate.compress(data)
        if chunk:
            self._out.write(chunk)
        return len(data)

    def close(self) -> None:
        self._out.write(self._deflate.flush())


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message holds no state or payload."""


def _shown(value: Any) -> str:
    """A manifest value for a log line: short, printable."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


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
    manifest = {"generation": generation, "format": CHECKPOINT_FORMAT, "chunks": len(pieces),
                "bytes": len(blob), "sha256": hashlib.sha256(blob).hexdigest()}
    return chunks, (b"manifest", _dumps(manifest))


def join_blob(manifest: dict[str, Any], chunks: Mapping[bytes, bytes]) -> bytes:
    generation = manifest["generation"]
    parts = []
    for i in range(manifest["chunks"]):
        piece = chunks.get(f"chunk-{generation}-{i}".encode())
        if piece is None:
            raise CheckpointError(f"checkpoint generation {generation} misses chunk {i}")
        parts.append(piece)
    blob = b"".join(parts)
    if hashlib.sha256(blob).hexdigest() != manifest["sha256"]:
        raise CheckpointError(f"checkpoint generation {generation} is corrupt (sha256 mismatch)")
    return blob


_CHUNK_KEY = re.compile(rb"chunk-(\d+)-\d+")


@dataclass
class LoadedCheckpoint:
    """What :func:`read_checkpoint` made of a checkpoints topic."""

    reducer: Reducer | None           # None: start from an empty state
    generation: int                   # the highest generation in the topic: save above it
    chunk_keys: list[bytes] = field(default_factory=list)  # chunk records live in the topic
    discarded: str | None = None      # why the checkpoint there was not used (for the log)
    reason: str | None = None         # ... as a metric label (DISCARD_REASONS)


def read_checkpoint(values: Mapping[bytes, bytes]) -> LoadedCheckpoint:
    """The reducer of the checkpoint in ``values`` (the live records of the checkpoints
    topic, key -> value), or why there is none to use. Never raises for what the
    topic holds: a manifest without this release's format, a missing or corrupt chunk,
    a blob that fails to unpickle give ``reducer=None`` and a ``discarded`` reason.

    ``generation`` is the highest generation named by the manifest or a chunk key, so
    the next checkpoint saved goes above whatever is there; every live chunk record is
    listed in ``chunk_keys``, for the next save to tombstone (the loaded generation's,
    a discarded one's, and the orphans of a save that crashed before its manifest).

    >>> chunks, manifest = split_blob(Reducer("calls").snapshot(), 4)
    >>> loaded = read_checkpoint(dict([*chunks, manifest]))
    >>> loaded.reducer.handoff_next, loaded.generation, loaded.discarded
    (0, 4, None)
    >>> old = dict([*chunks, (b"manifest", b'{"generation": 4, "chunks": 1}')])
    >>> print(read_checkpoint(old).discarded)  # doctest: +ELLIPSIS
    checkpoint generation 4 has no format (written before checkpoint formats), this release reads ...
    """
    chunk_keys = sorted(key for key in values if _CHUNK_KEY.fullmatch(key))
    generation = max((int(m.group(1)) for m in map(_CHUNK_KEY.fullmatch, chunk_keys) if m),
                     default=0)
    raw = values.get(b"manifest")
    if raw is None:
        return LoadedCheckpoint(None, generation, chunk_keys)

    def discard(why: str, reason: str) -> LoadedCheckpoint:
        return LoadedCheckpoint(None, generation, chunk_keys, why, reason)

    try:
        meta = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return discard("the checkpoint manifest is not JSON", "bad_manifest")
    manifest_gen = meta.get("generation") if isinstance(meta, dict) else None
    if type(manifest_gen) is not int or manifest_gen < 0:
        return discard(f"the checkpoint manifest names no generation ({_shown(manifest_gen)})",
                       "bad_manifest")
    generation = max(generation, manifest_gen)
    fmt = meta.get("format")
    if fmt is None:
        return discard(f"checkpoint generation {manifest_gen} has no format (written before "
                       f"checkpoint formats), this release reads {CHECKPOINT_FORMAT}",
                       "no_format")
    if fmt != CHECKPOINT_FORMAT:
        return discard(f"checkpoint generation {manifest_gen} has format {_shown(fmt)}, this "
                       f"release reads {CHECKPOINT_FORMAT}", "other_format")
    try:
        reducer = Reducer.restore(join_blob(meta, values))
    except CheckpointError as exc:
        return discard(f"checkpoint generation {manifest_gen} does not restore: {exc}",
                       "unreadable")
    except Exception as exc:  # noqa: BLE001 - any failure to join or unpickle discards it
        # only the exception's type: its message may quote state (account ids, keys)
        kind = type(exc)
        name = kind.__qualname__ if kind.__module__ == "builtins" else \
            f"{kind.__module__}.{kind.__qualname__}"
        return discard(f"checkpoint generation {manifest_gen} does not restore ({name})",
                       "unreadable")
    return LoadedCheckpoint(reducer, generation, chunk_keys)


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
