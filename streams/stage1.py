"""Stage 1 of a worker: the events topic in, hand-off batches and dead letters out.

Stage 1 reads its share of the events topic with a batched aiokafka consumer in
a group of its own (``<app>-validate``), dead-letters bad records, and forwards
the valid events to the single-partition hand-off topic, where one worker's
reducer runs the engine (:mod:`streams.handoff`).

It runs in one of two places (``EXW_STAGE1``, :meth:`Settings.stage1_in_child`):

* **inline**, in the worker's process, beside the Faust app and the engine. The
  reducer takes this process's own batches from memory instead of decoding them
  again (:class:`streams.handoff.Forwarded`), so this costs the least CPU, but
  reading and validating take about a third of the core the engine runs on.
* **process**, in a child process of its own (:class:`Stage1Process`; ``python -m
  streams.stage1``). The engine gets its core to itself and decodes every batch
  from the hand-off; the child reports its figures (partitions held, counters,
  consumer lag) to the parent every half second for ``/readyz`` and ``/metrics``.
  The child is killed with its parent (``PR_SET_PDEATHSIG``: a worker killed
  with -9 leaves no stage 1 reading on under its name) and restarted by the
  parent if it dies alone; a child that exits because the group refused it or
  another worker holds its name takes the worker down with the same exit code.

Delivery is the same in both: the batch's hand-off record and dead letters are
acknowledged by the broker before its offsets are committed (at least once).
"""

from __future__ import annotations

import asyncio
import ctypes
import dataclasses
import functools
import logging
import os
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError

from streams.config import Settings
from streams.handoff import Forwarded, Validator, dead_letter_headers
from streams.metrics import Metrics
from streams.topics import partitions_for

__all__ = ["Stage1", "Stage1Process", "Stage1Report", "commit_assigned",
           "highwater_if_assigned", "send_dead_letters"]

log = logging.getLogger("extraction_watch.stage1")

BATCH_MAX = 5000
IN_FLIGHT = 4
IDLE_CHECK_S = 1.0
REPORT_EVERY_S = 0.5
# a child that dies this soon after its start, this many times in a row, is not
# restarted again: the worker exits (its orchestrator restarts it, with backoff)
RESTART_LIMIT = 5
RESTART_PAUSE_S = 1.0

# exit codes a child passes on to the worker (streams.worker defines their meaning)
NAME_CLASH_EXIT = 3
GROUP_REFUSED_EXIT = 4

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


class _Rebalance(ConsumerRebalanceListener):
    """Stage 1 forgets its per-partition positions when the group moves partitions."""

    def __init__(self, state: Stage1State, on_clash: Callable[[], None],
                 on_change: Callable[[], None] | None = None,
                 settle: Callable[[], Awaitable[None]] | None = None) -> None:
        self.state = state
        self.on_clash = on_clash
        self.on_change = on_change
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
        if self.on_change is not None:
            self.on_change()
        if self.state.assignment_clash(time.monotonic()):
            self.on_clash()


class Stage1:
    """The stage-1 loop of one worker (inline or in a child process).

    ``send(topic, key, value, headers=None)`` queues a record and returns its delivery
    future (Faust's producer inline, an aiokafka producer in a child). With
    ``remember``, batches are also held in ``state.forwarded`` for this process's own
    reducer, and ``wait_for_reducer`` (a coroutine function) is awaited before each
    fetch so that stage 1 does not run further ahead than the reducer can take them.
    """

    def __init__(self, state: Stage1State, send: Send, *, on_clash: Callable[[], None],
                 remember: bool = False,
                 wait_for_reducer: Callable[[], Awaitable[None]] | None = None,
                 on_assigned: Callable[[], None] | None = None) -> None:
        self.state = state
        self.settings = state.settings
        self.metrics = state.metrics
        self.send = send
        self.on_clash = on_clash
        self.remember = remember
        self.wait_for_reducer = wait_for_reducer
        self.on_assigned = on_assigned  # (called when the group gives it partitions)
        # batches forwarded whose records are not yet acknowledged, oldest first, with
        # the offsets to commit once they are (a fetch does not wait for the broker's
        # answer to the one before; at most IN_FLIGHT of them wait)
        self.in_flight: deque[tuple[list, dict]] = deque()
        self.handoff = self.settings.internal_topic("handoff")

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
            state, self.on_clash, self.on_assigned, functools.partial(self.settle, consumer)))
        await consumer.start()
        state.validate_consumer = consumer
        last_idle_check = 0.0
        try:
            while True:
                if self.wait_for_reducer is not None:
                    await self.wait_for_reducer()
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
                if self.remember and validator.raw_text_dropped == raw_before:
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
        its offsets (a batch's offsets never move before its outputs are stored)."""
        sent, commit = self.in_flight.popleft()
        if sent:
            await asyncio.gather(*sent)
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


# ----------------------------------------------------------- the child process
@dataclasses.dataclass
class Stage1Report:
    """What the parent last heard from its stage-1 child."""

    events_partitions: int = 0
    consuming: bool = False      # its consumer is started (in its group)
    dead: int = 0                # records it dead-lettered
    raw_text_dropped: int = 0
    metrics: dict[str, Any] = dataclasses.field(default_factory=dict)


def _die_with_parent(parent: int) -> None:  # pragma: no cover - runs in the child
    """PR_SET_PDEATHSIG: the kernel sends SIGKILL to this process when its parent dies;
    a parent that died before this was set is seen here, and the child leaves."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):
        pass
    if parent and os.getppid() != parent:
        os._exit(1)


def _same(value: Any) -> Any:
    return value


class Stage1Process:
    """The parent's side of a stage-1 child: start it, read its reports, restart it if
    it dies alone, pass on a fatal exit, stop it with the worker."""

    def __init__(self, settings: Settings, on_fatal_exit: Callable[[int], None]) -> None:
        self.settings = settings
        self.on_fatal_exit = on_fatal_exit
        self.report: Stage1Report | None = None   # None: no child reporting right now
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def _spawn(self, write_fd: int) -> subprocess.Popen:
        env = dict(os.environ)
        env["EXW__STAGE1_SETTINGS"] = orjson.dumps(dataclasses.asdict(self.settings)).decode()
        env["EXW__STAGE1_PARENT"] = str(os.getpid())
        # (started from the event loop's thread: the child's death signal follows the
        # thread that started it, and this one lives as long as the worker)
        return subprocess.Popen([sys.executable, "-m", "streams.stage1", str(write_fd)],
                                env=env, pass_fds=(write_fd,))

    async def run(self) -> None:  # pragma: no cover - exercised against the real broker
        loop = asyncio.get_running_loop()
        quick_exits = 0
        try:
            while True:
                read_fd, write_fd = os.pipe()
                try:
                    self.proc = self._spawn(write_fd)
                finally:
                    os.close(write_fd)
                self.starts += 1
                started = time.monotonic()
                reader = asyncio.StreamReader(limit=16 * 1024 * 1024)
                protocol = asyncio.StreamReaderProtocol(reader)
                transport, _ = await loop.connect_read_pipe(
                    functools.partial(_same, protocol), os.fdopen(read_fd, "rb"))
                try:
                    while line := await reader.readline():
                        self.report = Stage1Report(**orjson.loads(line))
                finally:
                    transport.close()
                    self.report = None
                code = await asyncio.to_thread(self.proc.wait)
                if code in (NAME_CLASH_EXIT, GROUP_REFUSED_EXIT):
                    self.on_fatal_exit(code)
                quick_exits = quick_exits + 1 if time.monotonic() - started < 30 else 0
                if quick_exits >= RESTART_LIMIT:
                    log.critical("stage 1's process exited with %s, %d times in a row within "
                                 "30 s of its start: exiting", code, quick_exits)
                    self.on_fatal_exit(1)
                log.error("stage 1's process exited with %s: starting it again", code)
                await asyncio.sleep(RESTART_PAUSE_S)
        finally:
            self.stop()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Ask the child to leave (SIGTERM: it stops its consumer), then kill it."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:  # pragma: no cover
            proc.kill()
            proc.wait()


async def _child(settings: Settings, report_fd: int) -> None:  # pragma: no cover - a child
    from streams import membership
    from streams.worker import WorkerState, exit_group_refused, exit_name_clash, exit_stage1_clash

    membership.install(
        on_fenced=lambda group, name, exc: exit_name_clash(
            settings, f"consumer group {group} fenced this worker's stage 1 ({exc})"),
        on_fatal=lambda group, name, exc: exit_group_refused(group, exc))
    state = WorkerState(settings)
    producer = AIOKafkaProducer(acks="all", max_request_size=4 * 1024 * 1024,
                                **settings.aiokafka_kwargs())
    await producer.start()

    async def send(topic: str, key: bytes | None, value: bytes | None,
                   headers: list[tuple[str, bytes]] | None = None) -> Any:
        return await producer.send(topic, value, key=key, headers=headers)

    changed = asyncio.Event()  # (a new assignment is reported at once)
    stage1 = Stage1(state, send, on_clash=lambda: exit_stage1_clash(settings),
                    on_assigned=changed.set)

    async def report() -> None:
        parent = int(os.environ.get("EXW__STAGE1_PARENT", "0"))
        with os.fdopen(report_fd, "wb", buffering=0) as out:
            while True:
                try:
                    await asyncio.wait_for(changed.wait(), REPORT_EVERY_S)
                except TimeoutError:
                    pass
                changed.clear()
                if parent and os.getppid() != parent:
                    os._exit(1)  # the parent is gone (and the death signal missed it)
                consumer = state.validate_consumer
                body = {"events_partitions": len(consumer.assignment()) if consumer else 0,
                        "consuming": consumer is not None,
                        "dead": state.validator.dead,
                        "raw_text_dropped": state.validator.raw_text_dropped,
                        "metrics": state.metrics.snapshot()}
                await asyncio.to_thread(out.write, orjson.dumps(body) + b"\n")

    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    assert main is not None
    loop.add_signal_handler(signal.SIGTERM, main.cancel)
    loop.add_signal_handler(signal.SIGINT, main.cancel)
    reporter = asyncio.ensure_future(report())
    try:
        await stage1.run()
    except asyncio.CancelledError:
        pass
    finally:
        reporter.cancel()
        await producer.stop()


def main(argv: list[str] | None = None) -> int:  # pragma: no cover - a child process
    argv = sys.argv[1:] if argv is None else argv
    _die_with_parent(int(os.environ.get("EXW__STAGE1_PARENT", "0")))
    from extraction_watch.cli import tune_gc

    logging.basicConfig(level=logging.WARNING,
                        format="[%(asctime)s] [%(process)d] [%(levelname)s] stage1: %(message)s")
    tune_gc()
    settings = Settings(**orjson.loads(os.environ["EXW__STAGE1_SETTINGS"]))
    asyncio.run(_child(settings, int(argv[0])))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
