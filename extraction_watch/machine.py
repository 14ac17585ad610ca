"""The machine a measurement ran on: every result file records it, so that a figure is
never read without its context (used by ``extraction-watch sweep`` and the scripts in
``bench/``)."""

from __future__ import annotations

import os
import platform
from typing import Any

__all__ = ["machine"]


def machine() -> dict[str, Any]:
    """Cores, CPU, Python version, platform, load and the build of ``models/`` in use."""
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
    # which build of models/ ran: the compiled hot modules or pure Python (models/_native.py)
    from models import _native
    info["models_build"] = "compiled" if _native.active() else "pure-python"
    return info
