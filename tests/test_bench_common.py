"""bench.common.OtherLoad: the CPU other processes use while a benchmark runs."""

from __future__ import annotations

import subprocess
import sys
import time

from bench.common import OtherLoad, busy_warning

_SPIN = "import time\nend = time.perf_counter() + {s}\nwhile time.perf_counter() < end: pass\n"


def _spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def test_own_work_is_not_counted_as_other_load() -> None:
    # this process keeps one core busy; none of it is "other". Each try compares with a
    # quiet window just before, since other processes on a shared host (a test run
    # beside this one failed it once) load both alike; were this process's own work
    # counted, every try would read about one core more than its quiet window
    readings = []
    for _ in range(3):
        with OtherLoad() as quiet:
            time.sleep(0.6)
        with OtherLoad() as other:
            _spin(0.6)
        readings.append((quiet.cores, other.cores))
        if other.cores < quiet.cores + 0.5:
            break
    assert other.cores < quiet.cores + 0.5, readings


def test_another_busy_process_is_counted() -> None:
    spinner = subprocess.Popen([sys.executable, "-c", _SPIN.format(s=1.5)])
    try:
        time.sleep(0.3)  # let it start spinning
        with OtherLoad() as other:
            time.sleep(0.8)  # idle here, one core busy in the other process
    finally:
        spinner.wait(10)
    assert other.cores >= 0.6
    assert busy_warning(other.cores).startswith("WARNING: other processes used")


def test_a_quiet_figure_carries_no_warning() -> None:
    assert busy_warning(0.0) == ""
    assert busy_warning(OtherLoad.BUSY_CORES) == ""
