"""Write docs/performance.md: every figure in bench/results/*.json in one table.

Each row names the benchmark, the figure, its value, the size it was measured
at and the date; the machine(s) and how to reproduce (including the full-size
settings) come first. Run after the benchmarks (``make bench`` does).

Usage: python bench/report.py [--results bench/results] [--out docs/performance.md]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import OtherLoad, now_iso  # noqa: E402
from bench.plot import load  # noqa: E402

MiB = 2**20


def _n(x: Any, digits: int = 0) -> str:
    if x is None:
        return "-"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int | float):
        return f"{x:,.{digits}f}"
    return str(x)


def _other_load(r: dict, size: str) -> list[tuple[str, str, str]]:
    """The CPU other processes used during the runs (bench.common.OtherLoad), if recorded."""
    if "other_cpu_cores" not in r:
        return []
    cores = r["other_cpu_cores"]
    note = " (busy: not the quiet machine's ratio)" if cores > OtherLoad.BUSY_CORES else " (quiet)"
    return [("CPU used by other processes during the runs", f"{cores:.2f} cores{note}", size)]


def rows_for(name: str, r: dict) -> list[tuple[str, str, str]]:
    """(figure, value, size) rows of one result file."""
    out: list[tuple[str, str, str]] = []
    if name == "engine_throughput":
        size = f"{r['events']:,} events (default scenario)"
        runs = r.get("runs", [])
        if len(runs) > 1:  # medians of alternating runs of the loop and the engine
            size += f"; median of {len(runs)} alternating runs"
        out += [
            ("decode-only loop (read + orjson)", f"{_n(r['decode_only_events_per_s'])} events/s", size),
            ("engine, full detection", f"{_n(r['engine_events_per_s'])} events/s", size),
            (f"**ratio engine / decode-only** (target {r.get('target_ratio', 0.25):g})",
             f"**{r['ratio']:.3f}**", size),
        ]
        if len(runs) > 1:
            out.append(("ratio engine / decode-only, each run",
                        ", ".join(f"{x['ratio']:.3f}" for x in runs), size))
        out += _other_load(r, size)
        out += [
            ("peak RSS of the run", f"{r['peak_rss_bytes'] / MiB:,.0f} MiB", size),
        ]
        for m in r.get("memory", []):
            msize = f"{m['accounts']:,} accounts, 3 events each"
            out += [
                ("bytes per tracked account (RSS)", _n(m["bytes_per_tracked_account"]), msize),
                ("bytes per tracked proxy (egress network, RSS)", _n(m["bytes_per_tracked_proxy"]),
                 f"{m['proxies_own_run']:,} proxies vs 1"),
            ]
            if "traced_bytes_per_tracked_account" in m:
                out += [("bytes per tracked account (tracemalloc)",
                         _n(m["traced_bytes_per_tracked_account"]), msize),
                        ("bytes per tracked proxy (tracemalloc)",
                         _n(m["traced_bytes_per_tracked_proxy"]), msize)]
    elif name == "peer_bytewax":
        size = f"{r['events']:,} events (default scenario)"
        out += [
            (f"bytewax {r.get('bytewax_version', '')}: per-account 60 s event-time tumbling count",
             f"{_n(r['bytewax_events_per_s'])} events/s", size),
            ("engine, full detection (same file, same run)", f"{_n(r['engine_events_per_s'])} events/s",
             size),
            ("**ratio engine / bytewax** (target 1.0)", f"**{r['ratio']:.3f}**", size),
        ]
        out += _other_load(r, size)
    elif name == "worker_throughput":
        size = f"{r['events']:,} events, {r['partitions']} partitions"
        out += [
            ("bare aiokafka consumer (read + orjson)", f"{_n(r['bare_consumer_events_per_s'])} events/s",
             size),
            ("one worker, end to end", f"{_n(r['worker_events_per_s'])} events/s", size),
            (f"**ratio worker / bare consumer** (target {r.get('target_ratio', 0.4):g})",
             f"**{r['ratio']}**", size),
        ]
        runs = r.get("runs", [])
        if len(runs) > 1:
            out.append(("ratio worker / bare consumer, each run",
                        ", ".join(f"{x['ratio']:.3f}" for x in runs),
                        f"{size}; median of {len(runs)} alternating runs"))
        if "cpu_ratio" in r:
            out += [
                ("CPU per event: bare consumer / worker",
                 f"{r['bare_consumer_cpu_us_per_event']:.2f} / {r['worker_cpu_us_per_event']:.2f} us",
                 f"{size}; medians"),
                ("ratio by CPU time (bare CPU per event / worker CPU per event), each run",
                 f"{r['cpu_ratio']} (" + ", ".join(f"{x['cpu_ratio']:.3f}" for x in runs) + ")",
                 f"{size}; less moved by other tenants than the rates"),
            ]
        handoff = [x["handoff_batches"] for x in runs if "handoff_batches" in x]
        if handoff:
            out.append(("hand-off batches the reducer took from its own stage 1 / decoded",
                        ", ".join(f"{h['local']:.0f}/{h['decoded']:.0f}" for h in handoff),
                        f"{size}; each run (streams.handoff.Forwarded)"))
        out += [
            ("worker launch to ready", f"{r['worker_launch_to_ready_s']} s", size),
            ("restart to ready after kill -9"
             + (" (static group member; without: "
                f"{r['restart_to_ready_after_kill9_dynamic_s']} s)"
                if "restart_to_ready_after_kill9_dynamic_s" in r else ""),
             f"{r['restart_to_ready_after_kill9_s']} s", size),
        ]
    elif name == "rss_long_run":
        f = r.get("flatness", {})
        size = f"{r['events']:,} events, {r['simulated_hours']:g} h of event time"
        out += [
            ("long run: engine throughput (whole run)", f"{_n(r['events_per_s'])} events/s", size),
            ("long run: peak RSS", f"{r['peak_rss_bytes'] / MiB:,.0f} MiB", size),
        ]
        if "growth" in f:
            out += [
                ("long run: max RSS, first quarter after warm-up -> last half",
                 f"{f['first_quarter_after_warmup_max_rss_bytes'] / MiB:,.0f} -> "
                 f"{f['last_half_max_rss_bytes'] / MiB:,.0f} MiB ({f['growth']:+.1%})",
                 f"warm from {f['warmup_h']:g} h"),
                ("long run: RSS slope after warm-up",
                 f"{f['slope_mib_per_million_events']:+.2f} MiB per million events", size),
            ]
        out.append(("**long run: RSS flat after warm-up?**", f"**{f.get('verdict', '?')}**", size))
    elif name == "latency":
        runs = r.get("runs") or [r]
        for run in runs:
            size = (f"{r['events']:,} events at {_n(run['rate_achieved'])}/s, "
                    f"{run['partitions']} partition(s), {run['alerts']} alert updates, event time "
                    f"x{_n(r.get('event_time_speedup'))}")
            lat = run.get("latency") or {}
            bold = "**" if run is runs[0] else ""
            out += [
                (f"{bold}event -> alert latency p50, {run['partitions']} partition(s){bold}",
                 f"{bold}{_n(lat.get('p50_ms'))} ms{bold}", size),
                (f"{bold}event -> alert latency p99, {run['partitions']} partition(s){bold}",
                 f"{bold}{_n(lat.get('p99_ms'))} ms{bold}", size),
                (f"worker backlog behind the producer, {run['partitions']} partition(s)",
                 f"at most {_n(run.get('max_backlog_events'))} events "
                 f"({'kept up' if run.get('kept_up') else 'fell behind'})", size),
            ]
    elif name == "scale_public_reports":
        size = f"scale {r['scale']:g}: {r['events']:,} events, {r['campaign_accounts']:,} campaign accounts"
        out += [
            ("public-report sizes: wall time", f"{r['wall_s']:,.0f} s", size),
            ("public-report sizes: events/s (simulator beside it)", _n(r["events_per_s"]), size),
            ("public-report sizes: events/s of the engine alone",
             _n(r.get("engine_events_per_s")), size),
            ("public-report sizes: peak RSS", f"{r['peak_rss_bytes'] / MiB:,.0f} MiB", size),
        ]
        ck = r.get("checkpoint")
        if ck:
            out.append(("public-report sizes: one checkpoint of the final state (forked child)",
                        f"{ck['blob_bytes'] / MiB:,.0f} MiB blob in {ck['seconds']:.1f} s; the "
                        f"child's peak private memory {ck['child_peak_private_bytes'] / MiB:,.0f}"
                        f" MiB (engine process {ck['parent_rss_bytes'] / MiB:,.0f} MiB)", size))
        for c in r["campaigns"]:
            ttd = "-" if c["time_to_detect_s"] is None else f"{c['time_to_detect_s'] / 60:.0f} min"
            out.append((f"public-report sizes: {c['archetype']} ({c['accounts']:,} accounts, "
                        f"{c['events']:,} events) detected",
                        f"{_n(c['detected'])}, recall {c['recall']:.3f}, in {ttd}", size))
        out.append(("public-report sizes: precision / trap accounts named",
                    f"{r['precision']:.3f} / {r['trap_accounts_named']}", size))
    elif name == "quality_sweep":
        sm = r["summary"]
        size = f"{sm['worlds']} small worlds with random campaign, trap and population shapes"
        fails = ", ".join(f"{bar} {n}" for bar, n in sm["failures_by_bar"].items()) or "none"
        out += [
            ("**detection: worlds passing every quality bar**",
             f"**{sm['passed_all_bars']} of {sm['worlds']}**", size),
            ("detection: failures by bar (failing worlds)",
             f"{fails} ({', '.join(map(str, sm['failing_worlds'])) or '-'})", size),
            ("detection: mean account recall / lowest precision",
             f"{sm['mean_recall']:.3f} / {sm['min_precision']:.3f}", size),
        ]
    return out


ORDER = ["engine_throughput", "peer_bytewax", "rss_long_run", "scale_public_reports",
         "worker_throughput", "latency", "quality_sweep"]

HOW = """\
## How to reproduce

```sh
make bench          # everything below at development sizes (about 28 min on 2 cores)
make bench-report   # only re-plot and re-write this page from bench/results/*.json
```

Full-size figures (the sizes the issue asks for; about 40 min on 2 quiet cores, up to an
hour on a shared machine):

```sh
make bench BENCH_EVENTS=1000000 BENCH_ACCOUNTS=100000,1000000 BENCH_LONG_EVENTS=20000000 \\
           BENCH_PUBLIC_SCALE=1.0 BENCH_LATENCY_SCALE=1.0 BENCH_WORKER_SCALE=1.0
```

Each script also runs alone and takes its sizes as arguments (`--help`):
`bench/engine_throughput.py`, `bench/peer_bytewax.py`, `bench/rss_long_run.py`,
`bench/scale_public_reports.py`, and under `deploy/kafka/with-broker.sh`:
`bench/worker_throughput.py`, `bench/latency.py`. `bench/plot.py` draws
docs/performance.png and `bench/report.py` writes this page. Detection quality over
random worlds: `make quality-sweep` (`extraction-watch sweep --worlds 80`).

## What each figure means

* **Quality sweep**: `extraction-watch sweep` simulates small worlds (the `small`
  scenario, 36 h) with every campaign, trap and population shape drawn at random
  (world *i* is always the same world), replays each through the engine and judges
  it by the bars of `extraction-watch eval`: every campaign detected, account
  precision >= 0.95 and recall >= 0.90, no trap account named, time to detect <= 2 h,
  pivot alert <= 6 h after the release.

* **Ratios** are measured side by side in one run on the same events: the
  engine against a loop that only reads and orjson-decodes the lines; against
  bytewax doing only a per-account 60-second event-time tumbling count
  (`FileSource`, orjson, `EventClock` on `ts` with the engine's 5-minute
  lateness, `TumblingWindower`, `count_window`, one worker); the Kafka worker
  against a bare aiokafka consumer of the same topic.
* **Memory per account / per proxy**: RSS growth of a fresh process fed three
  events per account over 36 h; per proxy is the extra growth when every
  account has its own egress network instead of all sharing one, per extra
  network (`Engine.tracked_groups()["proxy"]` counts them).
* **Long run**: the default world stretched to the requested number of events;
  the simulator streams into a FIFO from another process. Flat means the
  largest RSS of the last half is within 5% of the largest RSS of the first
  quarter after warm-up (96 h of event time: the 3-day idle TTL and a day).
* **Latency**: events produced at a steady rate with their simulated
  timestamps (event time runs thousands of times faster than the wall clock,
  so many more ticks fall due per second than in production: an upper
  bound); the trigger of an alert decided at tick boundary B is the first
  event later than (the first event at or after B) + 5 min lateness, the
  event that moves the watermark past the tick; latency is from handing it to
  the producer to the alert record's Kafka timestamp. The same events go
  through a 4-partition and a 1-partition events topic; the worker's backlog
  behind the producer (polled from its /metrics) says whether it kept up.
* **Public-report sizes**: scenario `public-reports` (about 24 thousand
  fraudulent accounts, a 20-thousand-account campaign behind one proxy
  network making about 13 million calls, about 16 million events), scored
  with `extraction_watch.evaluate`.
"""


def render(res: dict[str, dict]) -> str:
    lines = ["# Performance", "",
             f"Generated by `bench/report.py` on {now_iso()} from `bench/results/*.json`; "
             "plot: [performance.png](performance.png).", "",
             "Figures measured on a shared 2-core development machine vary between runs, "
             "by about 10% on a quiet machine and by up to 40% on a busy one, and between "
             "machines more than that (the CPU column below): the read+orjson loop ran at "
             "300-480 thousand events/s on a 2-core Intel Xeon and at 560-640 thousand on a "
             "2-core AMD EPYC, where the engine ran at 67-83 and 60-72 thousand: the engine "
             "/ loop ratio read 0.201 on the Xeon for nearly this code and 0.10-0.11 on "
             "the EPYC, 0.115 there with the C decoding fast path (models/fastwire.h) and "
             "0.109-0.120 with the pivot counters (0.109 on a slow hour, loop 455 "
             "thousand; 0.120 on a quiet one, loop 571 thousand). "
             "Each ratio lists its runs and reports their median, "
             "and the in-process ratios record how much CPU other processes used meanwhile. "
             "Sizes are given per row. Development runs use smaller sizes than the full ones "
             "below.", "", "![benchmarks](performance.png)", "",
             "## Machines", "",
             "| result | date | cores | CPU | Python | build of models/ | platform | command |",
             "|---|---|---|---|---|---|---|---|"]
    names = [n for n in ORDER if n in res] + sorted(n for n in res if n not in ORDER)
    for name in names:
        r = res[name]
        m = r.get("machine", {})
        lines.append(f"| {name} | {r.get('date', '-')} | {m.get('cores', '-')} | "
                     f"{m.get('cpu', '-')} | {m.get('python', '-')} | "
                     f"{m.get('models_build', 'not recorded')} | "
                     f"{m.get('platform', '-')} | "
                     f"`{r.get('command', '-')}` |")
    lines += ["", "## Figures", "", "| benchmark | figure | value | size |", "|---|---|---|---|"]
    for name in names:
        for figure, value, size in rows_for(name, res[name]):
            lines.append(f"| {name} | {figure} | {value} | {size} |")
    lines += ["", HOW]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default=str(ROOT / "bench" / "results"))
    parser.add_argument("--out", default=str(ROOT / "docs" / "performance.md"))
    args = parser.parse_args()
    text = render(load(Path(args.results)))
    Path(args.out).write_text(text, encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
