"""What the worker does when a consumer group's coordinator reports an error.

aiokafka (0.14) hands a coordinator error (from JoinGroup, SyncGroup or the
heartbeat) to the application and then *waits until the application has read
it* before it rejoins the group. Its own ``getmany`` reads it; Faust's consumer
fetches through a lower-level call that never does, so one such error used to
stall Faust's consumer for good: no heartbeat, no rejoin, no log line after the
first, the worker alive and doing nothing (seen in CI: a SyncGroup answered
with error 82).

Error 82, FENCED_INSTANCE_ID, is the broker saying that another live member
joined under this member's ``group.instance.id``. aiokafka has no class for it
(it comes back as ``UnknownError`` inside an untyped ``KafkaError``; see
aio-libs/aiokafka#1186), so one is registered here. Like the Java client, the
worker treats it as fatal: rejoining would take the name back from the other
worker, which would do the same, for ever.

:func:`install` replaces the hand-over with a decision, per error:

* ``fenced``: the caller's ``on_fenced`` (the worker says which setting clashes
  and exits);
* ``fatal`` (authorisation, an invalid group id or session timeout, an
  inconsistent protocol): ``on_fatal``, since retrying cannot help;
* anything else: logged, then the coordinator rejoins the group after a short
  pause (the pause keeps a broker that answers every join with the same
  error from being asked in a tight loop).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import aiokafka.errors as kafka_errors
from aiokafka.consumer.group_coordinator import GroupCoordinator


class FencedInstanceIdError(kafka_errors.BrokerResponseError):
    """Broker error 82: another member joined with this member's group.instance.id."""

    errno = 82
    message = "FENCED_INSTANCE_ID"
    description = ("The broker rejected this consumer's request because another "
                   "consumer with the same group.instance.id has joined the group.")
    retriable = False


# (a later aiokafka that maps 82 itself keeps its own class: the check below
# recognises it by name too)
kafka_errors.kafka_errors.setdefault(FencedInstanceIdError.errno, FencedInstanceIdError)

FATAL = (kafka_errors.GroupAuthorizationFailedError, kafka_errors.InvalidGroupIdError,
         kafka_errors.InconsistentGroupProtocolError, kafka_errors.InvalidSessionTimeoutError,
         kafka_errors.TopicAuthorizationFailedError)
RETRY_PAUSE_S = 1.0

log = logging.getLogger("extraction_watch.membership")

if not callable(getattr(GroupCoordinator, "_push_error_to_user", None)):
    raise ImportError("this aiokafka release has no GroupCoordinator._push_error_to_user; "
                      "streams.membership needs updating")


def classify(exc: BaseException) -> str:
    """``fenced``, ``fatal`` or ``transient``.

    aiokafka wraps an error it does not handle as ``KafkaError(repr(err))``, so a
    fencing is recognised by its class or by its class's name in the message."""
    if type(exc).__name__ == "FencedInstanceIdError" or "FencedInstanceIdError" in str(exc):
        return "fenced"
    if isinstance(exc, FATAL):
        return "fatal"
    return "transient"


Handler = Callable[[str, str | None, BaseException], None]


def install(on_fenced: Handler, on_fatal: Handler) -> None:
    """Route every aiokafka group coordinator's errors in this process through
    :func:`classify`; the handlers get (group id, group instance id, error) and are
    expected not to return (the worker exits)."""

    def push(self: GroupCoordinator, exc: BaseException) -> Any:
        group, name = self.group_id, getattr(self, "_group_instance_id", None)
        kind = classify(exc)
        if kind == "fenced":
            on_fenced(group, name, exc)
        elif kind == "fatal":
            on_fatal(group, name, exc)
        else:
            log.warning("consumer group %s: the coordinator reported %s: %s; rejoining in "
                        "%.0f s", group, type(exc).__name__, exc, RETRY_PAUSE_S)
            # (a failed heartbeat task is replaced by the rejoin, not reported again)
            self.request_rejoin()
        return asyncio.sleep(RETRY_PAUSE_S)

    GroupCoordinator._push_error_to_user = push  # type: ignore[method-assign]
