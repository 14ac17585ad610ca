"""Stage 1 of the worker when a rebalance takes a partition away mid-batch.

Found by tests/reliability (a second worker joining while the first was
forwarding a batch): the batch's partitions were committed as they were when
it was fetched, aiokafka raised ``IllegalStateError: Partition ... is not
assigned`` (and ``highwater`` asserts), the ``validate`` task died and took the
whole worker down. Here the same situation on the real broker: a consumer
holding both partitions of a topic, a second member joining, then the batch
fetched before the rebalance is committed.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import IllegalStateError
from kafka import KafkaProducer

from streams.worker import commit_assigned, highwater_if_assigned

from .conftest import create_topics


async def _until(condition, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.1)


def test_a_partition_taken_away_mid_batch_is_not_committed_and_not_fatal(
        kafka_bootstrap, unique_topics):
    topic, group = f"{unique_topics}calls", f"{unique_topics}validate"
    create_topics(kafka_bootstrap, {topic: 2})
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    for p in (0, 1):
        for i in range(3):
            producer.send(topic, value=b"x%d" % i, partition=p)
    producer.flush()
    producer.close()
    tps = [TopicPartition(topic, 0), TopicPartition(topic, 1)]

    def member() -> AIOKafkaConsumer:
        return AIOKafkaConsumer(topic, group_id=group, bootstrap_servers=kafka_bootstrap,
                                enable_auto_commit=False, auto_offset_reset="earliest",
                                heartbeat_interval_ms=300, session_timeout_ms=10_000)

    async def scenario() -> None:
        first = member()
        await first.start()
        second = member()
        try:
            batch: dict = {}
            while sum(len(v) for v in batch.values()) < 6:  # a batch from both partitions
                for tp, messages in (await first.getmany(timeout_ms=500)).items():
                    batch.setdefault(tp, []).extend(messages)
            offsets = {tp: messages[-1].offset + 1 for tp, messages in batch.items()}
            assert set(offsets) == set(tps) and set(first.assignment()) == set(tps)
            # a second worker joins while the batch is being forwarded
            await second.start()

            async def poll_second() -> None:
                while True:
                    await second.getmany(timeout_ms=200)

            polling = asyncio.ensure_future(poll_second())
            await _until(lambda: len(first.assignment()) == 1 and len(second.assignment()) == 1)
            (kept,) = first.assignment()
            (gone,) = set(tps) - {kept}
            # what the worker used to do: commit the whole batch (and read the high
            # watermark of every partition in it)
            with pytest.raises(IllegalStateError, match="is not assigned"):
                await first.commit(offsets)
            with pytest.raises(AssertionError):
                first.highwater(gone)
            # what it does now
            assert highwater_if_assigned(first, gone) is None
            while highwater_if_assigned(first, kept) is None:  # known after a fetch
                await first.getmany(timeout_ms=200)
            assert highwater_if_assigned(first, kept) == 3
            assert await commit_assigned(first, offsets) == {kept: 3}
            assert await first.committed(kept) == 3
            assert await first.committed(gone) is None  # left to its new owner
            polling.cancel()
        finally:
            await second.stop()
            await first.stop()

    asyncio.run(scenario())
