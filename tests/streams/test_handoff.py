"""The two pipeline stages without Kafka: validator -> hand-off records -> reducer;
checkpoints, their format and what happens to one this release cannot use."""

from __future__ import annotations

import copyreg
import io
import operator
import os
import pickle
import re
import subprocess
import sys
import zlib

import msgspec
import orjson
import pytest

from extraction_watch.simulator import simulate
from models import engine as engine_module
from models.contract import ApiCall, decode_api_call
from models.engine import Engine
from streams.handoff import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_LAYOUT,
    DISCARD_REASONS,
    REDUCER_FIELDS,
    EventBatch,
    Forwarded,
    HandoffCall,
    Reducer,
    Validator,
    checkpoint_format,
    join_blob,
    read_checkpoint,
    split_blob,
)


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim")
    simulate("small", 4, out, hours=10.0)
    return (out / "events.jsonl").read_bytes().splitlines(), \
        (out / "releases.jsonl").read_bytes().splitlines()


def _file_alerts(events, releases):
    engine = Engine()
    for line in releases:
        engine.add_release(line)
    out = [rec for line in events for kind, rec in engine.process(line) if kind == "alert"]
    return out + [rec for kind, rec in engine.flush() if kind == "alert"]


def _handoff_records(events, partitions=3, batch=250, forwarded=None):
    """What stage 1 would forward: per-partition batches, bad lines dead-lettered (each
    batch also held in ``forwarded``, as the worker's stage 1 holds it for its reducer)."""
    lanes: list[list[tuple[int, bytes]]] = [[] for _ in range(partitions)]
    for line in events:
        try:
            key = str(orjson.loads(line).get("account_id", ""))
        except (orjson.JSONDecodeError, AttributeError):
            key = ""
        lane = lanes[zlib.crc32(key.encode()) % partitions]
        lane.append((len(lane), line))
    validator = Validator("calls")
    records, dead = [Validator.partitions_record(partitions)], []
    cursors = [0] * partitions
    while any(cursors[p] < len(lanes[p]) for p in range(partitions)):
        for p in range(partitions):
            chunk = lanes[p][cursors[p]:cursors[p] + batch]
            if not chunk:
                continue
            cursors[p] += len(chunk)
            offsets, calls, bad = validator.validate(p, chunk)
            dead.extend(bad)
            records.append(Validator.batch_record(p, offsets, calls, len(lanes[p])))
            if forwarded is not None:
                forwarded.remember(records[-1], p, offsets, calls, len(lanes[p]))
    return records, dead


def test_stages_give_the_file_replay_alerts_and_skip_re_forwarded_records(sim):
    events, releases = sim
    records, dead = _handoff_records(events)
    assert dead and all(rec["source"]["topic"] == "calls" for _, rec in dead)
    reducer = Reducer("calls")
    for line in releases:
        reducer.engine.add_release(line)
    out: list = []
    offset = 0
    for i, value in enumerate(records):
        out.extend(reducer.apply(value, offset))
        offset += 1
        if i == len(records) // 2:
            # a stage-1 worker restarted and forwards the same batches again
            for again in records[i - 3:i + 1]:
                out.extend(reducer.apply(again, offset))
                offset += 1
    out.extend(reducer.engine.flush())
    assert reducer.skipped > 0
    assert not [rec for kind, rec in out if kind == "dead_letter"]
    assert [rec for kind, rec in out if kind == "alert"] == _file_alerts(events, releases)


def _stages_alerts(records, releases, forwarded=None):
    reducer = Reducer("calls")
    for line in releases:
        reducer.engine.add_release(line)
    out = [o for offset, value in enumerate(records)
           for o in reducer.apply(value, offset, forwarded)]
    out.extend(reducer.engine.flush())
    return [rec for kind, rec in out if kind == "alert"]


def test_whole_second_timestamps_give_the_file_replay_alerts(sim):
    """A whole-second timestamp decodes to an int epoch in the file replay and to a
    float after the hand-off: the alerts are the same."""
    events, releases = sim
    whole = [re.sub(rb'("ts":"[^"]{19})\.\d{3}Z', rb"\1Z", line) for line in events]
    assert sum(a != b for a, b in zip(whole, events, strict=True)) > len(events) // 2
    alerts = _file_alerts(whole, releases)
    assert alerts
    assert _stages_alerts(_handoff_records(whole)[0], releases) == alerts
    # and with the reducer taking stage 1's own events (int epochs, not decoded again)
    forwarded = Forwarded(limit=10**9)
    records = _handoff_records(whole, forwarded=forwarded)[0]
    assert _stages_alerts(records, releases, forwarded) == alerts
    assert forwarded.hits == len(records) - 1 and forwarded.pending == 0


@pytest.mark.parametrize("limit", [10**9, 600])
def test_batches_held_from_stage_1_give_the_file_replay_alerts(sim, limit):
    """The reducer takes the events its own stage 1 decoded (held in Forwarded) instead
    of decoding the batch again; with a small limit, the batches evicted before the
    reducer reaches them are decoded. Either way the alerts are the file replay's."""
    events, releases = sim
    forwarded = Forwarded(limit=limit)
    records, _ = _handoff_records(events, forwarded=forwarded)
    batches = len(records) - 1  # (the first record names the partition count)
    held = forwarded.pending
    if limit == 600:
        assert forwarded.evicted > 0 and held <= 600
    else:
        assert forwarded.evicted == 0 and held == sum(
            len(_decode(value).e) for value in records[1:])
    taken = []
    original = forwarded.take

    def take(value):
        got = original(value)
        taken.append(got is not None)
        return got

    forwarded.take = take
    assert _stages_alerts(records, releases, forwarded) == _file_alerts(events, releases)
    assert len(taken) == batches
    assert sum(taken) == forwarded.hits == batches - forwarded.evicted
    assert forwarded.pending == 0 and forwarded.misses == forwarded.evicted


def _decode(value):
    return msgspec.msgpack.decode(value, type=EventBatch)


def test_a_held_batch_is_used_only_for_the_very_same_record(sim):
    """A record that differs from the held one in any byte (another high watermark, an
    event changed) is decoded, not taken from what stage 1 holds."""
    events, _ = sim
    validator = Validator("calls")
    offsets, calls, _ = validator.validate(0, list(enumerate(events[:300])))
    value = Validator.batch_record(0, offsets, calls, 1000)
    forwarded = Forwarded()
    forwarded.remember(value, 0, offsets, calls, 1000)
    other_hw = Validator.batch_record(0, offsets, calls, 1001)
    changed = Validator.batch_record(
        0, offsets, [msgspec.structs.replace(calls[0], input_tokens=calls[0].input_tokens + 1),
                     *calls[1:]], 1000)
    assert len(changed) == len(value) and changed[-48:] == value[-48:]  # same key, other bytes
    for different in (other_hw, changed):
        reducer = Reducer("calls")
        reducer.apply(different, 0, forwarded)
        assert forwarded.hits == 0 and forwarded.pending == len(calls)
    assert forwarded.misses == 2
    reducer = Reducer("calls")
    reducer.apply(value, 0, forwarded)
    assert forwarded.hits == 1 and forwarded.pending == 0
    # the reducer holds stage 1's very objects (and so its shared strings)
    assert reducer.engine.buffered_events() + reducer.engine.applied_events() == len(calls)
    buffered = reducer.engine._buffer
    assert buffered and {id(ev) for ev in buffered} <= {id(ev) for ev in calls}


def test_batches_written_by_an_older_release_are_still_applied(sim):
    """Event batches in the JSON compact form an older release forwarded: an upgraded
    worker that rebuilds its state from the hand-off topic reads them as before."""
    events, releases = sim
    records, _ = _handoff_records(events)

    def older(value: bytes) -> bytes:
        if value[:1] == b"{":
            return value
        batch = msgspec.msgpack.decode(value, type=EventBatch)
        return orjson.dumps({"k": "ev", "p": batch.p, "o": batch.o, "hw": batch.hw,
                             "e": [call.to_compact() for call in batch.e]})

    old = [older(value) for value in records]
    assert sum(value[:1] == b"{" for value in records) < len(records) // 2
    assert all(value[:1] == b"{" for value in old)
    mixed = old[:len(old) // 2] + records[len(records) // 2:]
    assert _stages_alerts(mixed, releases) == _file_alerts(events, releases)


def test_no_raw_text_reaches_the_hand_off_topic():
    line = (b'{"v": 1, "event_id": "e", "ts": "2026-03-06T12:00:05Z", "account_id": "a",'
            b' "access_path": "api", "client_ip": "10.0.0.1", "model": "m", "features": [],'
            b' "input_tokens": 1, "output_tokens": 2, "status": 200, "prompt": "SECRET-P",'
            b' "completion": "SECRET-C", "prompt_simhash": "00000000000000ff"}')
    validator = Validator("calls")
    offsets, calls, dead = validator.validate(0, [(7, line)])
    assert offsets == [7] and not dead and validator.raw_text_dropped == 2
    record = Validator.batch_record(0, offsets, calls, 8)
    assert b"SECRET" not in record
    reducer = Reducer("calls")
    assert reducer.apply(record, 0) == []
    engine = reducer.engine
    assert engine.buffered_events() == 1 and engine.stats.raw_text_dropped == 2
    # even an event that held text in a placeholder would not write it: they are cut off
    event = decode_api_call(line)
    leaky = msgspec.structs.replace(event, dropped_prompt=msgspec.Raw(b'"SECRET-P"'))
    assert b"SECRET" not in Validator.batch_record(0, [0], [leaky], None)


def test_a_hand_off_event_is_an_apicall_with_its_slots():
    """The compiled engine reads an event's slots at ApiCall's offsets: the hand-off
    subclass adds none and moves none (a subclass cannot move inherited slots)."""
    assert issubclass(HandoffCall, ApiCall)
    assert HandoffCall.__basicsize__ == ApiCall.__basicsize__
    assert HandoffCall.__struct_fields__ == ApiCall.__struct_fields__
    assert not set(HandoffCall.__struct_fields__) & set(vars(HandoffCall))


@pytest.mark.parametrize("held", [False, True])
def test_a_checkpoint_restored_mid_stream_gives_the_same_alerts(sim, held):
    """With or without stage 1's events held for the reducer (a checkpoint then pickles
    ApiCalls in the lateness buffer, not hand-off events)."""
    events, releases = sim
    records, _ = _handoff_records(events)

    def run(checkpoint_at=None):
        forwarded = Forwarded(limit=10**9) if held else None
        if forwarded is not None:
            _handoff_records(events, forwarded=forwarded)
        reducer = Reducer("calls")
        for line in releases:
            reducer.engine.add_release(line)
        out = []
        for offset, value in enumerate(records):
            if offset == checkpoint_at:
                chunks, manifest = split_blob(reducer.snapshot(), 7, chunk_bytes=50_000)
                assert len(chunks) > 1
                assert orjson.loads(manifest[1])["format"] == CHECKPOINT_FORMAT
                # the worker's path: the live records of the checkpoints topic
                loaded = read_checkpoint(dict([*chunks, manifest]))
                assert loaded.discarded is None and loaded.generation == 7
                assert loaded.chunk_keys == sorted(key for key, _ in chunks)
                assert loaded.reducer is not None and loaded.reducer is not reducer
                assert loaded.reducer.handoff_next == reducer.handoff_next == offset
                reducer = loaded.reducer
            out.extend(reducer.apply(value, offset, forwarded))
            # a repeated hand-off record is ignored
            out.extend(reducer.apply(value, offset, forwarded))
        out.extend(reducer.engine.flush())
        if forwarded is not None:
            assert forwarded.hits == len(records) - 1 and forwarded.pending == 0
            assert forwarded.misses == 0  # the repeated records were not counted as decoded
        return [rec for kind, rec in out if kind == "alert"]

    assert run(len(records) // 2) == run()
    if held:
        assert run() == _file_alerts(events, releases)


def test_a_corrupt_checkpoint_is_refused():
    chunks, manifest = split_blob(b"state" * 1000, 1, chunk_bytes=100)
    meta = orjson.loads(manifest[1])
    broken = dict(chunks)
    broken[b"chunk-1-3"] = b"x" * 100
    with pytest.raises(ValueError, match="corrupt"):
        join_blob(meta, broken)
    del broken[b"chunk-1-3"]
    with pytest.raises(ValueError, match="misses chunk 3"):
        join_blob(meta, broken)


# ------------------------------------------------------------ checkpoint formats

@pytest.fixture(scope="module")
def mid_stream(sim):
    """A reducer a third of the way through the stream (real state to checkpoint)."""
    events, _ = sim
    records, _ = _handoff_records(events)
    reducer = Reducer("calls")
    for offset, value in enumerate(records[:len(records) // 3]):
        reducer.apply(value, offset)
    assert reducer.engine.applied_events() > 1000
    return reducer


def _topic(blob: bytes, generation: int = 12, edit: dict | None = None) -> dict[bytes, bytes]:
    """The live records of a checkpoints topic holding ``blob`` as one generation
    (several chunks); ``edit`` changes manifest fields (None removes one)."""
    chunks, (key, value) = split_blob(blob, generation, chunk_bytes=max(1, len(blob) // 3))
    assert len(chunks) >= 3
    manifest = orjson.loads(value)
    for name, change in (edit or {}).items():
        if change is None:
            manifest.pop(name)
        else:
            manifest[name] = change
    return dict([*chunks, (key, orjson.dumps(manifest))])


def _reblob(raw: bytes) -> bytes:
    return zlib.compress(raw, 1)


class _RaisesWithState:
    """Unpickles by looking up an account id in an empty dict: a KeyError quoting it."""

    def __reduce__(self):
        return operator.getitem, ({}, "acct-secret-4711")


def _older_layout_blob(reducer: Reducer) -> bytes:
    """The reducer pickled as a release without ``Engine._gone_owners`` wrote it (one
    field fewer in the engine's positional tuple), but under this release's format: a
    layout change nobody bumped the format for."""
    fields = engine_module._FIELDS[:-1]
    assert engine_module._FIELDS[-1] == "_gone_owners"
    out = io.BytesIO()
    pickler = pickle.Pickler(out, protocol=pickle.HIGHEST_PROTOCOL)
    pickler.dispatch_table = copyreg.dispatch_table.copy()
    pickler.dispatch_table[type(reducer.engine)] = lambda e: (
        engine_module._restore_engine, (type(e), tuple(getattr(e, n) for n in fields)))
    pickler.dump({"format": CHECKPOINT_FORMAT, "reducer": reducer})
    return _reblob(out.getvalue())


def test_a_snapshot_is_compressed_as_it_is_pickled(mid_stream):
    # the forked checkpoint child writes it into its pipe piece by piece, never whole;
    # the bytes are those of compressing the whole pickle at once (the format is unchanged)
    class Recorder:
        def __init__(self) -> None:
            self.writes: list[bytes] = []

        def write(self, data: bytes) -> int:
            self.writes.append(bytes(data))
            return len(data)

    sink = Recorder()
    mid_stream.write_snapshot(sink)
    blob = b"".join(sink.writes)
    whole = pickle.dumps({"format": CHECKPOINT_FORMAT, "reducer": mid_stream},
                         protocol=pickle.HIGHEST_PROTOCOL)
    assert blob == zlib.compress(whole, 1) == mid_stream.snapshot()
    assert len(sink.writes) > 3 and max(map(len, sink.writes)) < len(blob) / 2
    assert Reducer.restore(blob).engine.applied_events() == mid_stream.engine.applied_events()


def test_a_checkpoint_this_release_cannot_use_is_discarded_with_its_reason(mid_stream):
    good = mid_stream.snapshot()
    # every case below restores fine but for the one thing changed
    assert read_checkpoint(_topic(good)).reducer is not None
    older = _older_layout_blob(mid_stream)
    with pytest.raises(ValueError):  # what crash-looped the worker
        Reducer.restore(older)
    cases = {
        "no format (a release before formats)": (
            _topic(good, edit={"format": None}), "no_format",
            f"checkpoint generation 12 has no format (written before checkpoint formats), "
            f"this release reads {CHECKPOINT_FORMAT}"),
        "another release's format": (
            _topic(good, edit={"format": "1-0123456789ab"}), "other_format",
            f"checkpoint generation 12 has format '1-0123456789ab', this release reads "
            f"{CHECKPOINT_FORMAT}"),
        "a chunk missing": (
            {k: v for k, v in _topic(good).items() if k != b"chunk-12-1"}, "unreadable",
            "checkpoint generation 12 does not restore: checkpoint generation 12 misses "
            "chunk 1"),
        "a chunk truncated": (
            {k: (v[:-10] if k == b"chunk-12-2" else v) for k, v in _topic(good).items()},
            "unreadable", "checkpoint generation 12 does not restore: checkpoint generation "
            "12 is corrupt (sha256 mismatch)"),
        "not zlib": (_topic(b"not a compressed pickle" * 10), "unreadable",
                     "checkpoint generation 12 does not restore (zlib.error)"),
        "not a pickle": (_topic(_reblob(b"\x99 not a pickle" * 10)), "unreadable",
                         "checkpoint generation 12 does not restore (_pickle.UnpicklingError)"),
        "an older engine layout under this format": (
            _topic(older), "unreadable", "checkpoint generation 12 does not restore (ValueError)"),
        "unpickling fails quoting state": (
            _topic(_reblob(pickle.dumps({"format": CHECKPOINT_FORMAT,
                                         "reducer": _RaisesWithState()}))),
            "unreadable", "checkpoint generation 12 does not restore (KeyError)"),
        "a blob of another format inside": (
            _topic(_reblob(pickle.dumps({"format": 1, "reducer": None}))), "unreadable",
            f"checkpoint generation 12 does not restore: the blob has format 1, this release "
            f"reads {CHECKPOINT_FORMAT}"),
        "a manifest that is not JSON": (
            {**_topic(good), b"manifest": b"{not json"}, "bad_manifest",
            "the checkpoint manifest is not JSON"),
        "a manifest without a generation": (
            _topic(good, edit={"generation": "twelve"}), "bad_manifest",
            "the checkpoint manifest names no generation ('twelve')"),
    }
    for name, (values, reason, message) in cases.items():
        loaded = read_checkpoint(values)
        assert loaded.reducer is None, name
        assert (loaded.reason, loaded.discarded) == (reason, message), name
        assert reason in DISCARD_REASONS
        assert "acct-" not in loaded.discarded, name  # no state in the log line
        # the next save goes above this generation and tombstones every chunk there
        assert loaded.generation == 12, name
        assert loaded.chunk_keys == sorted(k for k in values if k.startswith(b"chunk-")), name


def test_the_next_generation_goes_above_every_generation_in_the_topic(mid_stream):
    values = _topic(mid_stream.snapshot(), generation=3)
    # chunks of a save that crashed before its manifest, and another checkpoint's leftovers
    values[b"chunk-9-0"] = b"orphan"
    values[b"chunk-1-4"] = b"leftover"
    loaded = read_checkpoint(values)
    assert loaded.discarded is None and loaded.reducer is not None
    assert loaded.reducer.handoff_next == mid_stream.handoff_next
    assert loaded.generation == 9
    assert b"chunk-9-0" in loaded.chunk_keys and b"chunk-1-4" in loaded.chunk_keys
    assert b"chunk-3-0" in loaded.chunk_keys
    # no manifest at all: nothing to use, nothing discarded, generation from the chunks
    del values[b"manifest"]
    empty = read_checkpoint(values)
    assert (empty.reducer, empty.discarded, empty.generation) == (None, None, 9)
    assert read_checkpoint({}).generation == 0


def test_the_format_names_the_pickled_layout():
    fields = (engine_module._FIELDS, ("a", "b"), ("c",), REDUCER_FIELDS)
    base = checkpoint_format(field_lists=fields)
    assert base == checkpoint_format(field_lists=fields)  # stable
    assert base.startswith(f"{CHECKPOINT_LAYOUT}-")
    changed = [
        checkpoint_format(layout=CHECKPOINT_LAYOUT + 1, field_lists=fields),
        checkpoint_format(detector_version="extraction-watch/9.9.9", field_lists=fields),
        checkpoint_format(river_version="0.0.1", field_lists=fields),
        checkpoint_format(field_lists=(engine_module._FIELDS[:-1], *fields[1:])),  # a field gone
        checkpoint_format(field_lists=(fields[0], ("b", "a"), *fields[2:])),  # reordered
        checkpoint_format(field_lists=(fields[0], ("a", "b2"), *fields[2:])),  # renamed
    ]
    assert base not in changed and len(set(changed)) == len(changed)
    assert CHECKPOINT_FORMAT == checkpoint_format()
    # the reducer pickles its __dict__: the list hashed into the format is all of it
    assert tuple(vars(Reducer("calls"))) == REDUCER_FIELDS


def test_both_builds_read_the_same_format():
    """A checkpoint moves between the compiled and the pure-Python build
    (tests/test_native.py), so both must name the same format."""
    code = "from streams.handoff import CHECKPOINT_FORMAT; print(CHECKPOINT_FORMAT)"
    env = dict(os.environ, EXW_PURE_PYTHON="1")
    pure = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, check=True, cwd=os.getcwd()).stdout.strip()
    assert pure == CHECKPOINT_FORMAT


def test_an_engine_dead_letter_names_its_source_record(sim):
    """A duplicate found by the engine behind the hand-off names the events topic's
    record it came from, as stage 1's own dead letters do."""
    events, _ = sim
    validator = Validator("calls")
    lines = [line for line in events[:400] if validator.validate(0, [(0, line)])[0]][:50]
    records = list(enumerate(lines)) + [(len(lines), lines[10]), (len(lines) + 1, lines[20])]
    offsets, calls, dead = validator.validate(2, records)
    assert not dead and len(offsets) == len(lines) + 2
    reducer = Reducer("calls")
    out = reducer.apply(Validator.batch_record(2, offsets, calls, None), 0)
    assert [(kind, rec["reason"], rec["source"]) for kind, rec in out] == [
        ("dead_letter", "duplicate", {"topic": "calls", "partition": 2, "offset": offset})
        for offset in (len(lines), len(lines) + 1)]
