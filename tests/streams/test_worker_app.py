"""The worker's Faust app, built without a broker (nothing here connects)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

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
    return set(re.findall(r"^\| `(exw_[a-z_]+)` \|", RUNBOOK.read_text(), re.MULTILINE))


def test_the_runbook_documents_only_metrics_the_worker_has() -> None:
    names = documented_metrics()
    assert len(names) >= 15
    source = "\n".join(p.read_text() for p in (RUNBOOK.parents[1] / "streams").glob("*.py"))
    assert {n for n in names if f'"{n}"' not in source} == set()
