"""Same input, same alerts: across runs, arrival orders within the lateness bound,
and a crash-and-restart from a pickled checkpoint."""

from __future__ import annotations

import pickle
import random

import pytest

from extraction_watch.simulator import simulate
from models.engine import Engine


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim")
    simulate("small", 21, out, hours=14.0)
    events = (out / "events.jsonl").read_bytes().splitlines()
    releases = (out / "releases.jsonl").read_bytes().splitlines()
    return events, releases


def _alerts(engine: Engine, events, releases, checkpoint_at: int | None = None):
    for line in releases:
        engine.add_release(line)
    alerts = []
    for i, line in enumerate(events):
        if checkpoint_at is not None and i == checkpoint_at:
            engine = pickle.loads(pickle.dumps(engine))  # crash, restore the checkpoint
        alerts.extend(rec for kind, rec in engine.process(line) if kind == "alert")
    alerts.extend(rec for kind, rec in engine.flush() if kind == "alert")
    return alerts


def test_the_run_raises_alerts(small_run):
    alerts = _alerts(Engine(), *small_run)
    assert {a["kind"] for a in alerts} >= {"cluster"}
    assert all(a["emitted_at"] is None for a in alerts)


def test_same_input_same_alerts(small_run):
    assert _alerts(Engine(), *small_run) == _alerts(Engine(), *small_run)


def test_arrival_order_within_lateness_does_not_change_alerts(small_run):
    events, releases = small_run
    rng = random.Random(3)
    shuffled = []
    for start in range(0, len(events), 40):  # 40 lines span well under the 5 min lateness
        block = events[start:start + 40]
        rng.shuffle(block)
        shuffled.extend(block)
    assert shuffled != events
    assert _alerts(Engine(), shuffled, releases) == _alerts(Engine(), events, releases)


def test_restart_from_checkpoint_gives_the_same_alerts(small_run):
    events, releases = small_run
    baseline = _alerts(Engine(), events, releases)
    restarted = _alerts(Engine(), events, releases, checkpoint_at=len(events) // 2)
    assert restarted == baseline


def _partitioned_alerts(events, releases, partitions: int, order: str, seed: int = 0):
    """Feed events as a partitioned source would: account-keyed partitions, each
    in file order, interleaved in ``order`` ("round-robin", "one-by-one" or "random")."""
    import zlib

    import orjson

    lanes: list[list[bytes]] = [[] for _ in range(partitions)]
    for line in events:
        try:
            key = orjson.loads(line).get("account_id", "")
        except (orjson.JSONDecodeError, AttributeError):
            key = ""
        lanes[zlib.crc32(str(key).encode()) % partitions].append(line)
    engine = Engine()
    for line in releases:
        engine.add_release(line)
    out = list(engine.set_partitions(range(partitions)))
    rng = random.Random(seed)
    cursors = [0] * partitions
    live = [p for p in range(partitions) if lanes[p]]
    for p in range(partitions):
        if not lanes[p]:
            out.extend(engine.mark_idle(p))
    while live:
        if order == "one-by-one":
            p = live[0]
        elif order == "random":
            p = rng.choice(live)
        else:
            p = live[sum(cursors) % len(live)]
        out.extend(engine.process(lanes[p][cursors[p]], partition=p))
        cursors[p] += 1
        if cursors[p] == len(lanes[p]):
            live.remove(p)
            out.extend(engine.mark_idle(p))  # caught up with the partition's end
    out.extend(engine.flush())
    return [rec for kind, rec in out if kind == "alert"], engine


@pytest.mark.parametrize("order", ["round-robin", "random", "one-by-one"])
def test_partitioned_source_gives_the_file_alerts_whatever_the_interleaving(small_run, order):
    # "one-by-one" drains partition 0 before partition 1 starts: hours of skew,
    # far beyond the lateness, yet nothing is late and the alerts are the same
    events, releases = small_run
    alerts, engine = _partitioned_alerts(events, releases, 4, order, seed=5)
    assert alerts == _alerts(Engine(), events, releases)
    assert "late" not in engine.stats.dead_letters


def test_partitioned_watermark_waits_for_the_slowest_partition():
    base = '{"v":1,"event_id":"%s","ts":"2026-03-06T%s:00Z","account_id":"%s",' \
           '"access_path":"api","client_ip":"10.0.0.1","model":"m","features":[],' \
           '"input_tokens":1,"output_tokens":1,"status":200}'
    engine = Engine()
    engine.set_partitions([0, 1])
    engine.process(base % ("a1", "10:00", "a"), partition=0)
    engine.process(base % ("a2", "12:00", "a"), partition=0)
    assert engine.watermark() == float("-inf")  # partition 1 has said nothing yet
    engine.process(base % ("b1", "10:30", "b"), partition=1)
    assert engine.watermark() == engine._partition_max[1] - engine.config.lateness_s
    # 10:26 is 94 minutes behind partition 0, but only its own partition's
    # lateness counts: partition 1 is at 10:30, so 10:26 is not late there...
    out = engine.process(base % ("b0", "10:26", "b"), partition=1)
    assert out == () or all(kind != "dead_letter" for kind, _ in out)
    # ...while 10:00 is more than 5 minutes behind the watermark (10:25)
    out = engine.process(base % ("b-old", "10:00", "b"), partition=1)
    assert [rec["reason"] for kind, rec in out if kind == "dead_letter"] == ["late"]
    engine.mark_idle(1)
    assert engine.watermark() == engine._partition_max[0] - engine.config.lateness_s


def test_compact_hand_off_form_round_trips(small_run):
    import orjson

    from models.contract import ApiCall, ContractError, decode_api_call

    n = 0
    for line in small_run[0][:3000]:
        try:
            event = decode_api_call(line)
        except ContractError:
            continue
        again = ApiCall.from_compact(orjson.loads(orjson.dumps(event.to_compact())))
        assert again == event and again.to_dict() == event.to_dict()
        n += 1
    assert n > 2000
    with pytest.raises(ValueError):
        ApiCall.from_compact([1, 2, 3])


def test_batches_and_own_partition_lateness_do_not_depend_on_interleaving(small_run):
    """Events fed in per-partition batches, with some events made late within
    their own partition: the same dead letters and alerts whatever the order."""
    import zlib

    import orjson

    from models.contract import ApiCall, ContractError, decode_api_call

    events, releases = small_run
    lanes: list[list[ApiCall]] = [[], [], []]
    for line in events:
        try:
            ev = decode_api_call(line)
        except ContractError:
            continue
        lanes[zlib.crc32(ev.account_id.encode()) % 3].append(ev)
    # every 500th event of lane 1 turns up 20 minutes late in its own partition
    for i in range(500, len(lanes[1]) - 200, 500):
        lanes[1].insert(i + 150, lanes[1].pop(i))

    def run(order: str):
        engine = Engine()
        for line in releases:
            engine.add_release(line)
        out = list(engine.set_partitions(range(3)))
        cursors = [0, 0, 0]
        rng = random.Random(11)
        live = [0, 1, 2]
        while live:
            p = live[0] if order == "drain" else rng.choice(live)
            size = rng.randint(1, 400)
            batch = lanes[p][cursors[p]:cursors[p] + size]
            cursors[p] += len(batch)
            out.extend(engine.process_batch(batch, p))
            if cursors[p] >= len(lanes[p]):
                live.remove(p)
                out.extend(engine.mark_idle(p))
        out.extend(engine.flush())
        dead = sorted(rec["payload"]["event_id"] for kind, rec in out if kind == "dead_letter")
        return [rec for kind, rec in out if kind == "alert"], dead

    alerts_a, dead_a = run("drain")
    alerts_b, dead_b = run("random")
    assert dead_a and dead_a == dead_b
    assert alerts_a == alerts_b
    assert orjson.dumps(alerts_a)
