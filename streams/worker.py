"""``extraction-watch worker``: the Faust app that runs the engine beside production.

Agents (see :mod:`streams.handoff` for the design):

* ``validate`` consumes the events topic (key = account_id) in batches,
  dead-letters bad records, and forwards valid events to the hand-off topic;
* ``releases`` forwards model releases to the hand-off topic;
* ``detect`` consumes the single-partition hand-off topic, so exactly one
  worker of the group runs the engine; it publishes alerts and the engine's
  own dead letters (late, duplicate, out of range) and checkpoints its state
  to a compacted topic.

Delivery: at least once. Every output is awaited before the input record is
acknowledged, so a committed offset never runs ahead of what was published.
After a crash the reducer restores the latest checkpoint, re-reads the
hand-off records between that checkpoint and the group's committed offset,
and goes on; the alerts it re-publishes are identical (same id, same seq,
same content except ``emitted_at``). A checkpoint it cannot use (another
release's format, a missing or corrupt chunk, a blob that does not unpickle)
is discarded with a warning and counted in ``exw_checkpoints_discarded_total``:
the state is rebuilt from the oldest hand-off record still retained, and
checkpointed at once in this release's format.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import time
from collections import Counter, deque
from collections.abc import Coroutine
from typing import Any

import faust
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread as _FaustConsumerThread

from models.engine import DETECTOR_VERSION
from streams import membership
from streams.config import Settings
from streams.config import settings as load_settings
from streams.handoff import (
    DISCARD_REASONS,
    Forwarded,
    Reducer,
    Validator,
    alert_headers,
    read_checkpoint,
    split_blob,
    stamp,
)
from streams.metrics import Metrics
from streams.stage1 import (
    Stage1,
    commit_assigned,
    highwater_if_assigned,
    send_dead_letters,
    wait_for_room,
)
from streams.topics import ensure_topics

__all__ = ["create_app", "WorkerState", "collect_snapshot", "commit_assigned", "fork_snapshot",
           "highwater_if_assigned", "snapshot_in_child"]

log = logging.getLogger("extraction_watch.worker")
if not callable(getattr(_FaustConsumerThread, "_create_worker_consumer", None)):
    raise ImportError("this Faust release has no AIOKafkaConsumerThread._create_worker_consumer; "
                      "streams.worker._set_fetch_wait needs updating")
# events stage 1 holds for this worker's own reducer (streams.handoff.Forwarded); while
# this worker runs the engine, stage 1 waits rather than run further ahead of it, unless
# the reducer takes none for FORWARD_WAIT_S (streams.stage1.wait_for_room)
FORWARDED_EVENTS = 32_768
FORWARD_WAIT_S = 2.0
# ... and while a starting worker learns whether it runs the engine, or restores it, it
# waits at most this long without dropping them (a worker that does not run the engine
# feeds another's: it must not stall long)
FORWARD_COMING_S = 10.0


def exit_name_clash(settings: Settings, evidence: str) -> None:
    """Say that another live worker runs under this one's EXW_GROUP_INSTANCE_ID, and exit
    with NAME_CLASH_EXIT (as a kill -9: every output is acknowledged before its input,
    nothing is lost)."""
    log.critical("%s: another live worker of group %s runs under EXW_GROUP_INSTANCE_ID=%r, "
                 "and each takes the membership from the other. Give each worker a name "
                 "of its own. Exiting.", evidence, settings.app_id, settings.group_instance())
    _flush_logs()
    os._exit(NAME_CLASH_EXIT)


def exit_group_refused(group: str, exc: BaseException) -> None:
    """A consumer group refuses this worker for good (authorisation, an invalid group id
    or session timeout): retrying cannot help. Say so and exit with GROUP_REFUSED_EXIT."""
    log.critical("consumer group %s refused this worker: %s: %s. Exiting.", group,
                 type(exc).__name__, exc)
    _flush_logs()
    os._exit(GROUP_REFUSED_EXIT)


def exit_stage1_clash(settings: Settings) -> None:
    exit_name_clash(settings, f"stage 1's partitions were assigned {NAME_CLASH_ASSIGNMENTS} "
                              f"times within {NAME_CLASH_WINDOW_S:.0f} s")


def _flush_logs() -> None:
    for handler in logging.getLogger().handlers:
        handler.flush()


# A static member whose partitions are assigned this many times within the window is
# sharing its name with another live worker: each one's join takes the membership from
# the other, over and over (a normal worker is assigned a few times when workers come
# and go). Measured: about once a second per worker when two share a name.
NAME_CLASH_ASSIGNMENTS = 10
NAME_CLASH_WINDOW_S = 60.0
NAME_CLASH_EXIT = 3
GROUP_REFUSED_EXIT = 4


class WorkerState:
    """What one worker process knows, for its agents, timers and web views."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.assigned_at: deque[float] = deque(maxlen=NAME_CLASH_ASSIGNMENTS)
        self.validator = Validator(settings.topic_events)
        # event batches stage 1 sent, until this worker's reducer reads them back
        self.forwarded = Forwarded(FORWARDED_EVENTS)
        self.reducer: Reducer | None = None
        self.reducer_ready = False
        self.restoring = False
        # until the first assignment of the hand-off topic says whether this worker runs
        # the engine (stage 1 keeps what it forwards for it meanwhile)
        self.engine_coming = True
        self.forwarded_next: dict[int, int] = {}  # ... next offset forwarded to the hand-off
        self.idle_sent: dict[int, int] = {}
        self.parts_sent = False
        self.validate_consumer: AIOKafkaConsumer | None = None
        self.restore_lock = asyncio.Lock()
        self.checkpoint_task: asyncio.Future | None = None  # a checkpoint being written
        self.last_checkpoint_wall = time.monotonic()
        self.checkpoint_generation = 0
        self.checkpoint_chunks = 0
        # chunk records the checkpoints topic held when the state was restored (the
        # loaded generation's, or a discarded checkpoint's): the next save tombstones them
        self.stale_chunks: set[bytes] = set()
        self.checkpoint_bytes = 0
        self.checkpoint_seconds = 0.0
        self.metrics = Metrics()
        for reason in DISCARD_REASONS:  # every series from the start, at 0
            self.metrics.inc("exw_checkpoints_discarded_total", 0, reason=reason)
        self.recovered_in_s: float | None = None
        self.started = time.monotonic()

    def assignment_clash(self, now: float) -> bool:
        """Record one assignment of stage 1's partitions; True when this static member
        was assigned so often lately that another live worker must share its name."""
        if self.settings.group_instance() is None:
            return False
        seen = self.assigned_at
        seen.append(now)
        return len(seen) == NAME_CLASH_ASSIGNMENTS and now - seen[0] <= NAME_CLASH_WINDOW_S


def _producer_send(app: faust.App, topic: str, key: bytes | None, value: bytes | None,
                   headers: list[tuple[str, bytes]] | None = None):
    return app.producer.send(topic, key, value, partition=None, timestamp=None,
                             headers=headers)


def _set_fetch_wait(wait_ms: int) -> None:
    """Make Faust's consumer wait ``wait_ms`` at a topic's end instead of its fixed 1.5 s.

    Faust builds its aiokafka consumer with ``fetch_max_wait_ms=1500`` and no
    setting to change it; the consumer reads the value only when it starts, so
    it is set on the new consumer, before that. (Checked at import time below:
    if a Faust release renames the hook, the worker fails to start rather
    than silently running slow.)
    """
    thread_cls = _FaustConsumerThread
    original = getattr(thread_cls, "_exw_original_create", None)
    if original is None:
        original = thread_cls._create_worker_consumer
        thread_cls._exw_original_create = original  # type: ignore[attr-defined]

    def create(self, transport):  # type: ignore[no-untyped-def]
        consumer = original(self, transport)
        consumer._fetch_max_wait_ms = wait_ms
        return consumer

    thread_cls._create_worker_consumer = create  # type: ignore[method-assign]


def _read_all(fd: int) -> bytes:
    with os.fdopen(fd, "rb") as pipe:
        return pipe.read()


_MAX_FD = os.sysconf("SC_OPEN_MAX") if hasattr(os, "sysconf") else 65536


async def collect_snapshot(pid: int, read_fd: int) -> bytes:
    """The blob a :func:`fork_snapshot` child writes, once it has exited well."""
    try:
        blob = await asyncio.to_thread(_read_all, read_fd)
    finally:
        _, status = await asyncio.to_thread(os.waitpid, pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise RuntimeError(f"the checkpoint's snapshot process exited with {code}")
    return blob


async def _ready(blob: bytes) -> bytes:
    return blob


def snapshot_in_child(reducer: Reducer) -> Coroutine[Any, Any, bytes]:
    """Fork now; the returned coroutine gives ``reducer.snapshot()`` as it stood here.

    Pickling the engine's state holds the interpreter for about 0.7 s at 15
    thousand accounts (more at scale), with events queued behind it: a latency
    spike every checkpoint interval. A forked child pickles a copy-on-write
    image of the state instead, sends the blob through a pipe and leaves with
    ``os._exit`` (no cleanup, no logging, no Kafka: it never uses its copies of
    the sockets), while this process goes on. Where fork is not available the
    snapshot is taken here.
    """
    if not hasattr(os, "fork"):  # pragma: no cover - not Linux or macOS
        return _ready(reducer.snapshot())
    return collect_snapshot(*fork_snapshot(reducer))


def fork_snapshot(reducer: Reducer) -> tuple[int, int]:
    """Fork a child that writes ``reducer.snapshot()`` into a pipe and exits; return
    its pid and the pipe's read end (for :func:`collect_snapshot`)."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child (coverage does not follow it)
        code = 1
        try:
            # no collection here: one would write into every tracked object's header and
            # so copy every page of the parent's heap (nothing made here forms a cycle)
            gc.disable()
            # only the pipe stays open: a listening socket (the web port) or a broker
            # connection must not outlive a killed worker in its child
            os.closerange(3, write_fd)
            os.closerange(write_fd + 1, _MAX_FD)
            with os.fdopen(write_fd, "wb") as pipe:
                reducer.write_snapshot(pipe)  # compressed as it is pickled, never whole
            code = 0
        finally:
            os._exit(code)
    os.close(write_fd)
    return pid, read_fd


def create_app(settings: Settings | None = None) -> faust.App:
    settings = settings or load_settings()
    _set_fetch_wait(settings.fetch_max_wait_ms)
    # a fenced static member (error 82) exits at once, naming the clash; see streams.membership
    membership.install(
        on_fenced=lambda group, name, exc: exit_name_clash(
            settings, f"consumer group {group} fenced this worker ({exc})"),
        on_fatal=lambda group, name, exc: exit_group_refused(group, exc))
    os.makedirs(settings.data_dir, exist_ok=True)
    credentials: Any = None
    if settings.security_protocol.startswith("SASL"):
        credentials = faust.SASLCredentials(
            username=settings.sasl_username, password=settings.sasl_password,
            mechanism=settings.sasl_mechanism, ssl_context=settings.ssl_context())
    elif settings.uses_ssl:
        credentials = faust.SSLCredentials(settings.ssl_context())
    app = faust.App(
        settings.app_id,
        broker=[f"kafka://{s}" for s in settings.bootstrap_servers],
        broker_credentials=credentials,
        datadir=settings.data_dir,
        web_port=settings.web_port,
        web_bind=settings.web_host,
        web_host=settings.web_host,
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication,
        topic_allow_declare=True,
        consumer_auto_offset_reset="earliest",
        producer_max_request_size=4 * 1024 * 1024,
        # hand-off records run to megabytes: fetch several at once (A/B on one run: +5%)
        consumer_max_fetch_size=32 * 1024 * 1024,
        producer_acks=-1,
        stream_buffer_maxsize=8192,
        broker_commit_every=10_000,
        # a worker killed with -9 leaves its group after the session timeout:
        # EXW_SESSION_TIMEOUT_S, 10 s rather than Faust's 60 s, so a standby takes over soon
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=settings.heartbeat_interval_s,
        # static membership when configured: a restarted worker takes its partitions back
        # at once instead of after the session timeout (streams/config.py)
        consumer_group_instance_id=settings.group_instance(),
        broker_commit_interval=1.0,
        table_standby_replicas=0,
        web_enabled=True,
        # the engine keeps event time itself; nothing here uses Faust tables
    )
    state = WorkerState(settings)
    app.exw_state = state  # type: ignore[attr-defined]
    raw: dict[str, Any] = {"key_serializer": "raw", "value_serializer": "raw"}
    releases = app.topic(settings.topic_releases, **raw)
    handoff = app.topic(settings.internal_topic("handoff"), partitions=1, internal=True,
                        retention=7 * 86400.0, **raw)
    checkpoints = app.topic(settings.internal_topic("checkpoints"), partitions=1,
                            internal=True, compacting=True, **raw)
    app.topic(settings.topic_alerts, **raw)
    app.topic(settings.topic_dead_letters, **raw)
    handoff_name = handoff.get_topic_name()
    handoff_tp = TopicPartition(handoff_name, 0)
    source = f"extraction-watch/{settings.app_id}"
    metrics = state.metrics

    async def flush(futures: list) -> None:
        if futures:
            await asyncio.gather(*futures)

    async def publish(out: list) -> None:
        futures = []
        now = time.time()
        for kind, record in out:
            if kind == "alert":
                stamp(record, now)
                metrics.inc("exw_alerts_total", kind=record["kind"], severity=record["severity"],
                            status=record["status"])
                futures.append(await _producer_send(
                    app, settings.topic_alerts, record["alert_id"].encode(), orjson.dumps(record),
                    alert_headers(record, source)))
        futures.extend(await send_dead_letters(
            send, settings.topic_dead_letters, metrics,
            [record for kind, record in out if kind != "alert"]))
        await flush(futures)

    async def send(topic: str, key: bytes | None, value: bytes | None,
                   headers: list[tuple[str, bytes]] | None = None) -> Any:
        return await _producer_send(app, topic, key, value, headers)

    async def send_handoff(value: bytes) -> None:
        fut = await _producer_send(app, handoff_name, None, value)
        await fut

    @app.task
    async def validate() -> None:  # pragma: no cover - exercised against the real broker
        """Stage 1 (streams.stage1)."""
        await Stage1(state, send, on_clash=lambda: exit_stage1_clash(settings),
                     remember=True, wait_for_reducer=reducer_caught_up).run()

    async def reducer_caught_up() -> None:
        await wait_for_room(state.forwarded, lambda: state.reducer_ready, FORWARD_WAIT_S,
                            reducer_coming=lambda: state.engine_coming or state.restoring,
                            coming_s=FORWARD_COMING_S)

    @app.agent(releases, name="releases")
    async def forward_releases(stream):  # pragma: no cover - exercised against the real broker
        async for event in stream.events():
            msg = event.message
            await send_handoff(Validator.release_record(msg.partition, msg.offset, msg.value))

    async def restore(first_offset: int) -> None:
        """Latest checkpoint, then the hand-off records before ``first_offset``."""
        started = time.monotonic()
        state.restoring = True
        await checkpoint_settled()  # its generation is counted before the topic is read
        reducer, discarded = await load_checkpoint()
        if reducer is None:
            reducer = Reducer(settings.topic_events)
        start = reducer.handoff_next
        if start < first_offset:
            consumer = AIOKafkaConsumer(enable_auto_commit=False, group_id=None,
                                        **settings.aiokafka_kwargs())
            await consumer.start()
            try:
                consumer.assign([handoff_tp])
                earliest = (await consumer.beginning_offsets([handoff_tp]))[handoff_tp]
                if earliest > start:
                    log.warning("hand-off records %d..%d are gone (retention): state "
                                "misses them", start, earliest - 1)
                    start = reducer.handoff_next = earliest
                consumer.seek(handoff_tp, start)
                position = start
                while position < first_offset:
                    batches = await consumer.getmany(handoff_tp, timeout_ms=1000,
                                                     max_records=500)
                    for msg in batches.get(handoff_tp, []):
                        if msg.offset >= first_offset:
                            position = first_offset
                            break
                        await publish(reducer.apply(msg.value, msg.offset, state.forwarded))
                        position = msg.offset + 1
            finally:
                await consumer.stop()
        if discarded:
            # replace the unusable checkpoint now, not after the next interval: a worker
            # that stops before then would rebuild everything again
            try:
                await save_checkpoint(reducer)
            except Exception as exc:  # noqa: BLE001 - the state is sound; the next one retries
                log.warning("checkpoint after the rebuild failed, retried after the next "
                            "record: %s", type(exc).__name__)
                state.last_checkpoint_wall = float("-inf")
        state.reducer = reducer
        state.reducer_ready = True
        state.restoring = False
        state.recovered_in_s = time.monotonic() - started
        log.info("reducer ready at hand-off offset %d after %.2f s", reducer.handoff_next,
                 state.recovered_in_s)

    async def load_checkpoint() -> tuple[Reducer | None, bool]:
        """The reducer of the latest usable checkpoint (None: start empty), and whether
        a checkpoint was there but discarded."""
        consumer = AIOKafkaConsumer(enable_auto_commit=False, group_id=None,
                                    fetch_max_bytes=64 * 1024 * 1024,
                                    max_partition_fetch_bytes=16 * 1024 * 1024,
                                    **settings.aiokafka_kwargs())
        await consumer.start()
        try:
            tp = TopicPartition(checkpoints.get_topic_name(), 0)
            if tp.topic not in await consumer.topics():
                return None, False
            consumer.assign([tp])
            await consumer.seek_to_beginning(tp)
            end = (await consumer.end_offsets([tp]))[tp]
            values: dict[bytes, bytes] = {}
            position = await consumer.position(tp)
            while position < end:
                batches = await consumer.getmany(tp, timeout_ms=1000)
                for msg in batches.get(tp, []):
                    if msg.key is not None:
                        if msg.value is None:
                            values.pop(msg.key, None)
                        else:
                            values[msg.key] = msg.value
                position = await consumer.position(tp)
        finally:
            await consumer.stop()
        loaded = read_checkpoint(values)
        # the next save goes above every generation in the topic, and tombstones every
        # chunk record there (a discarded generation's too)
        state.checkpoint_generation = loaded.generation
        state.checkpoint_chunks = 0
        state.stale_chunks = set(loaded.chunk_keys)
        if loaded.discarded is not None:
            log.warning("%s: rebuilding state from the hand-off topic", loaded.discarded)
            metrics.inc("exw_checkpoints_discarded_total", reason=loaded.reason or "unreadable")
            return None, True
        return loaded.reducer, False

    async def save_checkpoint(reducer: Reducer,
                              snapshot: Coroutine[Any, Any, bytes] | None = None) -> None:
        started = time.monotonic()
        blob = await (snapshot if snapshot is not None else snapshot_in_child(reducer))
        generation = state.checkpoint_generation + 1
        chunks, manifest = split_blob(blob, generation)
        topic = checkpoints.get_topic_name()
        futures = [await _producer_send(app, topic, key, value) for key, value in chunks]
        await flush(futures)
        await (await _producer_send(app, topic, *manifest))
        # drop the previous generation's chunks, and those the topic held when the state
        # was restored (compaction removes them)
        old = state.checkpoint_generation
        stale = set(state.stale_chunks)
        stale.update(f"chunk-{old}-{i}".encode() for i in range(state.checkpoint_chunks))
        stale.difference_update(key for key, _ in chunks)
        if stale:
            futures = [await _producer_send(app, topic, key, None) for key in sorted(stale)]
            await flush(futures)
        state.stale_chunks = set()
        state.checkpoint_generation = generation
        state.checkpoint_chunks = len(chunks)
        state.checkpoint_bytes = len(blob)
        state.checkpoint_seconds = time.monotonic() - started
        if snapshot is None:  # (a checkpoint beside the engine counts from its fork)
            state.last_checkpoint_wall = time.monotonic()

    @app.agent(handoff, name="detect", concurrency=1)
    async def detect(stream):  # pragma: no cover - exercised against the real broker
        async for event in stream.events():
            msg = event.message
            if state.reducer is None or msg.offset > state.reducer.handoff_next:
                # first record here, or another worker ran the engine meanwhile
                async with state.restore_lock:
                    if state.reducer is None or msg.offset > state.reducer.handoff_next:
                        await restore(msg.offset)
            reducer = state.reducer
            assert reducer is not None
            started = time.perf_counter()
            out = reducer.apply(msg.value, msg.offset, state.forwarded)
            await publish(out)
            metrics.observe("exw_detect_batch_seconds", time.perf_counter() - started)
            if state.checkpoint_task is None and \
                    time.monotonic() - state.last_checkpoint_wall >= settings.checkpoint_interval_s:
                # the state is forked here, after this record's outputs were published
                # (a checkpoint never holds an output that was not), and written beside
                # the engine, which goes on with the next records; the interval counts
                # from the fork, so a restore re-reads at most an interval and one
                # checkpoint's time of hand-off records
                state.last_checkpoint_wall = time.monotonic()
                snapshot = snapshot_in_child(reducer)
                state.checkpoint_task = asyncio.ensure_future(checkpoint_beside(reducer, snapshot))

    async def checkpoint_beside(reducer: Reducer, snapshot: Coroutine[Any, Any, bytes]) -> None:
        try:
            await save_checkpoint(reducer, snapshot)
        except Exception as exc:  # noqa: BLE001 - the state is sound; the next interval retries
            log.warning("checkpoint failed, retried after the next interval: %s: %s",
                        type(exc).__name__, exc)
            state.last_checkpoint_wall = time.monotonic()
        finally:
            state.checkpoint_task = None

    async def checkpoint_settled() -> None:
        """Wait for a checkpoint being written (before the state is replaced)."""
        task = state.checkpoint_task
        if task is not None:
            await asyncio.wait([task])

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def on_revoked(app, revoked, **kwargs):  # pragma: no cover
        # The in-memory engine is kept: if the hand-off partition comes back and
        # nobody else moved it on, the records between the committed offset
        # and ours are skipped; if somebody did, the offset gap triggers a
        # restore from the checkpoints.
        if any(tp.topic == handoff_name for tp in revoked):
            state.reducer_ready = False

    @app.on_partitions_assigned.connect  # type: ignore[arg-type]
    async def on_assigned(app, assigned, **kwargs):  # pragma: no cover
        state.engine_coming = False
        if any(tp.topic == handoff_name for tp in assigned):
            if state.reducer is not None:
                state.reducer_ready = True
            else:
                # recover now, not at the first new record: /readyz says 503 until done
                state.restoring = True
                asyncio.ensure_future(restore_on_assignment())

    async def restore_on_assignment() -> None:  # pragma: no cover
        try:
            async with state.restore_lock:
                if state.reducer is not None:
                    return
                admin = AIOKafkaAdminClient(**settings.aiokafka_kwargs())
                await admin.start()
                try:
                    offsets = await admin.list_consumer_group_offsets(
                        settings.app_id, partitions=[handoff_tp])
                finally:
                    await admin.close()
                committed = offsets.get(handoff_tp)
                first = committed.offset if committed is not None and committed.offset >= 0 \
                    else 0
                await restore(first)
        except Exception as exc:  # noqa: BLE001 - the first record retries the restore
            log.warning("restore on assignment failed, will retry on the next record: %s: %s",
                        type(exc).__name__, exc)
            state.restoring = False

    _install_views(app, state)
    return app


def _install_views(app: faust.App, state: WorkerState) -> None:
    @app.page("/healthz")
    async def healthz(web, request):  # pragma: no cover
        return web.json({"status": "ok", "detector_version": DETECTOR_VERSION})

    @app.page("/readyz")
    async def readyz(web, request):  # pragma: no cover
        handoff = state.settings.internal_topic("handoff")
        assignment = app.consumer.assignment() if app.consumer else set()
        owns_engine = any(tp.topic == handoff for tp in assignment)
        validating = state.validate_consumer
        events = len(validating.assignment()) if validating is not None else 0
        ready = bool(assignment) and validating is not None and not state.restoring and (
            not owns_engine or state.reducer_ready or state.reducer is None)
        body = {"ready": ready, "assigned_partitions": len(assignment),
                "events_partitions": events,
                "runs_engine": owns_engine and state.reducer_ready,
                "restoring": state.restoring, "recovered_in_s": state.recovered_in_s}
        return web.json(body, status=200 if ready else 503)

    @app.page("/metrics")
    async def metrics(web, request):  # pragma: no cover
        snapshot = gauges(state)
        return web.bytes(state.metrics.render(snapshot),
                         content_type="text/plain; version=0.0.4")


def gauges(state: WorkerState) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Point-in-time gauges for /metrics."""
    out: dict[str, list[tuple[dict[str, str], float]]] = {
        "exw_validated_dead_letters": [({}, float(state.validator.dead))],
        "exw_raw_text_fields_dropped_total": [({}, float(state.validator.raw_text_dropped))],
        "exw_engine_owner": [({}, 1.0 if state.reducer_ready else 0.0)],
        "exw_checkpoint_bytes": [({}, float(state.checkpoint_bytes))],
        "exw_checkpoint_seconds": [({}, state.checkpoint_seconds)],
        # event batches the reducer read: taken from this worker's stage 1 (not decoded
        # again), decoded, and forwarded but dropped unread past the holding limit
        "exw_handoff_batches_total": [
            ({"read": "local"}, float(state.forwarded.hits)),
            ({"read": "decoded"}, float(state.forwarded.misses)),
            ({"read": "evicted"}, float(state.forwarded.evicted))],
    }
    reducer = state.reducer
    if reducer is not None and state.reducer_ready:
        engine = reducer.engine
        out["exw_tracked_entities"] = [({"type": "account"}, float(engine.tracked_accounts()))] + [
            ({"type": kind}, float(n)) for kind, n in engine.tracked_groups().items()]
        out["exw_events_processed_total"] = [({}, float(engine.applied_events()))]
        out["exw_events_buffered"] = [({}, float(engine.buffered_events()))]
        watermark = engine.watermark()
        out["exw_engine_watermark_seconds"] = [({}, max(watermark, 0.0))]
        if watermark > 0:
            # how far event time (plus the lateness the engine waits) trails the clock:
            # the delay from an API call to its evaluation, for live traffic
            out["exw_event_time_lag_seconds"] = [
                ({}, max(0.0, time.time() - watermark - engine.config.lateness_s))]
        counts: Counter[str] = Counter(engine.stats.dead_letters)
        out["exw_engine_dead_letters"] = [({"reason": r}, float(n)) for r, n in sorted(counts.items())]
    return out


def prepare_topics(settings: Settings) -> list[str]:
    """Create the public and internal topics that are missing; return those created."""
    created = ensure_topics(settings)
    created += ensure_topics(
        settings,
        {settings.internal_topic("handoff"): 1, settings.internal_topic("checkpoints"): 1},
        configs={settings.internal_topic("handoff"): {"retention.ms": str(7 * 86400 * 1000)},
                 settings.internal_topic("checkpoints"): {"cleanup.policy": "compact",
                                                          "min.cleanable.dirty.ratio": "0.1"}})
    return created


def run(settings: Settings | None = None, loglevel: str = "info") -> None:
    """Start a worker in this process (blocks until stopped)."""
    settings = settings or load_settings()
    created = prepare_topics(settings)
    if created:
        log.warning("created topics: %s", ", ".join(created))
    app = create_app(settings)
    worker = faust.Worker(app, loglevel=loglevel, quiet=True)
    worker.execute_from_commandline()
