"""Shared fixtures: one small simulated run and one CLI replay of it per session.

The run is the `small` scenario cut to 12 hours (about 37k events) with a
dirty-line rate raised to 0.003, so that every kind of bad line shows up
(roughly 100 of them) while simulation and replay each take a couple of seconds.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

SCENARIO_ARGS = ("--scenario", "small", "--seed", "3", "--hours", "12", "--bad-rate", "0.003")
CLI_TIMEOUT_S = 180

RunCli = Callable[..., "subprocess.CompletedProcess[bytes]"]


def run_cli(*args: str | os.PathLike[str], stdin: Any = None, cwd: Path | None = None,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    """Run ``extraction-watch ARGS`` in a fresh interpreter; stdout and stderr are pipes."""
    return subprocess.run(
        [sys.executable, "-m", "extraction_watch.cli", *map(str, args)],
        stdin=stdin if stdin is not None else subprocess.DEVNULL,
        capture_output=True, cwd=cwd, env=env, timeout=CLI_TIMEOUT_S, check=False,
    )


def describe(result: subprocess.CompletedProcess[bytes]) -> str:
    """The tail of a finished command's output, for assertion messages."""
    return (f"exit {result.returncode}\n--- stdout\n{result.stdout.decode(errors='replace')[-3000:]}"
            f"\n--- stderr\n{result.stderr.decode(errors='replace')[-3000:]}")


@dataclass(frozen=True)
class SimulatedRun:
    out: Path
    events: Path
    releases: Path
    truth_path: Path
    truth: dict[str, Any]
    result: subprocess.CompletedProcess[bytes]


@dataclass(frozen=True)
class ReplayRun:
    alerts: Path
    dead_letters: Path
    result: subprocess.CompletedProcess[bytes]


@pytest.fixture(scope="session")
def cli() -> RunCli:
    return run_cli


@pytest.fixture(scope="session")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> SimulatedRun:
    out = tmp_path_factory.mktemp("simulated")
    result = run_cli("simulate", *SCENARIO_ARGS, "--out", out, cwd=out)
    assert result.returncode == 0, describe(result)
    truth_path = out / "truth.json"
    return SimulatedRun(out=out, events=out / "events.jsonl", releases=out / "releases.jsonl",
                        truth_path=truth_path, truth=orjson.loads(truth_path.read_bytes()),
                        result=result)


@pytest.fixture(scope="session")
def replayed(simulated: SimulatedRun, tmp_path_factory: pytest.TempPathFactory) -> ReplayRun:
    out = tmp_path_factory.mktemp("replayed")
    alerts, dead = out / "alerts.jsonl", out / "dead_letters.jsonl"
    result = run_cli("replay", "--file", simulated.events, "--releases", simulated.releases,
                     "--alerts-out", alerts, "--dead-letters-out", dead, cwd=out)
    assert result.returncode == 0, describe(result)
    return ReplayRun(alerts=alerts, dead_letters=dead, result=result)
