"""Helpers shared by the benchmark scripts (not a test module; no third-party imports).

Every result file records the machine it was measured on and when, so that a
figure is never read without its context.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import resource
import sys
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
_PAGE = os.sysconf("SC_PAGE_SIZE")


def machine() -> dict[str, Any]:
    """Cores, Python version and platform of this machine."""
    info: dict[str, Any] = {"cores": os.cpu_count(), "python": platform.python_version(),
                            "platform": platform.platform()}
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        info["load_avg_at_start"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        pass
    return info


def rss_bytes() -> int:
    """Current resident set size of this process (``/proc/self/statm``)."""
    with open("/proc/self/statm", "rb") as fh:
        return int(fh.read().split()[1]) * _PAGE


def peak_rss_bytes() -> int:
    """Peak resident set size of this process so far (``getrusage``, KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def now_iso() -> str:
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def stamp(result: dict[str, Any], script: str, argv: list[str] | None = None) -> dict[str, Any]:
    """``result`` with the machine, the date and the command that produced it first."""
    args = sys.argv[1:] if argv is None else argv
    head = {"benchmark": script, "date": now_iso(), "machine": machine(),
            "command": " ".join(["python", f"bench/{script}.py", *args])}
    return {**head, **result}


def write_result(path: str | Path | None, result: dict[str, Any]) -> None:
    if not path:
        return
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2) + b"\n")
    print(f"wrote {out}", flush=True)


def mib(n: float) -> str:
    return f"{n / 2**20:,.1f} MiB"
