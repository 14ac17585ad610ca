"""The two pipeline stages without Kafka: validator -> hand-off records -> reducer."""

from __future__ import annotations

import zlib

import orjson
import pytest

from extraction_watch.simulator import simulate
from models.engine import Engine
from streams.handoff import Reducer, Validator, join_blob, split_blob


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


def _handoff_records(events, partitions=3, batch=250):
    """What stage 1 would forward: per-partition batches, bad lines dead-lettered."""
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
            offsets, compact, bad = validator.validate(p, chunk)
            dead.extend(bad)
            records.append(Validator.batch_record(p, offsets, compact, len(lanes[p])))
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


def test_a_checkpoint_restored_mid_stream_gives_the_same_alerts(sim):
    events, releases = sim
    records, _ = _handoff_records(events)

    def run(checkpoint_at=None):
        reducer = Reducer("calls")
        for line in releases:
            reducer.engine.add_release(line)
        out = []
        for offset, value in enumerate(records):
            if offset == checkpoint_at:
                chunks, manifest = split_blob(reducer.snapshot(), 7, chunk_bytes=50_000)
                assert len(chunks) > 1
                reducer = Reducer.restore(join_blob(orjson.loads(manifest[1]), dict(chunks)))
            out.extend(reducer.apply(value, offset))
            out.extend(reducer.apply(value, offset))  # a repeated hand-off record is ignored
        out.extend(reducer.engine.flush())
        return [rec for kind, rec in out if kind == "alert"]

    assert run(len(records) // 2) == run()


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
