"""The real broker's answer to a second live consumer under a static member's name
(error 82, FENCED_INSTANCE_ID) reaches streams.membership as a fencing, whichever
request it comes back on, and the worker's handler is given the group and the name."""

from __future__ import annotations

import asyncio
import uuid

from aiokafka import AIOKafkaConsumer
from aiokafka.consumer.group_coordinator import GroupCoordinator

from streams import membership

from .conftest import create_topics


def test_a_second_consumer_under_one_name_fences_the_first(kafka_bootstrap, monkeypatch):
    monkeypatch.setattr(GroupCoordinator, "_push_error_to_user",
                        GroupCoordinator._push_error_to_user)  # restored after the test
    topic, group = f"it-fence-{uuid.uuid4().hex[:8]}", f"it-fence-{uuid.uuid4().hex[:8]}"
    create_topics(kafka_bootstrap, {topic: 2})
    fenced: list = []
    others: list = []
    membership.install(on_fenced=lambda *a: fenced.append(a),
                       on_fatal=lambda *a: others.append(a))

    async def run() -> None:
        def consumer() -> AIOKafkaConsumer:
            # (heartbeats far apart: the first learns of its replacement by rejoining,
            # not from a heartbeat, which this client sends without the name and so is
            # answered UNKNOWN_MEMBER_ID)
            c = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=group,
                                 group_instance_id="same-name", session_timeout_ms=30_000,
                                 heartbeat_interval_ms=9_000, enable_auto_commit=False)
            c.subscribe([topic])
            return c

        first, second = consumer(), consumer()
        await first.start()
        try:
            while not first.assignment():
                await first.getmany(timeout_ms=200)
            await second.start()
            while not second.assignment():
                await second.getmany(timeout_ms=200)
            # the first joins again under its old member id, which the name no longer has
            first._coordinator.request_rejoin()
            deadline = asyncio.get_running_loop().time() + 20
            while not fenced and asyncio.get_running_loop().time() < deadline:
                await first.getmany(timeout_ms=200)
        finally:
            await second.stop()
            await first.stop()

    asyncio.run(run())
    assert fenced, "no fencing reported within 20 s"
    assert {(g, name) for g, name, _ in fenced} == {(group, "same-name")}
    assert all(membership.classify(exc) == "fenced" for _, _, exc in fenced)
    assert others == []
