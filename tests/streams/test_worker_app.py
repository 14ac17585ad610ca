"""The worker's Faust app, built without a broker (nothing here connects)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from streams.config import Settings
from streams.worker import create_app


def test_faust_consumer_uses_the_configured_fetch_wait(tmp_path) -> None:
    # Faust hard-codes a 1.5 s fetch wait, which stalled the hand-off topic;
    # create_app replaces it with EXW_FETCH_MAX_WAIT_MS.
    settings = Settings.from_env({"EXW_FETCH_MAX_WAIT_MS": "77", "EXW_DATA_DIR": str(tmp_path),
                                  "EXW_APP_ID": "exw-test-fetch-wait"})
    app = create_app(settings)

    async def build():
        thread = app.consumer._thread
        return thread._create_worker_consumer(app.transport)

    consumer = asyncio.run(build())
    assert consumer._fetch_max_wait_ms == 77
    # building a second app with another value does not stack the patches
    other = create_app(Settings.from_env({"EXW_FETCH_MAX_WAIT_MS": "250",
                                          "EXW_DATA_DIR": str(tmp_path)}))

    async def build_other():
        return other.consumer._thread._create_worker_consumer(other.transport)

    assert asyncio.run(build_other())._fetch_max_wait_ms == 250


RUNBOOK = Path(__file__).resolve().parents[2] / "docs" / "operations.md"


def documented_metrics() -> set[str]:
    """The metric names in the first column of docs/operations.md's metrics table."""
    return set(re.findall(r"^\| `(exw_[a-z0-9_]+)` \|", RUNBOOK.read_text(), re.MULTILINE))


def test_the_runbook_documents_only_metrics_the_worker_has() -> None:
    names = documented_metrics()
    assert len(names) >= 15
    source = "\n".join(p.read_text() for p in (RUNBOOK.parents[1] / "streams").glob("*.py"))
    assert {n for n in names if f'"{n}"' not in source} == set()


def _records(n: int) -> list[bytes]:
    from streams.handoff import Validator
    line = ('{"v": 1, "event_id": "e%d", "ts": "2026-03-06T12:%02d:00Z", "account_id": "a",'
            ' "access_path": "api", "client_ip": "10.0.0.1", "model": "m", "features": [],'
            ' "input_tokens": 1, "output_tokens": 2, "status": 200}')
    validator = Validator("calls")
    out = []
    for i in range(n):
        offsets, calls, _ = validator.validate(0, [(i, (line % (i, i)).encode())])
        out.append(Validator.batch_record(0, offsets, calls, None))
    return out


def test_a_checkpoint_snapshot_is_the_state_at_the_fork() -> None:
    """The child pickles the state as it stood when it was forked, while this
    process goes on applying records."""
    from streams.handoff import Reducer
    from streams.worker import snapshot_in_child

    records = _records(20)
    reducer = Reducer("calls")
    for offset, value in enumerate(records[:10]):
        reducer.apply(value, offset)
    expected = reducer.snapshot()
    pending = snapshot_in_child(reducer)
    for offset, value in enumerate(records[10:], 10):  # the parent goes on meanwhile
        reducer.apply(value, offset)
    blob = asyncio.run(pending)
    restored = Reducer.restore(blob)
    assert restored.handoff_next == 10 and reducer.handoff_next == 20
    assert restored.engine.stats.received == 10
    assert blob == expected


def test_a_failed_snapshot_child_raises_here(monkeypatch) -> None:
    from streams.handoff import Reducer
    from streams.worker import snapshot_in_child

    def broken(self, out):  # runs in the child
        raise RuntimeError("cannot pickle")

    monkeypatch.setattr(Reducer, "write_snapshot", broken)
    pending = snapshot_in_child(Reducer("calls"))
    with pytest.raises(RuntimeError, match="exited with 1"):
        asyncio.run(pending)


def test_a_static_member_assigned_over_and_over_sees_a_name_clash(tmp_path) -> None:
    from streams.worker import NAME_CLASH_ASSIGNMENTS, NAME_CLASH_WINDOW_S, WorkerState

    env = {"EXW_DATA_DIR": str(tmp_path)}
    named = WorkerState(Settings.from_env({**env, "EXW_GROUP_INSTANCE_ID": "w-1"}))
    # a few assignments (workers coming and going), then a burst: once a second
    assert not any(named.assignment_clash(t) for t in (0.0, 30.0, 90.0))
    burst = [named.assignment_clash(200.0 + i) for i in range(NAME_CLASH_ASSIGNMENTS)]
    assert burst == [False] * (NAME_CLASH_ASSIGNMENTS - 1) + [True]  # the tenth in 9 s
    # as many assignments spread wider than the window: no clash
    spread = WorkerState(Settings.from_env({**env, "EXW_GROUP_INSTANCE_ID": "w-2"}))
    step = NAME_CLASH_WINDOW_S / (NAME_CLASH_ASSIGNMENTS - 1) + 0.5
    assert not any(spread.assignment_clash(i * step) for i in range(3 * NAME_CLASH_ASSIGNMENTS))
    # a dynamic member never concludes anything from its assignments
    dynamic = WorkerState(Settings.from_env(env))
    assert not any(dynamic.assignment_clash(float(i)) for i in range(3 * NAME_CLASH_ASSIGNMENTS))
