"""The embedded engine over a long simulated stream: is memory flat once warm?

The ``default`` scenario's world (20 thousand benign accounts, the traps, three
campaigns that run to the end) stretched over as many hours as it takes to
reach ``--events`` (about 13,800 events per hour of event time; 20 million
events are about 60 days). The simulator runs in a child process and writes
into a FIFO that this process reads (``--via fifo``, nothing on disk), or
writes a file first (``--via file``, about 650 bytes per event).

Every ``--sample-every`` input lines it records: lines read, event time (the
engine's watermark, in hours since the stream's start), wall time, the
throughput over the last interval, RSS (``/proc/self/statm``), and the
tracked accounts, egress networks, payment groups and templates.

Flatness: samples whose event time is past ``--warmup-hours`` (default 96 h:
the 3-day idle TTL after which accounts are evicted, plus a day) count as
warm. It compares the largest RSS of the last half of the run with the
largest RSS of the first quarter of the warm samples (flat when the former
is at most ``--tolerance`` (5%) above the latter) and prints the least-squares
slope of RSS over the warm samples in MiB per million events.

Usage: python bench/rss_long_run.py [--events 20000000] [--sample-every 100000]
           [--via fifo|file] [--json bench/results/rss_long_run.json]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import (  # noqa: E402
    SimulationStream,
    mib,
    peak_rss_bytes,
    releases_for,
    rss_bytes,
    stamp,
    write_result,
)
from extraction_watch.cli import tune_gc  # noqa: E402
from extraction_watch.simulator import simulate  # noqa: E402
from models.contract import parse_rfc3339  # noqa: E402
from models.engine import Engine  # noqa: E402

EVENTS_PER_HOUR = 992_552 / 72  # default scenario, seed 1, scale 1


def run_engine(lines, releases: list[bytes], sample_every: int, start_t: float,
               progress: bool = True) -> tuple[list[dict], dict]:
    """The loop of ``extraction_watch.replay.replay_lines``, with samples."""
    engine = Engine()
    for n, rel in enumerate(releases, 1):
        engine.add_release(rel, {"file": "releases", "line": n})
    samples: list[dict] = []
    alert_ids: set[str] = set()
    updates = 0

    def emit(out) -> None:
        nonlocal updates
        for kind, record in out:
            if kind == "alert":
                alert_ids.add(record["alert_id"])
                updates += 1

    def sample(lineno: int, now: float) -> None:
        prev = samples[-1] if samples else {"events": 0, "wall_s": 0.0}
        wall = now - started
        groups = engine.tracked_groups()
        wm = engine.watermark()
        samples.append({
            "events": lineno,
            "event_time_h": round((wm - start_t) / 3600, 3) if math.isfinite(wm) else None,
            "wall_s": round(wall, 3),
            "interval_events_per_s": round((lineno - prev["events"]) / max(wall - prev["wall_s"], 1e-9)),
            "rss_bytes": rss_bytes(),
            "tracked_accounts": engine.tracked_accounts(),
            "tracked_proxies": groups["proxy"],
            "tracked_payment_groups": groups["payment"],
            "tracked_templates": groups["template"],
        })
        if progress:
            s = samples[-1]
            print(f"  {lineno:>12,} events  t={s['event_time_h'] or 0:8.1f} h  "
                  f"{s['interval_events_per_s']:>7,}/s  RSS {mib(s['rss_bytes']):>12}  "
                  f"accounts {s['tracked_accounts']:,}", flush=True)

    process = engine.process
    lineno = 0
    started = time.perf_counter()
    next_sample = sample_every
    name = "events.jsonl"
    for lineno, line in enumerate(lines, 1):
        if not line or line.isspace():
            continue
        out = process(line, {"file": name, "line": lineno})
        if out:
            emit(out)
        if lineno >= next_sample:
            sample(lineno, time.perf_counter())
            next_sample += sample_every
    emit(engine.flush())
    wall = time.perf_counter() - started
    if not samples or samples[-1]["events"] != lineno:
        sample(lineno, time.perf_counter())
    return samples, {"events": lineno, "wall_s": wall, "alert_ids": len(alert_ids),
                     "alert_updates": updates, "applied": engine.stats.processed}


def flatness(samples: list[dict], warmup_h: float, tolerance: float) -> dict:
    warm = [s for s in samples if s["event_time_h"] is not None and s["event_time_h"] >= warmup_h]
    if len(warm) < 8:
        return {"verdict": "too short to judge", "warm_samples": len(warm)}
    q1 = warm[: max(1, len(warm) // 4)]
    last_half = samples[len(samples) // 2:]
    q1_max = max(s["rss_bytes"] for s in q1)
    lh_max = max(s["rss_bytes"] for s in last_half)
    xs = [s["events"] / 1e6 for s in warm]
    ys = [s["rss_bytes"] / 2**20 for s in warm]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx if sxx else 0.0
    growth = lh_max / q1_max - 1
    return {
        "warmup_h": warmup_h,
        "warm_from_events": warm[0]["events"],
        "warm_samples": len(warm),
        "first_quarter_after_warmup_max_rss_bytes": q1_max,
        "last_half_max_rss_bytes": lh_max,
        "growth": round(growth, 4),
        "tolerance": tolerance,
        "slope_mib_per_million_events": round(slope, 3),
        "flat": growth <= tolerance,
        "verdict": "flat" if growth <= tolerance else "growing",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000_000,
                        help="target stream length (the simulator's hours are chosen for it)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--sample-every", type=int, default=0,
                        help="input lines between samples (default: events / 200)")
    parser.add_argument("--via", choices=("fifo", "file"), default="fifo")
    parser.add_argument("--warmup-hours", type=float, default=96.0)
    parser.add_argument("--tolerance", type=float, default=0.05)
    parser.add_argument("--workdir", default=str(ROOT / "bench" / "out"))
    parser.add_argument("--json", default=None)
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()
    tune_gc()

    hours = round(args.events / EVENTS_PER_HOUR, 1)
    every = args.sample_every or max(1000, args.events // 200)
    sim_kwargs = {"hours": hours}
    releases = releases_for("default", **sim_kwargs)
    from extraction_watch.simulator import resolve_params

    start_t = parse_rfc3339(resolve_params("default", **sim_kwargs)["run"]["start"])
    workdir = Path(args.workdir) / f"long-seed{args.seed}-{args.events}"
    print(f"default scenario over {hours} h (~{args.events:,} events), via {args.via}, "
          f"a sample every {every:,} events", flush=True)
    if args.via == "fifo":
        with SimulationStream(workdir, "default", args.seed, **sim_kwargs) as stream:
            samples, totals = run_engine(stream.lines(), releases, every, start_t, not args.quiet)
        totals["waiting_for_simulator_s"] = stream.wait_s
    else:
        if not (workdir / "truth.json").exists():
            simulate("default", args.seed, workdir, **sim_kwargs)
        with open(workdir / "events.jsonl", "rb", buffering=1 << 20) as fh:
            samples, totals = run_engine(fh, releases, every, start_t, not args.quiet)
    flat = flatness(samples, args.warmup_hours, args.tolerance)
    result = stamp({
        "events": totals["events"],
        "simulated_hours": hours,
        "via": args.via,
        "generator": "simulator in a child process writing into a FIFO (on another core)"
                     if args.via == "fifo" else "file written before the run",
        "sample_every": every,
        "wall_s": round(totals["wall_s"], 1),
        "events_per_s": round(totals["events"] / totals["wall_s"]),
        "waiting_for_simulator_s": round(totals.get("waiting_for_simulator_s", 0.0), 1),
        "peak_rss_bytes": peak_rss_bytes(),
        "alert_ids": totals["alert_ids"],
        "alert_updates": totals["alert_updates"],
        "flatness": flat,
        "samples": samples,
    }, "rss_long_run")
    print(f"events                 {totals['events']:,} over {hours} h of event time")
    print(f"wall                   {totals['wall_s']:,.0f} s  ({result['events_per_s']:,} events/s)")
    print(f"  waiting              {result['waiting_for_simulator_s']:,.1f} s of it for the simulator")
    print(f"peak RSS               {mib(result['peak_rss_bytes'])}")
    print(f"alerts                 {totals['alert_ids']} ids, {totals['alert_updates']} updates")
    if "growth" in flat:
        print(f"RSS after warm-up      first quarter max {mib(flat['first_quarter_after_warmup_max_rss_bytes'])}, "
              f"last half max {mib(flat['last_half_max_rss_bytes'])} ({flat['growth']:+.1%})")
        print(f"slope                  {flat['slope_mib_per_million_events']:+.2f} MiB per million "
              f"events (warm samples, event time >= {args.warmup_hours:g} h)")
    print(f"verdict                {flat['verdict']}")
    write_result(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
