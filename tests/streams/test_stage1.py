"""Stage 1's batches in flight (streams.stage1): offsets move only after their batch's
records are stored, in the order the batches were fetched, and never past a batch whose
records failed. A stand-in consumer and producer; the real broker runs the same code in
tests/integration and tests/reliability."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import msgspec
import orjson
import pytest
from aiokafka import TopicPartition

from streams import stage1
from streams.config import Settings
from streams.handoff import EventBatch, Forwarded
from streams.worker import WorkerState

TOPIC = "calls"


@dataclass
class Message:
    offset: int
    value: bytes


class Consumer:
    """What Stage1.validate_batches and settle use of an AIOKafkaConsumer."""

    def __init__(self, partitions: int) -> None:
        self.held = {TopicPartition(TOPIC, p) for p in range(partitions)}
        self.commits: list[dict[int, int]] = []

    def assignment(self) -> set[TopicPartition]:
        return self.held

    def highwater(self, tp: TopicPartition) -> int:
        return 10**9

    async def commit(self, offsets: dict) -> None:
        self.commits.append({tp.partition: off for tp, off in offsets.items()})


def _event(i: int) -> bytes:
    return orjson.dumps({
        "v": 1, "event_id": f"{i:032x}", "ts": f"2026-03-06T00:{i // 60 % 60:02d}:{i % 60:02d}Z",
        "account_id": "acct_ea353697c71d", "org_id": None, "api_key_id": "key_6162050f1ef42ad3",
        "access_path": "api", "client_ip": "168.211.148.162", "asn": 4752,
        "tls_fingerprint": "t13d1812h1_710fa7a94e34_e4ae34ea0c8b", "user_agent": "sdk/1.0",
        "payment_fingerprint": None, "account_created_at": "2025-07-04T13:54:14.000Z",
        "model": "claude-sim-3", "features": [], "task": "coding",
        "prompt_simhash": "a155f7b6892b55b8", "cot_elicitation": 0.046,
        "input_tokens": 1294, "output_tokens": 310, "status": 200, "latency_ms": 56})


def _batch(partition: int, first: int, n: int = 3) -> dict:
    return {TopicPartition(TOPIC, partition): [Message(first + i, _event(first + i))
                                               for i in range(n)]}


class Producer:
    """``send`` queues a record and hands back a future the test resolves."""

    def __init__(self) -> None:
        self.futures: list[asyncio.Future] = []
        self.topics: list[str] = []
        self.values: list[bytes] = []

    async def send(self, topic, key, value, headers=None) -> asyncio.Future:
        fut = asyncio.get_running_loop().create_future()
        self.futures.append(fut)
        self.topics.append(topic)
        self.values.append(value)
        return fut


def _stage1(producer: Producer, remember: bool = False) -> stage1.Stage1:
    state = WorkerState(Settings.from_env({"EXW_TOPIC_EVENTS": TOPIC}))
    return stage1.Stage1(state, producer.send, on_clash=lambda: None, remember=remember)


async def _forwarded(batches: int) -> tuple[Producer, Consumer, stage1.Stage1]:
    """A stage 1 on one partition that forwarded ``batches`` batches, none acknowledged."""
    producer, consumer = Producer(), Consumer(1)
    s1 = _stage1(producer)
    for k in range(batches):
        await s1.validate_batches(consumer, _batch(0, 10 * k))
    return producer, consumer, s1


def test_offsets_move_in_fetch_order_once_their_records_are_stored() -> None:
    async def run() -> None:
        producer, consumer = Producer(), Consumer(2)
        s1 = _stage1(producer)
        for k in range(stage1.IN_FLIGHT):  # fetched and forwarded, none acknowledged
            await s1.validate_batches(consumer, _batch(k % 2, 10 * k))
        assert len(s1.in_flight) == stage1.IN_FLIGHT and consumer.commits == []
        assert producer.topics == [s1.handoff] * stage1.IN_FLIGHT
        # the second batch is stored first: nothing may move until the first is
        producer.futures[1].set_result(None)
        settling = asyncio.ensure_future(s1.settle(consumer))
        await asyncio.sleep(0.01)
        assert consumer.commits == [] and not settling.done()
        # one more fetch beyond the bound waits for the oldest batch too
        fetching = asyncio.ensure_future(s1.validate_batches(consumer, _batch(0, 100)))
        await asyncio.sleep(0.01)
        assert not fetching.done()
        for fut in producer.futures:
            if not fut.done():
                fut.set_result(None)
        await settling
        await fetching
        await s1.settle(consumer)
        assert consumer.commits == [{0: 3}, {1: 13}, {0: 23}, {1: 33}, {0: 103}]
        assert not s1.in_flight

    asyncio.run(run())


def test_no_offset_moves_past_a_batch_whose_records_failed() -> None:
    async def run() -> None:
        producer, consumer, s1 = await _forwarded(3)
        producer.futures[0].set_exception(ConnectionError("broker gone"))
        for fut in producer.futures[1:]:
            fut.set_result(None)  # the later batches were stored
        with pytest.raises(ConnectionError):
            await s1.settle(consumer)
        # their offsets would pass over the failed batch: dropped, read again after a restart
        assert consumer.commits == [] and not s1.in_flight

    asyncio.run(run())


def test_a_rebalance_settling_beside_the_loop_keeps_the_order() -> None:
    async def run() -> None:
        producer, consumer, s1 = await _forwarded(3)
        loop_side = asyncio.ensure_future(s1.settle_one(consumer))   # waits on batch 1
        await asyncio.sleep(0.01)
        rebalance = asyncio.ensure_future(s1.settle(consumer))       # the revoke handler
        producer.futures[2].set_result(None)
        producer.futures[1].set_result(None)
        await asyncio.sleep(0.01)
        assert consumer.commits == []  # batch 1 not stored yet: nobody commits 2 or 3
        producer.futures[0].set_result(None)
        await asyncio.gather(loop_side, rebalance)
        assert consumer.commits == [{0: 3}, {0: 13}, {0: 23}]

    asyncio.run(run())


def _with_text(i: int) -> bytes:
    """Event ``i`` with the raw prompt and completion a misconfigured producer sends."""
    payload = orjson.loads(_event(i))
    payload.update(prompt="SECRET-P", completion="SECRET-C")
    return orjson.dumps(payload)


def test_a_batch_whose_payloads_carried_raw_text_is_held_for_the_reducer() -> None:
    """The reducer takes such a batch from memory like any other (a producer sending
    text in every payload must not make it decode every batch again), and what it takes
    is what the record says."""
    async def run() -> None:
        producer, consumer = Producer(), Consumer(1)
        s1 = _stage1(producer, remember=True)
        batch = {TopicPartition(TOPIC, 0): [Message(0, _event(0)), Message(1, _with_text(1)),
                                            Message(2, _event(2))]}
        await s1.validate_batches(consumer, batch)
        (value,) = producer.values
        assert b"SECRET" not in value
        taken = s1.state.forwarded.take(value)
        assert taken is not None
        decoded = msgspec.msgpack.decode(value, type=EventBatch)
        assert [e.raw_text_dropped for e in taken[2]] == [0, 2, 0]
        assert [msgspec.structs.asdict(e) for e in taken[2]] == \
            [msgspec.structs.asdict(e) for e in decoded.e]

    asyncio.run(run())


def test_a_batch_with_text_in_a_placeholder_is_not_held(monkeypatch) -> None:
    """Were the decoder ever to leave text in a placeholder, the record (which cuts
    placeholders off) would not say what the held events do: that batch is decoded."""
    async def run() -> None:
        producer, consumer = Producer(), Consumer(1)
        s1 = _stage1(producer, remember=True)
        validate = s1.state.validator.validate

        def leaky(partition, records):
            offsets, events, dead = validate(partition, records)
            events = [msgspec.structs.replace(e, dropped_prompt=msgspec.Raw(b'"SECRET-P"'))
                      if e.raw_text_dropped else e for e in events]
            return offsets, events, dead

        monkeypatch.setattr(s1.state.validator, "validate", leaky)
        await s1.validate_batches(consumer, {TopicPartition(TOPIC, 0): [
            Message(0, _event(0)), Message(1, _with_text(1))]})
        (value,) = producer.values
        assert b"SECRET" not in value and s1.state.forwarded.take(value) is None
        # a batch without raw text is still held
        await s1.validate_batches(consumer, _batch(0, 10))
        assert s1.state.forwarded.take(producer.values[1]) is not None

    asyncio.run(run())


def _full(limit: int = 2 * stage1.BATCH_MAX) -> Forwarded:
    """A Forwarded holding all it may, in batches of 1,000 events: the reducer must take
    several before stage 1 has room for another fetch."""
    forwarded = Forwarded(limit=limit)
    k = 0
    while forwarded.pending + 1000 <= limit:
        forwarded.remember(b"batch-%d" % k, 0, [k], [None] * 1000, None)
        k += 1
    return forwarded


def test_stage1_waits_as_long_as_its_reducer_keeps_taking_batches() -> None:
    """A reducer that needs longer than the wait bound to make room (but takes a batch
    within it each time) still finds every batch held."""
    async def run() -> None:
        forwarded = _full()
        held = forwarded.pending // 1000

        async def slow_reducer() -> None:
            for k in range(held):
                await asyncio.sleep(0.02)  # 5 takes make room: 0.1 s in all
                assert forwarded.take(b"batch-%d" % k) is not None

        reducer = asyncio.ensure_future(slow_reducer())
        await stage1.wait_for_room(forwarded, lambda: True, wait_s=0.06, step_s=0.001)
        # room made by the reducer alone, over more than the bound
        assert forwarded.pending + stage1.BATCH_MAX <= forwarded.limit
        assert forwarded.evicted == 0 and forwarded.hits >= 2
        await reducer

    asyncio.run(run())


def test_stage1_drops_what_it_holds_when_its_reducer_takes_none() -> None:
    async def run() -> None:
        forwarded = _full()
        await asyncio.wait_for(
            stage1.wait_for_room(forwarded, lambda: True, wait_s=0.01, step_s=0.001), 1.0)
        assert forwarded.pending == 0 and forwarded.evicted > 0
        # and does not wait at all while another worker runs the engine
        forwarded = _full()
        await asyncio.wait_for(
            stage1.wait_for_room(forwarded, lambda: False, wait_s=10.0), 0.1)
        assert forwarded.evicted == 0

    asyncio.run(run())


def test_stage1_keeps_what_it_holds_while_its_reducer_is_coming() -> None:
    """A starting worker (before it knows whether it runs the engine) or a restoring one
    keeps its batches: the reducer reads them first once ready. Not for ever, though."""
    async def run() -> None:
        forwarded = _full()
        phase = {"ready": False, "coming": True}

        async def reducer_starts() -> None:
            await asyncio.sleep(0.05)  # longer than wait_s: a ready reducer would be idle
            phase.update(ready=True, coming=False)
            for k in range(5):
                assert forwarded.take(b"batch-%d" % k) is not None
                await asyncio.sleep(0.001)

        reducer = asyncio.ensure_future(reducer_starts())
        await stage1.wait_for_room(forwarded, lambda: phase["ready"], wait_s=0.02,
                                   reducer_coming=lambda: phase["coming"], step_s=0.001)
        assert phase["ready"] and forwarded.evicted == 0
        assert forwarded.pending + stage1.BATCH_MAX <= forwarded.limit
        await reducer
        # a reducer coming for longer than coming_s: stage 1 goes on, dropping nothing yet
        forwarded = _full()
        await asyncio.wait_for(stage1.wait_for_room(
            forwarded, lambda: False, wait_s=0.01, reducer_coming=lambda: True,
            coming_s=0.02, step_s=0.001), 1.0)
        assert forwarded.evicted == 0 and forwarded.pending == forwarded.limit

    asyncio.run(run())


def test_a_stage1_with_a_reducer_to_wait_for_serves_its_backpressure_from_the_start() -> None:
    async def never_waits() -> None:
        return None

    state = WorkerState(Settings.from_env({"EXW_TOPIC_EVENTS": TOPIC}))
    stage1.Stage1(state, Producer().send, on_clash=lambda: None, remember=True,
                  wait_for_reducer=never_waits)
    assert b"\nexw_backpressure_seconds_total 0\n" in state.metrics.render()
    # a worker whose stage 1 has no reducer to wait for does not serve it
    state = WorkerState(Settings.from_env({"EXW_TOPIC_EVENTS": TOPIC}))
    stage1.Stage1(state, Producer().send, on_clash=lambda: None)
    assert b"exw_backpressure" not in state.metrics.render()
