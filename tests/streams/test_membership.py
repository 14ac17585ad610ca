"""Coordinator errors: a fencing (broker error 82) and a refusal end the worker with
a reason; anything else makes the coordinator rejoin, instead of stalling until an
application that never asks reads it (Faust's consumer never asks)."""

from __future__ import annotations

import asyncio

import aiokafka.errors as kafka_errors
import pytest
from aiokafka.consumer.group_coordinator import GroupCoordinator

from streams import membership
from streams.membership import FencedInstanceIdError, classify


def test_error_82_has_a_class():
    assert kafka_errors.for_code(82) is FencedInstanceIdError
    assert not FencedInstanceIdError.retriable


@pytest.mark.parametrize("exc", [
    FencedInstanceIdError(),
    # how aiokafka re-raises what JoinGroup and SyncGroup answer with
    kafka_errors.KafkaError(repr(kafka_errors.for_code(82)())),
    # and what the heartbeat task raises
    kafka_errors.KafkaError(f"Unexpected exception in heartbeat task: "
                            f"{kafka_errors.for_code(82)()!r}"),
])
def test_fencing_is_recognised_in_every_form(exc):
    assert classify(exc) == "fenced"


def test_refusals_are_fatal_and_the_rest_transient():
    assert classify(kafka_errors.GroupAuthorizationFailedError("g")) == "fatal"
    assert classify(kafka_errors.InvalidSessionTimeoutError()) == "fatal"
    assert classify(kafka_errors.KafkaError(repr(kafka_errors.UnknownError()))) == "transient"
    assert classify(kafka_errors.RequestTimedOutError()) == "transient"


class _Coordinator:
    group_id = "g"
    _group_instance_id = "worker-1"

    def __init__(self) -> None:
        self.rejoins = 0

    def request_rejoin(self) -> None:
        self.rejoins += 1


@pytest.fixture
def calls(monkeypatch):
    monkeypatch.setattr(GroupCoordinator, "_push_error_to_user",
                        GroupCoordinator._push_error_to_user)  # restored after the test
    monkeypatch.setattr(membership, "RETRY_PAUSE_S", 0.0)
    seen: list = []
    membership.install(on_fenced=lambda *a: seen.append(("fenced", *a)),
                       on_fatal=lambda *a: seen.append(("fatal", *a)))
    return seen


def _push(coordinator, exc) -> None:
    asyncio.run(GroupCoordinator._push_error_to_user(coordinator, exc))


def test_a_fenced_member_is_handed_to_the_worker(calls):
    coordinator, exc = _Coordinator(), kafka_errors.KafkaError(repr(FencedInstanceIdError()))
    _push(coordinator, exc)
    assert calls == [("fenced", "g", "worker-1", exc)]
    assert coordinator.rejoins == 0


def test_a_refusal_is_handed_to_the_worker(calls):
    coordinator, exc = _Coordinator(), kafka_errors.GroupAuthorizationFailedError("g")
    _push(coordinator, exc)
    assert calls == [("fatal", "g", "worker-1", exc)]


def test_anything_else_is_logged_and_the_group_rejoined(calls, caplog):
    coordinator = _Coordinator()
    _push(coordinator, kafka_errors.KafkaError(repr(kafka_errors.UnknownError())))
    assert calls == []
    assert coordinator.rejoins == 1
    assert "consumer group g: the coordinator reported KafkaError" in caplog.text
