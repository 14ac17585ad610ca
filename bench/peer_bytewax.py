"""A peer on the same events: bytewax counting per account per minute vs our full engine.

Same JSONL file, same run, one after the other on one core each:

  * bytewax (``bytewax.testing.run_main``: one worker, in this process) runs
    ONLY a per-account 60-second event-time tumbling-window count:
    ``FileSource`` (the file line by line) -> ``filter_map`` (orjson.loads, the
    event's ``ts`` parsed with ``datetime.fromisoformat``; lines that are not
    JSON objects with a string ``account_id`` and a valid ``ts`` are dropped)
    -> ``count_window`` keyed by ``account_id`` with an ``EventClock`` on the
    event's ``ts`` (5 minutes of allowed lateness, the engine's own) and a
    60-second ``TumblingWindower`` -> a sink that counts the windows and adds
    up their counts (checked against the events read). The clock's
    ``to_system_utc`` returns None, bytewax's documented setting for not
    waking up on the system clock to close windows (they close as the
    key's next items or the end of the input move event time on), which is
    what a replay of recorded events wants: with the default (identity),
    every window close time of these past events is already due on the
    system clock, so bytewax wakes every key with an open window on every
    activation and slows down with the number of accounts (measured: 4.7
    thousand events/s at 1 million events; ``--wakeup wallclock`` to see it);
  * the engine (``extraction_watch.replay``, as ``extraction-watch replay``)
    runs full detection: validation, dedup, per-account, per-proxy and
    per-payment aggregates, templates, scoring, linking, alerts.

Prints both rates (input lines per second of wall time, set-up included) and
the ratio engine / bytewax (target >= 1.0).

Usage: python bench/peer_bytewax.py [--events 1000000] [--seed 1] [--repeat 1] [--json out.json]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import OtherLoad, busy_warning, mib, peak_rss_bytes, stamp, write_result  # noqa: E402
from extraction_watch.cli import tune_gc  # noqa: E402
from extraction_watch.replay import replay_lines  # noqa: E402
from extraction_watch.simulator import simulate  # noqa: E402

LATENESS = timedelta(minutes=5)  # models.engine.EngineConfig.lateness_s
WINDOW = timedelta(seconds=60)
ALIGN = datetime(2020, 1, 1, tzinfo=UTC)


def bytewax_count(path: Path, wakeup: str = "none") -> dict:
    """Per-account 60 s event-time tumbling counts with bytewax; returns figures."""
    import bytewax.operators as op
    from bytewax.connectors.files import FileSource
    from bytewax.dataflow import Dataflow
    from bytewax.operators.windowing import EventClock, TumblingWindower, count_window
    from bytewax.outputs import DynamicSink, StatelessSinkPartition
    from bytewax.testing import run_main

    totals = {"windows": 0, "counted": 0, "late": 0}

    class _CountPartition(StatelessSinkPartition):
        def write_batch(self, items) -> None:
            totals["windows"] += len(items)
            totals["counted"] += sum(count for _key, (_window_id, count) in items)

    class CountingSink(DynamicSink):
        def build(self, step_id, worker_index, worker_count):
            return _CountPartition()

    class _LatePartition(StatelessSinkPartition):
        def write_batch(self, items) -> None:
            totals["late"] += len(items)

    class LateSink(DynamicSink):
        def build(self, step_id, worker_index, worker_count):
            return _LatePartition()

    loads, decode_error = orjson.loads, orjson.JSONDecodeError
    fromiso = datetime.fromisoformat

    def parse(line: str):
        try:
            ev = loads(line)
        except decode_error:
            return None
        if type(ev) is not dict:
            return None
        account, ts = ev.get("account_id"), ev.get("ts")
        if type(account) is not str or type(ts) is not str:
            return None
        try:
            return account, fromiso(ts)
        except ValueError:
            return None

    flow = Dataflow("per_account_minute_counts")
    lines = op.input("read", flow, FileSource(path))
    events = op.filter_map("parse", lines, parse)
    if wakeup == "none":  # close windows on event time only (replay of recorded events)
        clock = EventClock(ts_getter=lambda ev: ev[1], wait_for_system_duration=LATENESS,
                           to_system_utc=lambda _close: None)
    else:  # bytewax's default: wake up when the close time is due on the system clock
        clock = EventClock(ts_getter=lambda ev: ev[1], wait_for_system_duration=LATENESS)
    windower = TumblingWindower(length=WINDOW, align_to=ALIGN)
    counts = count_window("count", events, clock, windower, key=lambda ev: ev[0])
    op.output("out", counts.down, CountingSink())
    op.output("late", counts.late, LateSink())

    started = time.perf_counter()
    run_main(flow)
    wall = time.perf_counter() - started
    return {"wall_s": wall, **totals}


def engine_detect(path: Path) -> dict:
    with open(path, "rb") as fh:
        summary = replay_lines(fh, path.name, alerts_out=None)
    return {"wall_s": summary.wall_s, "lines": summary.lines, "processed": summary.processed,
            "alert_ids": summary.alert_ids}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000,
                        help="approximate size of the simulated stream (default scenario)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=1,
                        help="alternate the two this many times and report the medians")
    parser.add_argument("--wakeup", choices=("none", "wallclock"), default="none",
                        help="EventClock.to_system_utc: None (replay) or bytewax's default")
    parser.add_argument("--workdir", default=str(ROOT / "bench" / "out"))
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    tune_gc()  # as the command line does for the engine; bytewax runs under it too

    from importlib.metadata import version

    import bytewax  # noqa: F401 - fail early with a clear message when the extra is missing

    workdir = Path(args.workdir) / f"default-seed{args.seed}-{args.events}"
    path = workdir / "events.jsonl"
    if not (workdir / "truth.json").exists():
        print(f"simulating ~{args.events:,} events into {workdir} ...", flush=True)
        simulate("default", args.seed, workdir, scale=args.events / 1_000_000)
    with open(path, "rb") as fh:
        lines = sum(1 for _ in fh)  # also warms the page cache

    bw_walls, eng_walls, others = [], [], []
    bw = eng = {}
    for i in range(args.repeat):
        print(f"run {i + 1}/{args.repeat}: bytewax ...", flush=True)
        with OtherLoad() as other_bw:
            bw = bytewax_count(path, args.wakeup)
        bw_walls.append(bw["wall_s"])
        print(f"run {i + 1}/{args.repeat}: engine ...", flush=True)
        with OtherLoad() as other_eng:
            eng = engine_detect(path)
        eng_walls.append(eng["wall_s"])
        others.append(max(other_bw.cores, other_eng.cores))
    bw_rate = lines / statistics.median(bw_walls)
    eng_rate = lines / statistics.median(eng_walls)
    result = stamp({
        "events": lines,
        "bytewax_version": version("bytewax"),
        "bytewax_job": "per-account 60 s event-time tumbling-window count (EventClock on ts, "
                       "5 min lateness, TumblingWindower, count_window), FileSource + orjson, "
                       "run_main (1 worker)",
        "bytewax_wakeup": "to_system_utc=None (event time only)" if args.wakeup == "none"
                          else "to_system_utc=identity (bytewax default)",
        "engine_job": "full detection (extraction_watch.replay)",
        "bytewax_events_per_s": round(bw_rate),
        "engine_events_per_s": round(eng_rate),
        "ratio": round(eng_rate / bw_rate, 4),
        "target_ratio": 1.0,
        "repeat": args.repeat,
        "bytewax_wall_s": [round(x, 2) for x in bw_walls],
        "engine_wall_s": [round(x, 2) for x in eng_walls],
        "bytewax_windows_out": bw["windows"],
        "bytewax_events_counted": bw["counted"],
        "bytewax_late_events": bw["late"],
        "engine_events_processed": eng["processed"],
        "engine_alert_ids": eng["alert_ids"],
        "peak_rss_bytes": peak_rss_bytes(),
        "other_cpu_cores": statistics.median(others),  # bench.common.OtherLoad
    }, "peer_bytewax")
    print(f"events (lines)               {lines:,}")
    print(f"bytewax {result['bytewax_version']} windowed count   {result['bytewax_events_per_s']:,} "
          f"events/s  ({bw['windows']:,} account-minute windows, {bw['counted']:,} events "
          f"counted, {bw['late']:,} late)")
    print(f"engine, full detection       {result['engine_events_per_s']:,} events/s  "
          f"({eng['processed']:,} events applied, {eng['alert_ids']} alert ids)")
    print(f"ratio engine/bytewax         {result['ratio']:.3f}   (target >= 1.0: "
          f"{'met' if result['ratio'] >= 1.0 else 'NOT met'})")
    print(f"peak RSS (both)              {mib(result['peak_rss_bytes'])}")
    warning = busy_warning(result["other_cpu_cores"])
    if warning:
        print(warning)
    write_result(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
