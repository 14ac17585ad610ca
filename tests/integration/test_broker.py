"""The test broker and the two Kafka clients we depend on work together.

kafka-python (the producer/replay tools) and aiokafka (under faust-streaming)
against the broker from deploy/kafka: produce + consume round trips,
consumer-group consumption, offsets_for_times (replay by time range), records
well above Kafka's 1 MiB default, and partition counts.
"""

from __future__ import annotations

import asyncio
import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka import TopicPartition as AioTopicPartition
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition

from tests.integration.conftest import MAX_RECORD_BYTES, consume_all, create_topics

T0 = 1_735_689_600_000  # 2025-01-01T00:00:00Z in ms; past timestamps are always accepted
BIG = 12 * 1024 * 1024  # above the 1 MiB default, below the broker's 16 MiB limit
# kafka-python checksums record batches (CRC32C) in pure Python, about 0.13 s per
# MiB each way unless the optional `crc32c` package is installed: keep its big
# record smaller. aiokafka has a C extension for it.
BIG_KP = 3 * 1024 * 1024


def test_kafka_python_round_trip(kafka_bootstrap: str, unique_topics: str) -> None:
    topic = f"{unique_topics}events"
    create_topics(kafka_bootstrap, {topic: 4})
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all",
                             max_request_size=MAX_RECORD_BYTES)
    try:
        for i in range(40):
            producer.send(topic, key=f"acct-{i % 7}".encode(), value=f"v{i}".encode(),
                          headers=[("schema", b"api_call/1")], timestamp_ms=T0 + i * 1000)
        producer.send(topic, key=b"big", value=b"x" * BIG_KP, timestamp_ms=T0).get(timeout=60)
        producer.flush(timeout=60)
    finally:
        producer.close()

    records = consume_all(kafka_bootstrap, topic)

    small = [r for r in records if r.key != b"big"]
    assert sorted(r.value or b"" for r in small) == sorted(f"v{i}".encode() for i in range(40))
    assert all(r.headers == [("schema", b"api_call/1")] for r in small)
    assert {r.timestamp for r in small} == {T0 + i * 1000 for i in range(40)}
    by_key: dict[bytes | None, set[int]] = {}
    for r in small:
        by_key.setdefault(r.key, set()).add(r.partition)
    assert all(len(parts) == 1 for parts in by_key.values()), "a key spread over partitions"
    assert len({r.partition for r in small}) > 1, "7 keys all landed on one partition"
    (big,) = [r for r in records if r.key == b"big"]
    assert big.value is not None and len(big.value) == BIG_KP
    # per partition, offsets come back in order and without gaps
    for p in {r.partition for r in records}:
        offsets = [r.offset for r in records if r.partition == p]
        assert offsets == list(range(len(offsets)))


def test_kafka_python_consumer_group(kafka_bootstrap: str, unique_topics: str) -> None:
    topic, group = f"{unique_topics}events", f"{unique_topics}group"
    create_topics(kafka_bootstrap, {topic: 4})
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    for i in range(20):
        producer.send(topic, key=str(i).encode(), value=str(i).encode())
    producer.flush(timeout=30)
    producer.close()

    consumer = KafkaConsumer(topic, bootstrap_servers=kafka_bootstrap, group_id=group,
                             auto_offset_reset="earliest", enable_auto_commit=False)
    try:
        seen: list[bytes] = []
        deadline = time.monotonic() + 30
        while len(seen) < 20 and time.monotonic() < deadline:
            for recs in consumer.poll(timeout_ms=500).values():
                seen += [r.value for r in recs]
        consumer.commit()
        assert sorted(seen) == sorted(str(i).encode() for i in range(20))
        committed = {tp: consumer.committed(tp) for tp in consumer.assignment()}
        assert sum(c or 0 for c in committed.values()) == 20
    finally:
        consumer.close()


def test_aiokafka_round_trip_getmany(kafka_bootstrap: str, unique_topics: str) -> None:
    topic, group = f"{unique_topics}events", f"{unique_topics}group"
    create_topics(kafka_bootstrap, {topic: 4})

    async def run() -> tuple[list[tuple[bytes | None, bytes | None, int]], list[bytes | None]]:
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all",
                                    max_request_size=MAX_RECORD_BYTES)
        await producer.start()
        try:
            for i in range(30):
                await producer.send(topic, key=f"k{i % 5}".encode(), value=f"v{i}".encode(),
                                    headers=[("n", str(i).encode())],
                                    timestamp_ms=T0 + i)
            await producer.send_and_wait(topic, key=b"big", value=b"y" * BIG)
        finally:
            await producer.stop()

        # assigned partitions, no group
        consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, enable_auto_commit=False,
                                    max_partition_fetch_bytes=MAX_RECORD_BYTES + 1024 * 1024)
        await consumer.start()
        got: list[tuple[bytes | None, bytes | None, int]] = []
        try:
            tps = [AioTopicPartition(topic, p) for p in range(4)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            deadline = time.monotonic() + 30
            while len(got) < 31 and time.monotonic() < deadline:
                batch = await consumer.getmany(timeout_ms=500)
                got += [(r.key, r.value, r.timestamp) for recs in batch.values() for r in recs]
        finally:
            await consumer.stop()

        # subscribed through a consumer group (join, sync, commit), as Faust does
        group_consumer = AIOKafkaConsumer(topic, bootstrap_servers=kafka_bootstrap,
                                          group_id=group, auto_offset_reset="earliest",
                                          enable_auto_commit=False,
                                          max_partition_fetch_bytes=MAX_RECORD_BYTES + 1024 * 1024)
        await group_consumer.start()
        keys: list[bytes | None] = []
        try:
            deadline = time.monotonic() + 30
            while len(keys) < 31 and time.monotonic() < deadline:
                batch = await group_consumer.getmany(timeout_ms=500)
                keys += [r.key for recs in batch.values() for r in recs]
            await group_consumer.commit()
        finally:
            await group_consumer.stop()
        return got, keys

    got, group_keys = asyncio.run(run())

    small = [g for g in got if g[0] != b"big"]
    assert sorted(v or b"" for _, v, _ in small) == sorted(f"v{i}".encode() for i in range(30))
    assert {ts for *_, ts in small} == {T0 + i for i in range(30)}
    assert [len(v or b"") for k, v, _ in got if k == b"big"] == [BIG]
    assert len(group_keys) == 31


def test_offsets_for_times(kafka_bootstrap: str, unique_topics: str) -> None:
    """Replay by time range: the first offset at or after a timestamp, per partition."""
    topic = f"{unique_topics}events"
    create_topics(kafka_bootstrap, {topic: 2})
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    for i in range(10):  # partition p gets timestamps T0 + (p*100 + i) seconds
        for p in (0, 1):
            producer.send(topic, partition=p, value=b"%d" % i,
                          timestamp_ms=T0 + (p * 100 + i) * 1000)
    producer.flush(timeout=30)
    producer.close()
    tp0, tp1 = TopicPartition(topic, 0), TopicPartition(topic, 1)
    target = T0 + 5_500  # between the 6th and 7th records of partition 0

    consumer = KafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=None)
    try:
        found = consumer.offsets_for_times({tp0: target, tp1: target})
        assert found[tp0] is not None and (found[tp0].offset, found[tp0].timestamp) == (6, T0 + 6000)
        assert found[tp1] is not None and (found[tp1].offset, found[tp1].timestamp) == (0, T0 + 100_000)
        late = consumer.offsets_for_times({tp0: T0 + 10**9})
        assert late[tp0] is None  # nothing that late: replay of that range is empty
    finally:
        consumer.close()

    async def aio() -> tuple[int | None, int | None]:
        c = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap)
        await c.start()
        try:
            res = await c.offsets_for_times({AioTopicPartition(topic, 0): target,
                                             AioTopicPartition(topic, 1): T0 + 10**9})
        finally:
            await c.stop()
        hit, miss = res[AioTopicPartition(topic, 0)], res[AioTopicPartition(topic, 1)]
        return (hit.offset if hit else None), (miss.offset if miss else None)

    assert asyncio.run(aio()) == (6, None)


def test_topic_created_with_four_partitions_has_four(
        kafka_bootstrap: str, unique_topics: str) -> None:
    topic = f"{unique_topics}events"
    create_topics(kafka_bootstrap, {topic: 4})
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        (described,) = admin.describe_topics([topic])
        assert described["error_code"] == 0
        assert sorted(p["partition_index"] for p in described["partitions"]) == [0, 1, 2, 3]
        assert all(p["leader_id"] >= 0 for p in described["partitions"])
    finally:
        admin.close()
    consumer = KafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=None)
    try:
        assert consumer.partitions_for_topic(topic) == {0, 1, 2, 3}
    finally:
        consumer.close()
