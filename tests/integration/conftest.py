"""Integration tests against a real Apache Kafka broker.

The broker is named by ``EXW_KAFKA_BOOTSTRAP``. ``make test`` starts a
throwaway one (deploy/kafka/with-broker.sh) and sets it; for a quicker loop
keep one running::

    make kafka-up
    export EXW_KAFKA_BOOTSTRAP=127.0.0.1:9092
    .venv/bin/python -m pytest tests/integration

Without the variable the tests fail rather than skip: a skipped integration
suite looks like a passing one.

Every test in this directory gets the ``kafka`` marker. Helpers for tests::

    from tests.integration.conftest import consume_all, create_topics

    def test_x(kafka_bootstrap, unique_topics):
        topic = f"{unique_topics}events"
        create_topics(kafka_bootstrap, {topic: 4})
        ...
        records = consume_all(kafka_bootstrap, topic)
"""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

__all__ = ["BOOTSTRAP_ENV", "ConsumedRecord", "consume_all", "create_topics",
           "delete_topics", "unique_prefix"]

BOOTSTRAP_ENV = "EXW_KAFKA_BOOTSTRAP"
MAX_RECORD_BYTES = 16 * 1024 * 1024  # the test broker's message.max.bytes
_HERE = Path(__file__).resolve().parent


class ConsumedRecord(NamedTuple):
    """One record read back by :func:`consume_all`."""

    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
    partition: int
    offset: int
    timestamp: int  # milliseconds since the epoch


# ------------------------------------------------------------------ collection

def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test under tests/integration with ``kafka``."""
    for item in items:
        if _HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.kafka)


# ------------------------------------------------------------------ fixtures

@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    """The bootstrap servers of the test broker; fails if none is configured or answering."""
    bootstrap = os.environ.get(BOOTSTRAP_ENV, "").strip()
    if not bootstrap:
        pytest.fail(
            f"{BOOTSTRAP_ENV} is not set: these tests need a real Kafka broker. Run them "
            "through `make test` (starts and stops a throwaway broker), or start one with "
            f"`make kafka-up` and `export {BOOTSTRAP_ENV}=127.0.0.1:9092` (see "
            "deploy/kafka/README.md).",
            pytrace=False,
        )
    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000,
                                 bootstrap_timeout_ms=10_000, client_id="exw-tests")
    except KafkaError as exc:
        pytest.fail(f"{BOOTSTRAP_ENV}={bootstrap} but no Kafka broker answers there "
                    f"({type(exc).__name__}: {exc}); is it running (`make kafka-up`)?",
                    pytrace=False)
    admin.close()
    return bootstrap


@pytest.fixture
def unique_topics(request: pytest.FixtureRequest, kafka_bootstrap: str) -> Iterator[str]:
    """A topic-name prefix no other test (or earlier run) uses, ending in ``-``.

    Name topics, consumer groups and Faust app ids ``f"{unique_topics}events"`` and
    so on. Topics starting with the prefix are deleted after the test (best effort).
    """
    prefix = unique_prefix(request.node.name)
    yield prefix
    try:
        delete_topics(kafka_bootstrap, prefix)
    except KafkaError:
        pass


# ------------------------------------------------------------------ helpers

def unique_prefix(label: str = "t") -> str:
    """``it-<label>-<8 hex>-``: a fresh, legal topic-name prefix from any label."""
    slug = re.sub(r"[^a-zA-Z0-9]+", "-", label).strip("-").lower()[:60] or "t"
    return f"it-{slug}-{uuid.uuid4().hex[:8]}-"


def create_topics(bootstrap: str, topics: Mapping[str, int], *,
                  configs: Mapping[str, str] | None = None, timeout_s: float = 30.0) -> None:
    """Create ``{name: partitions}`` (replication factor 1), optionally with topic
    ``configs`` (e.g. ``{"cleanup.policy": "compact"}``), and return once every
    partition has a leader, so that producing right away does not hit
    NOT_LEADER_OR_FOLLOWER retries."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="exw-tests")
    try:
        spec = {name: {"num_partitions": int(n), "replication_factor": 1,
                       "configs": dict(configs or {})}
                for name, n in topics.items()}
        admin.create_topics(spec, timeout_ms=int(timeout_s * 1000), wait_for_metadata=True)
    finally:
        admin.close()


def delete_topics(bootstrap: str, prefix: str) -> list[str]:
    """Delete every topic whose name starts with ``prefix``; return their names."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="exw-tests")
    try:
        names = sorted(t for t in admin.list_topics() if t.startswith(prefix))
        if names:
            admin.delete_topics(names, timeout_ms=30_000)
        return names
    finally:
        admin.close()


def consume_all(bootstrap: str, topic: str, timeout_s: float = 30.0, *,
                isolation_level: str = "read_uncommitted") -> list[ConsumedRecord]:
    """Every record of ``topic`` from the beginning to the end offsets taken at the
    start of the call, ordered by (partition, offset). No consumer group is used
    (nothing is committed). Raises TimeoutError if the end is not reached in time.

    ``isolation_level="read_committed"`` reads only up to the last stable offset
    and hides records of aborted transactions.
    """
    deadline = time.monotonic() + timeout_s
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
        client_id="exw-tests", isolation_level=isolation_level,
        max_partition_fetch_bytes=MAX_RECORD_BYTES + 1024 * 1024,
        fetch_max_bytes=4 * MAX_RECORD_BYTES,
    )
    try:
        partitions = consumer.partitions_for_topic(topic)
        while not partitions:
            if time.monotonic() > deadline:
                raise TimeoutError(f"topic {topic!r} does not exist (no partitions in metadata)")
            time.sleep(0.1)
            partitions = consumer.partitions_for_topic(topic)
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        end = consumer.end_offsets(tps)
        records: list[ConsumedRecord] = []
        pending = {tp for tp in tps if consumer.position(tp) < end[tp]}
        while pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                progress = {tp.partition: f"{consumer.position(tp)}/{end[tp]}" for tp in pending}
                raise TimeoutError(f"consume_all({topic!r}): end offsets not reached in "
                                   f"{timeout_s:.0f} s; partition position/end: {progress}")
            batch: dict[Any, list[Any]] = consumer.poll(
                timeout_ms=int(min(remaining, 1.0) * 1000))
            for tp, recs in batch.items():
                for r in recs:
                    if r.offset < end[tp]:
                        records.append(ConsumedRecord(r.key, r.value, list(r.headers or []),
                                                      r.partition, r.offset, r.timestamp))
            pending = {tp for tp in pending if consumer.position(tp) < end[tp]}
        records.sort(key=lambda r: (r.partition, r.offset))
        return records
    finally:
        consumer.close()
