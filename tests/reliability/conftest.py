"""The reliability suite: the pipeline under faults and bad input, on a real broker.

One size knob, ``EXW_RELIABILITY_SCALE``:

* ``short`` (the default, part of ``make test``): about 40 thousand events,
  2 kills, a 2-second broker outage, at least 2 thousand fuzzed bad payloads;
* ``full`` (``make reliability``): about 500 thousand events, 5 kills, a
  15-second broker outage (longer than the 10-second group sessions), at least
  10 thousand fuzzed bad payloads.

The same tests run at both sizes. Every test here carries the ``reliability``
and ``kafka`` markers (``pytest -m reliability`` selects them). At the end the
figures (load held, faults survived, bad inputs tried, events lost) are
printed, and written as JSON to ``EXW_RELIABILITY_RESULTS`` when it is set
(``make reliability`` sets it to ``bench/results/reliability.json``).
"""

from __future__ import annotations

import datetime
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from bench.common import machine as bench_machine
from tests.integration.conftest import kafka_bootstrap  # noqa: F401 - the shared fixture

_HERE = Path(__file__).resolve().parent
SCALE_ENV = "EXW_RELIABILITY_SCALE"
RESULTS_ENV = "EXW_RELIABILITY_RESULTS"


@dataclass(frozen=True)
class Profile:
    name: str
    scenario: str
    seed: int
    scale: float
    hours: float | None
    bad: int            # at least this many fuzzed bad payloads
    kills: int          # kill -9 of the single worker
    outage_s: float     # the broker stays down this long (plus its shutdown)
    checkpoint_s: float  # EXW_CHECKPOINT_INTERVAL_S of the workers
    timeout_s: float    # for one pipeline run to finish


PROFILES = {
    "short": Profile("short", "small", 11, 1.0, 12.0, bad=2000, kills=2, outage_s=2.0,
                     checkpoint_s=1.0, timeout_s=300.0),
    "full": Profile("full", "default", 11, 0.505, None, bad=10_000, kills=5, outage_s=15.0,
                    checkpoint_s=5.0, timeout_s=900.0),
}

# figures of this session, filled by the tests (see ``record``)
FIGURES: dict[str, Any] = {}
_STARTED = time.monotonic()
_SPENT: dict[str, float] = {}  # seconds in this directory's tests, by test name


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.reliability)
            item.add_marker(pytest.mark.kafka)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Time spent here (setup, call and teardown), to say what the suite adds to a run."""
    if "tests/reliability/" in report.nodeid.replace("\\", "/"):
        name = report.nodeid.rpartition("::")[2]
        _SPENT[name] = _SPENT.get(name, 0.0) + report.duration


@pytest.fixture(scope="session")
def profile() -> Profile:
    name = os.environ.get(SCALE_ENV, "short").strip() or "short"
    if name not in PROFILES:
        pytest.fail(f"{SCALE_ENV}={name!r}: use one of {', '.join(PROFILES)}", pytrace=False)
    FIGURES["scale"] = name
    return PROFILES[name]


def record(section: str, values: dict[str, Any]) -> None:
    """Keep figures for the summary at the end of the session (dicts one level down
    are merged, so several tests can add to one run's figures)."""
    target = FIGURES.setdefault(section, {})
    for key, value in values.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            target[key].update(value)
        else:
            target[key] = value


def _totals() -> dict[str, Any]:
    runs = FIGURES.get("runs", {})
    return {
        "events_lost": sum(r.get("events_lost", 0) for r in runs.values()),
        "events_through_workers": sum(r.get("events", 0) for r in runs.values()),
        "worker_kills": sum(r.get("faults", {}).get("worker_kill_9", 0) for r in runs.values()),
        "broker_restarts": sum(r.get("faults", {}).get("broker_restart", 0)
                               for r in runs.values()),
        "bad_inputs_tried": FIGURES.get("dataset", {}).get("bad", 0),
    }


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if "runs" not in FIGURES and "dataset" not in FIGURES:
        return
    FIGURES["totals"] = _totals()
    FIGURES["session_wall_s"] = round(time.monotonic() - _STARTED, 1)
    FIGURES["reliability_tests_s"] = round(sum(_SPENT.values()), 1)
    FIGURES["test_seconds"] = {k: round(v, 1) for k, v in _SPENT.items()}
    # the machine as every bench result records it (cores, CPU, load, build of models/)
    FIGURES["machine"] = dict(bench_machine(), implementation=sys.implementation.name)
    FIGURES["date"] = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    FIGURES["command"] = "pytest " + " ".join(sys.argv[1:])
    write = terminalreporter.write_line
    write("")
    write(f"reliability figures ({FIGURES.get('scale')} scale)")
    data = FIGURES.get("dataset", {})
    if data:
        write(f"  input        {data.get('lines', 0):,} records: {data.get('valid', 0):,} valid, "
              f"{data.get('bad', 0):,} fuzzed bad payloads in {len(data.get('bad_by_kind', {}))} "
              f"kinds, {data.get('odd_valid', 0):,} odd but valid")
    for name, run in FIGURES.get("runs", {}).items():
        faults = ", ".join(f"{k} x{v}" for k, v in run.get("faults", {}).items()) or "none"
        write(f"  {name:<13}{run.get('events', 0):,} events in {run.get('wall_s', 0):.1f} s "
              f"({run.get('events_per_s', 0):,.0f}/s); faults: {faults}; "
              f"lost {run.get('events_lost', '?')}")
    totals = FIGURES["totals"]
    write(f"  totals       kills survived {totals['worker_kills']}, broker restarts "
          f"{totals['broker_restarts']}, bad inputs tried {totals['bad_inputs_tried']:,}, "
          f"events lost {totals['events_lost']}")
    write(f"  time         {FIGURES['reliability_tests_s']:.0f} s in these tests (setup, call "
          f"and teardown)")
    out = os.environ.get(RESULTS_ENV)
    if out:
        path = Path(out)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(orjson.dumps(FIGURES, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS
                                      | orjson.OPT_NON_STR_KEYS)
                         + b"\n")
        write(f"  written to {path}")
