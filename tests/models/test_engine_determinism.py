"""Same input, same alerts: across runs, arrival orders within the lateness bound,
and a crash-and-restart from a pickled checkpoint."""

from __future__ import annotations

import pickle
import random

import pytest

from extraction_watch.simulator import simulate
from models.engine import Engine


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim")
    simulate("small", 21, out, hours=14.0)
    events = (out / "events.jsonl").read_bytes().splitlines()
    releases = (out / "releases.jsonl").read_bytes().splitlines()
    return events, releases


def _alerts(engine: Engine, events, releases, checkpoint_at: int | None = None):
    for line in releases:
        engine.add_release(line)
    alerts = []
    for i, line in enumerate(events):
        if checkpoint_at is not None and i == checkpoint_at:
            engine = pickle.loads(pickle.dumps(engine))  # crash, restore the checkpoint
        alerts.extend(rec for kind, rec in engine.process(line) if kind == "alert")
    alerts.extend(rec for kind, rec in engine.flush() if kind == "alert")
    return alerts


def test_the_run_raises_alerts(small_run):
    alerts = _alerts(Engine(), *small_run)
    assert {a["kind"] for a in alerts} >= {"cluster"}
    assert all(a["emitted_at"] is None for a in alerts)


def test_same_input_same_alerts(small_run):
    assert _alerts(Engine(), *small_run) == _alerts(Engine(), *small_run)


def test_arrival_order_within_lateness_does_not_change_alerts(small_run):
    events, releases = small_run
    rng = random.Random(3)
    shuffled = []
    for start in range(0, len(events), 40):  # 40 lines span well under the 5 min lateness
        block = events[start:start + 40]
        rng.shuffle(block)
        shuffled.extend(block)
    assert shuffled != events
    assert _alerts(Engine(), shuffled, releases) == _alerts(Engine(), events, releases)


def test_restart_from_checkpoint_gives_the_same_alerts(small_run):
    events, releases = small_run
    baseline = _alerts(Engine(), events, releases)
    restarted = _alerts(Engine(), events, releases, checkpoint_at=len(events) // 2)
    assert restarted == baseline
