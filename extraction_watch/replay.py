"""Run the engine over a JSONL file (or stdin) with no broker."""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from itertools import islice
from typing import IO, Any

import orjson

from models.contract import format_rfc3339
from models.engine import Engine, EngineConfig

__all__ = ["ReplaySummary", "replay_lines", "stamp", "format_summary"]


@dataclass
class ReplaySummary:
    lines: int = 0
    blank_lines: int = 0
    processed: int = 0
    dead_letters: dict[str, int] = field(default_factory=dict)
    raw_text_dropped: int = 0
    alerts: dict[str, int] = field(default_factory=dict)
    alert_ids: int = 0
    tracked_accounts: int = 0
    wall_s: float = 0.0
    events_per_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def stamp(record: dict, clock: Callable[[], float] = time.time) -> bytes:
    """Serialise an alert, stamping ``emitted_at`` with wall-clock time of publication."""
    if record.get("emitted_at") is None:
        record = dict(record, emitted_at=format_rfc3339(clock()))
    return orjson.dumps(record)


class _Progress:
    """A one-line progress bar on stderr, only when stderr is a terminal."""

    def __init__(self, total_bytes: int | None, enabled: bool) -> None:
        self.total = total_bytes
        self.enabled = enabled
        self.start = time.perf_counter()
        self.next_draw = self.start

    def update(self, lines: int, done_bytes: int) -> None:
        now = time.perf_counter()
        if not self.enabled or now < self.next_draw:
            return
        self.next_draw = now + 0.25
        rate = lines / max(now - self.start, 1e-9)
        if self.total:
            frac = min(1.0, done_bytes / self.total)
            bar = "#" * int(frac * 30)
            sys.stderr.write(f"\r[{bar:<30}] {frac:6.1%} {lines:>10,} events {rate:>9,.0f}/s")
        else:
            sys.stderr.write(f"\r{lines:>10,} events {rate:>9,.0f}/s")
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")
            sys.stderr.flush()


def replay_lines(
    lines: Iterable[bytes],
    source_name: str,
    *,
    alerts_out: IO[bytes] | None,
    dead_letters_out: IO[bytes] | None = None,
    releases: Iterable[bytes] = (),
    engine: Engine | None = None,
    config: EngineConfig | None = None,
    total_bytes: int | None = None,
    progress: bool = False,
    clock: Callable[[], float] = time.time,
) -> ReplaySummary:
    """Feed JSONL lines through the engine and write alerts and dead letters as JSONL."""
    engine = engine or Engine(config)
    summary = ReplaySummary()
    alert_ids: set[str] = set()
    alert_kinds: Counter = Counter()

    def emit(outputs) -> None:
        for kind, record in outputs:
            if kind == "alert":
                alert_ids.add(record["alert_id"])
                alert_kinds[f"{record['kind']}/{record['severity']}"] += 1
                if alerts_out is not None:
                    alerts_out.write(stamp(record, clock) + b"\n")
            elif dead_letters_out is not None:
                dead_letters_out.write(orjson.dumps(record) + b"\n")

    for n, line in enumerate(releases, 1):
        if line.strip():
            emit(engine.add_release(line, {"file": "releases", "line": n}))
    bar = _Progress(total_bytes, progress)
    started = time.perf_counter()
    done_bytes = 0
    lineno = 0
    process_lines = engine.process_lines
    it = iter(lines)
    while chunk := list(islice(it, 4096)):
        out, blank = process_lines(chunk, source_name, lineno + 1)
        lineno += len(chunk)
        summary.blank_lines += blank
        if out:
            emit(out)
        if progress:
            done_bytes += sum(map(len, chunk))
            bar.update(lineno, done_bytes)
    emit(engine.flush())
    bar.close()
    summary.wall_s = time.perf_counter() - started
    summary.lines = lineno
    stats = engine.stats
    summary.processed = stats.processed
    summary.dead_letters = dict(sorted(stats.dead_letters.items()))
    summary.raw_text_dropped = stats.raw_text_dropped
    summary.alerts = dict(sorted(alert_kinds.items()))
    summary.alert_ids = len(alert_ids)
    summary.tracked_accounts = engine.tracked_accounts()
    summary.events_per_s = summary.lines / summary.wall_s if summary.wall_s > 0 else 0.0
    return summary


def format_summary(summary: ReplaySummary) -> str:
    dl = sum(summary.dead_letters.values())
    lines = [
        f"events read        {summary.lines:,} lines ({summary.processed:,} processed, "
        f"{summary.blank_lines:,} blank)",
        f"dead letters       {dl:,}" + ("" if not dl else "  " + ", ".join(
            f"{k}={v:,}" for k, v in summary.dead_letters.items())),
        f"raw text dropped   {summary.raw_text_dropped:,} fields",
        f"alerts             {summary.alert_ids:,} distinct ids, "
        f"{sum(summary.alerts.values()):,} updates" + ("" if not summary.alerts else "  " + ", ".join(
            f"{k}={v}" for k, v in summary.alerts.items())),
        f"accounts tracked   {summary.tracked_accounts:,}",
        f"speed              {summary.events_per_s:,.0f} events/s ({summary.wall_s:.1f} s)",
    ]
    return "\n".join(lines)
