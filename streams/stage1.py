"""Stage 1 of a worker: the events topic in, hand-off batches and dead letters out.

Stage 1 reads its share of the events topic with a batched aiokafka consumer in
a group of its own (``<app>-validate``), dead-letters bad records, and forwards
the valid events to the single-partition hand-off topic, where one worker's
reducer runs the engine (:mod:`streams.handoff`). It runs in the worker's
process, beside the Faust app; the reducer of the same worker takes its batches
from memory instead of decoding them again (:class:`streams.handoff.Forwarded`).

Delivery: at least once. A fetched batch's hand-off record and dead letters are
queued at once and the next batch is fetched without waiting for the broker's
answer; at most ``IN_FLIGHT`` batches wait, and a batch's offsets are committed
only once its records are stored, oldest first. Everything in flight is settled
before an idle marker is sent, before the group takes partitions away, and at a
stop.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import orjson
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError

from streams.config import Settings
from streams.handoff import Forwarded, Validator, dead_letter_headers, placeholders_empty
from streams.metrics import Metrics
from streams.topics import partitions_for

__all__ = ["Stage1", "commit_assigned", "highwater_if_assigned", "send_dead_letters",
           "wait_for_room"]

log = logging.getLogger("extraction_watch.stage1")

BATCH_MAX = 5000
# seconds stage 1 waited for its own reducer to make room (docs/operations.md)
BACKPRESSURE_METRIC = "exw_backpressure_seconds_total"
IN_FLIGHT = 4
IDLE_CHECK_S = 1.0

Send = Callable[..., Awaitable[Any]]


class Stage1State(Protocol):
    """What stage 1 reads and writes of its worker's state (streams.worker.WorkerState)."""

    settings: Settings
    validator: Validator
    forwarded: Forwarded
    forwarded_next: dict[int, int]
    idle_sent: dict[int, int]
    parts_sent: bool
    validate_consumer: AIOKafkaConsumer | None
    metrics: Metrics

    def assignment_clash(self, now: float) -> bool: ...


def highwater_if_assigned(consumer: AIOKafkaConsumer, tp: TopicPartition) -> int | None:
    """The partition's high watermark, or None once it is no longer assigned.

    The group can rebalance (a worker joins or leaves) while a batch is being
    forwarded, and aiokafka asserts on a partition it no longer holds.
    """
    return consumer.highwater(tp) if tp in consumer.assignment() else None


async def commit_assigned(consumer: AIOKafkaConsumer, offsets: dict) -> dict:
    """Commit the offsets of the partitions this consumer still holds; return those.

    A partition taken away by a rebalance while its batch was forwarded is not
    ours to commit (aiokafka raises, and the worker used to crash on it): its new
    owner reads it again from the last commit. The reducer skips events it has
    applied; dead letters may repeat (at least once).
    """
    held = consumer.assignment()
    mine = {tp: offset for tp, offset in offsets.items() if tp in held}
    if not mine:
        return {}
    try:
        await consumer.commit(mine)
    except (CommitFailedError, IllegalStateError) as exc:
        log.warning("commit skipped, the group rebalanced meanwhile: %s", exc)
        return {}
    return mine


async def send_dead_letters(send: Send, topic: str, metrics: Metrics, records: list) -> list:
    """Queue ``records`` (dead letters) on ``topic``; return their delivery futures."""
    futures = []
    for record in records:
        metrics.inc("exw_dead_letters_total", reason=record["reason"])
        src = record.get("source") or {}
        key = f"{src.get('partition', '')}:{src.get('offset', '')}".encode()
        futures.append(await send(topic, key, orjson.dumps(record), dead_letter_headers(record)))
    return futures


async def wait_for_room(forwarded: Forwarded, reducer_ready: Callable[[], bool],
                        wait_s: float, reducer_coming: Callable[[], bool] = lambda: False,
                        coming_s: float = 30.0, step_s: float = 0.005) -> None:
    """Stage 1's back-pressure from this worker's own reducer: while the batches held
    for it (``forwarded``) leave no room for another fetch, wait as long as the reducer
    keeps taking them, so that every batch is still held when the reducer gets there.

    Only when it takes none for ``wait_s`` (it is reading other records: another
    worker's) are the held batches dropped, to be decoded from the hand-off, and stage 1
    goes on. (Going on as soon as the reducer was slower than ``wait_s`` dropped the
    oldest held batch, the one the reducer would read next.) While the reducer is
    ``reducer_coming`` (a worker starting, before it knows whether it runs the engine,
    or restoring its state), stage 1 waits up to ``coming_s`` without dropping
    anything: the reducer reads those batches first once it is ready.
    """
    hits = forwarded.hits
    idle = coming = 0.0
    while forwarded.pending + BATCH_MAX > forwarded.limit:
        if reducer_ready():
            if forwarded.hits != hits:
                hits = forwarded.hits
                idle = 0.0
            elif idle >= wait_s:
                forwarded.clear()  # the reducer took none of them: stop holding them
                return
            idle += step_s
        elif reducer_coming() and coming < coming_s:
            coming += step_s
        else:
            return
        await asyncio.sleep(step_s)


class _Rebalance(ConsumerRebalanceListener):
    """Stage 1 forgets its per-partition positions when the group moves partitions."""

    def __init__(self, state: Stage1State, on_clash: Callable[[], None],
                 settle: Callable[[], Awaitable[None]] | None = None) -> None:
        self.state = state
        self.on_clash = on_clash
        self.settle = settle

    async def on_partitions_revoked(self, revoked) -> None:  # pragma: no cover
        state = self.state
        if self.settle is not None:  # commit what was forwarded while the partitions are ours
            try:
                await self.settle()
            except Exception as exc:  # noqa: BLE001 - their next owner reads them again
                log.warning("forwarded batches not committed before a rebalance: %s: %s",
                            type(exc).__name__, exc)
        for tp in revoked:
            state.forwarded_next.pop(tp.partition, None)
            state.idle_sent.pop(tp.partition, None)
        state.parts_sent = False

    async def on_partitions_assigned(self, assigned) -> None:  # pragma: no cover
        self.state.parts_sent = False
        if self.state.assignment_clash(time.monotonic()):
            self.on_clash()


class Stage1:
    """The stage-1 loop of one worker.

    ``send(topic, key, value, headers=None)`` queues a record and returns its delivery
    future (the Faust app's producer). With
    ``remember``, batches are also held in ``state.forwarded`` for this process's own
    reducer, and ``wait_for_reducer`` (a coroutine function) is awaited before each
    fetch so that stage 1 does not run further ahead than the reducer can take them.
    """

    def __init__(self, state: Stage1State, send: Send, *, on_clash: Callable[[], None],
                 remember: bool = False,
                 wait_for_reducer: Callable[[], Awaitable[None]] | None = None) -> None:
        self.state = state
        self.settings = state.settings
        self.metrics = state.metrics
        self.send = send
        self.on_clash = on_clash
        self.remember = remember
        self.wait_for_reducer = wait_for_reducer
        # batches forwarded whose records are not yet acknowledged, oldest first, with
        # the offsets to commit once they are (a fetch does not wait for the broker's
        # answer to the one before; at most IN_FLIGHT of them wait)
        self.in_flight: deque[tuple[list, dict]] = deque()
        self.settling = asyncio.Lock()
        self.handoff = self.settings.internal_topic("handoff")
        if wait_for_reducer is not None:
            self.metrics.inc(BACKPRESSURE_METRIC, 0)  # served from the start

    async def send_handoff(self, value: bytes) -> None:
        await (await self.send(self.handoff, None, value))

    async def run(self) -> None:  # pragma: no cover - exercised against the real broker
        """Read the events topic in batches until cancelled.

        Faust's per-message stream machinery costs a few hundred microseconds
        per record (measured: about 2 thousand events/s on this machine), so
        the busy topic is read in batches of thousands with ``getmany``;
        Faust's own consumer only carries the hand-off and release topics.
        """
        settings, state = self.settings, self.state
        consumer = AIOKafkaConsumer(
            group_id=settings.internal_topic("validate"), enable_auto_commit=False,
            group_instance_id=settings.group_instance(),  # (unique per group: this is another)
            auto_offset_reset="earliest", max_partition_fetch_bytes=4 * 1024 * 1024,
            session_timeout_ms=int(settings.session_timeout_s * 1000),
            heartbeat_interval_ms=int(settings.heartbeat_interval_s * 1000),
            fetch_max_wait_ms=settings.fetch_max_wait_ms,
            fetch_max_bytes=32 * 1024 * 1024, **settings.aiokafka_kwargs())
        consumer.subscribe([settings.topic_events], listener=_Rebalance(
            state, self.on_clash, functools.partial(self.settle, consumer)))
        await consumer.start()
        state.validate_consumer = consumer
        last_idle_check = 0.0
        try:
            while True:
                if self.wait_for_reducer is not None:
                    waiting = time.perf_counter()
                    await self.wait_for_reducer()
                    # (time the engine, not the events topic, held this worker back)
                    waited = time.perf_counter() - waiting
                    if waited >= 0.001:
                        self.metrics.inc(BACKPRESSURE_METRIC, waited)
                batches = await consumer.getmany(timeout_ms=200, max_records=BATCH_MAX)
                if batches:
                    await self.announce_partitions(consumer)
                    await self.validate_batches(consumer, batches)
                else:
                    await self.settle(consumer)
                if time.monotonic() - last_idle_check >= IDLE_CHECK_S:
                    last_idle_check = time.monotonic()
                    # (an idle marker follows only records already stored)
                    await self.settle(consumer)
                    try:
                        await asyncio.wait_for(self.idle_partitions(consumer), timeout=10.0)
                    except Exception as exc:  # noqa: BLE001 - a metadata hiccup is not fatal
                        log.warning("idle-partition check skipped: %s: %s",
                                    type(exc).__name__, exc)
        finally:
            state.validate_consumer = None
            try:
                await asyncio.wait_for(self.settle(consumer), timeout=10.0)
            except Exception as exc:  # noqa: BLE001 - re-read after a restart (at least once)
                log.warning("stopping with forwarded batches not committed: %s: %s",
                            type(exc).__name__, exc)
            await consumer.stop()

    async def announce_partitions(self, consumer: AIOKafkaConsumer) -> None:
        state, settings = self.state, self.settings
        if state.parts_sent:
            return
        count = len(consumer.partitions_for_topic(settings.topic_events) or ())
        if not count:
            count = await asyncio.to_thread(partitions_for, settings, settings.topic_events)
        if count:
            await self.send_handoff(Validator.partitions_record(count))
            state.parts_sent = True

    async def validate_batches(self, consumer: AIOKafkaConsumer, batches: dict) -> None:
        state = self.state
        started = time.perf_counter()
        dead_out: list = []
        commit: dict = {}
        sent: list = []
        received = 0
        validator = state.validator
        for tp, messages in batches.items():
            if not messages:
                continue
            p = tp.partition
            records = [(m.offset, m.value) for m in messages]
            received += len(records)
            next_offset = records[-1][0] + 1
            raw_before = validator.raw_text_dropped
            offsets, events, dead = validator.validate(p, records)
            dead_out.extend(rec for _, rec in dead)
            hw = highwater_if_assigned(consumer, tp)
            if offsets:  # a batch of bad records only: the idle check reports the end
                value = Validator.batch_record(p, offsets, events, hw)
                if self.remember and (validator.raw_text_dropped == raw_before
                                      or placeholders_empty(events)):
                    state.forwarded.remember(value, p, offsets, events, hw)
                # queued, not awaited one by one: the partitions' records go out in
                # one produce request (one partition, so they keep their order)
                sent.append(await self.send(self.handoff, None, value))
            state.forwarded_next[p] = next_offset
            commit[tp] = next_offset
        sent.extend(await send_dead_letters(self.send, self.settings.topic_dead_letters,
                                            self.metrics, dead_out))
        self.in_flight.append((sent, commit))
        self.metrics.inc("exw_events_total", received)
        self.metrics.observe("exw_validate_batch_seconds", time.perf_counter() - started)
        while len(self.in_flight) > IN_FLIGHT:
            await self.settle_one(consumer)

    async def settle_one(self, consumer: AIOKafkaConsumer) -> None:
        """Wait for the oldest forwarded batch's records to be acknowledged, then commit
        its offsets (a batch's offsets never move before its outputs are stored).

        One at a time (the loop and a rebalance both settle), so offsets move in the
        order the batches were fetched. If a batch's records fail, the batches after it
        are dropped uncommitted: a later batch's offsets would pass over the failed
        one's, whose records would then never be read again.
        """
        async with self.settling:
            if not self.in_flight:
                return
            sent, commit = self.in_flight[0]
            if sent:
                try:
                    await asyncio.gather(*sent)
                except BaseException:
                    self.in_flight.clear()
                    raise
            self.in_flight.popleft()
            if commit:
                await commit_assigned(consumer, commit)

    async def settle(self, consumer: AIOKafkaConsumer) -> None:
        """Every batch forwarded so far acknowledged and committed."""
        while self.in_flight:
            await self.settle_one(consumer)

    async def idle_partitions(self, consumer: AIOKafkaConsumer) -> None:  # pragma: no cover
        """Say which assigned events partitions have nothing more to read."""
        state = self.state
        mine = sorted(consumer.assignment())
        if not mine:
            return
        await self.announce_partitions(consumer)
        highwaters = await consumer.end_offsets(mine)
        for tp in mine:
            hw = highwaters.get(tp)
            if hw is None:
                continue
            p = tp.partition
            position = state.forwarded_next.get(p)
            if position is None:
                position = await consumer.position(tp)
            self.metrics.set("exw_consumer_lag", max(0, hw - position), topic=tp.topic,
                             partition=str(p))
            # everything this loop fetched is forwarded before it checks again
            if position >= hw and state.idle_sent.get(p) != position:
                await self.send_handoff(Validator.idle_record(p, position))
                state.idle_sent[p] = position
