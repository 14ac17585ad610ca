"""Create the pipeline's Kafka topics and read their partition counts.

The worker, ``extraction-watch produce --create-topics`` and the tests call
:func:`ensure_topics` before they use a topic. It only creates what is
missing and treats "already exists" as success, so two processes starting at
the same time do not trip over each other. Topics are never altered or
deleted here.
"""

from __future__ import annotations

from collections.abc import Mapping

import kafka.errors as kafka_errors
from kafka.admin import KafkaAdminClient

from streams.config import Settings

__all__ = ["default_topics", "ensure_topics", "partitions_for"]


def default_topics(settings: Settings) -> dict[str, int]:
    """The four public topics and their partition counts.

    Releases are rare and their order matters, so that topic has one partition.

    >>> default_topics(Settings())
    {'api-calls': 4, 'model-releases': 1, 'alerts': 4, 'api-calls.dlq': 4}
    """
    n = settings.topic_partitions
    return {settings.topic_events: n, settings.topic_releases: 1,
            settings.topic_alerts: n, settings.topic_dead_letters: n}


def _admin(settings: Settings, timeout_s: float) -> KafkaAdminClient:
    timeout_ms = int(timeout_s * 1000)
    return KafkaAdminClient(client_id=f"{settings.app_id}-admin",
                            request_timeout_ms=timeout_ms,
                            **settings.kafka_python_kwargs())


def ensure_topics(settings: Settings, topics: Mapping[str, int] | None = None,
                  configs: Mapping[str, Mapping[str, str]] | None = None,
                  timeout_s: float = 30) -> list[str]:
    """Create the topics in ``topics`` (name -> partitions) that do not exist yet.

    ``topics`` defaults to :func:`default_topics`. Replication is
    ``settings.topic_replication``; ``configs`` maps a topic name to topic
    configs (e.g. ``{"retention.ms": "-1"}``) applied only when this call
    creates it. A topic created concurrently by another process counts as
    existing. Waits until every requested topic has a leader for each
    partition, then returns the names this call created.
    """
    wanted = dict(default_topics(settings) if topics is None else topics)
    if not wanted:
        return []
    configs = configs or {}
    admin = _admin(settings, timeout_s)
    try:
        existing = set(admin.list_topics())
        missing = {name: n for name, n in wanted.items() if name not in existing}
        created: list[str] = []
        if missing:
            request = {name: {"num_partitions": n,
                              "replication_factor": settings.topic_replication,
                              "configs": dict(configs.get(name, {}))}
                       for name, n in missing.items()}
            response = admin.create_topics(request, timeout_ms=int(timeout_s * 1000),
                                           raise_errors=False)
            for result in response["topics"]:
                error = kafka_errors.for_code(result["error_code"])
                if error is kafka_errors.NoError:
                    created.append(result["name"])
                elif error is not kafka_errors.TopicAlreadyExistsError:
                    raise error(f"cannot create topic {result['name']!r}: "
                                f"{result.get('error_message') or error.__name__}")
        admin.wait_for_topics(list(wanted), timeout_ms=int(timeout_s * 1000))
        return sorted(created)
    finally:
        admin.close()


def partitions_for(settings: Settings, topic: str, timeout_s: float = 30) -> int:
    """Number of partitions of an existing ``topic``.

    Raises the broker's error (e.g. ``UnknownTopicOrPartitionError``) if the
    topic does not exist.
    """
    admin = _admin(settings, timeout_s)
    try:
        (info,) = admin.describe_topics([topic])
    finally:
        admin.close()
    error = kafka_errors.for_code(info.get("error_code", 0))
    if error is not kafka_errors.NoError:
        raise error(f"cannot describe topic {topic!r}")
    return len(info["partitions"])
