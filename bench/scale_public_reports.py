"""The publicly reported campaign sizes through the embedded engine.

Scenario ``public-reports`` (extraction_watch/simulator/params.py): the
default world and 72-hour timeline with about 24 thousand fraudulent accounts,
one proxy network running a 20-thousand-account campaign (the hydra) that
makes about 13 million calls, and over 16 million events in all. ``--scale``
multiplies every population and rate (0.1 for a quick look).

The simulator writes into a FIFO from a child process (nothing on disk but
the ground truth); this process replays it through the engine exactly as
``extraction-watch replay`` does, then scores the alerts with
``extraction_watch.evaluate`` against the simulator's truth.json.

Prints wall time, events/s, peak RSS of this process (the engine; the
simulator is a separate process), what one checkpoint of the final state costs
(the worker's forked child: its peak private memory, the blob, the time; see
``bench.common.checkpoint_probe``), and per campaign whether it was detected,
its recall and time to detect.

Usage: python bench/scale_public_reports.py [--scale 1.0] [--seed 1] [--json out.json]
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import (  # noqa: E402
    SimulationStream,
    checkpoint_probe,
    mib,
    peak_rss_bytes,
    releases_for,
    stamp,
    write_result,
)
from extraction_watch.cli import tune_gc  # noqa: E402
from extraction_watch.evaluate import evaluate  # noqa: E402
from extraction_watch.replay import replay_lines  # noqa: E402
from models.engine import Engine  # noqa: E402
from streams import worker as _worker  # noqa: E402,F401  (the checkpoint's code, loaded up front)

SCENARIO = "public-reports"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workdir", default=str(ROOT / "bench" / "out"))
    parser.add_argument("--alerts-out", default=None, help="also keep the alerts as JSONL here")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    tune_gc()

    workdir = Path(args.workdir) / f"{SCENARIO}-seed{args.seed}-scale{args.scale:g}"
    releases = releases_for(SCENARIO, scale=args.scale)
    alerts_buf = io.BytesIO()
    print(f"simulating {SCENARIO} at scale {args.scale:g} into the engine ...", flush=True)
    engine = Engine()
    with SimulationStream(workdir, SCENARIO, args.seed, scale=args.scale) as stream:
        summary = replay_lines(stream.lines(), "events.jsonl", alerts_out=alerts_buf,
                               releases=releases, engine=engine)
    waited = stream.wait_s
    peak = peak_rss_bytes()  # (before the checkpoint below reads the blob into this process)
    # one checkpoint of the final state, as the worker takes it (a forked child)
    checkpoint = checkpoint_probe(engine)
    truth = orjson.loads((workdir / "truth.json").read_bytes())
    if args.alerts_out:
        Path(args.alerts_out).write_bytes(alerts_buf.getvalue())
    alerts = [orjson.loads(line) for line in alerts_buf.getvalue().splitlines() if line]
    quality = evaluate(truth, alerts, max_alert_ids=None)

    campaigns = []
    for truth_c, scored in zip(sorted(truth["campaigns"], key=lambda c: c["id"]),
                               quality["campaigns"], strict=True):
        campaigns.append({
            "id": scored["id"], "archetype": truth_c["archetype"],
            "accounts": len(truth_c["accounts"]), "events": truth_c["events"],
            "egress": truth_c.get("egress"),
            "detected": scored["detected"], "recall": round(scored["recall"], 4),
            "time_to_detect_s": scored["time_to_detect_s"],
            "pivot_latency_s": scored.get("pivot_latency_s"),
        })
    result = stamp({
        "scenario": SCENARIO, "scale": args.scale, "seed": args.seed,
        "events": summary.lines, "processed": summary.processed,
        "campaign_accounts": sum(c["accounts"] for c in campaigns),
        "wall_s": round(summary.wall_s, 1),
        "events_per_s": round(summary.events_per_s),
        "waiting_for_simulator_s": round(waited, 1),
        "engine_events_per_s": round(summary.lines / max(summary.wall_s - waited, 1e-9)),
        "peak_rss_bytes": peak,
        "checkpoint": checkpoint,
        "tracked_accounts_at_end": summary.tracked_accounts,
        "alert_ids": summary.alert_ids,
        "alert_updates": sum(summary.alerts.values()),
        "campaigns": campaigns,
        "all_campaigns_detected": all(c["detected"] for c in campaigns),
        "precision": round(quality["accounts"]["precision"], 4),
        "recall": round(quality["accounts"]["recall"], 4),
        "trap_accounts_named": sum(t["named_actionable"] for t in quality["traps"].values()),
        "quality_bars_passed": quality["passed"],
        "generator": "simulator in a child process writing into a FIFO (on another core)",
    }, "scale_public_reports")
    print(f"events                {summary.lines:,} ({result['campaign_accounts']:,} campaign accounts)")
    print(f"wall                  {summary.wall_s:,.1f} s ({result['events_per_s']:,} events/s, "
          "simulator running beside it)")
    print(f"  of which waiting    {waited:,.1f} s for the simulator: the engine alone "
          f"{result['engine_events_per_s']:,} events/s")
    print(f"peak RSS (engine)     {mib(peak)}")
    print(f"checkpoint            {mib(checkpoint['blob_bytes'])} blob in "
          f"{checkpoint['seconds']:.1f} s; its forked child peaked at "
          f"{mib(checkpoint['child_peak_private_bytes'])} of private memory (the engine "
          f"process: {mib(checkpoint['parent_rss_bytes'])})")
    print(f"alerts                {summary.alert_ids} ids, {result['alert_updates']} updates")
    for c in campaigns:
        ttd = "-" if c["time_to_detect_s"] is None else f"{c['time_to_detect_s'] / 60:.0f} min"
        print(f"  {c['id']} {c['archetype']:<9} {c['accounts']:>6,} accounts {c['events']:>11,} "
              f"events: {'DETECTED' if c['detected'] else 'not detected'}, recall "
              f"{c['recall']:.3f}, time to detect {ttd}")
    print(f"precision {result['precision']:.3f}, recall {result['recall']:.3f}, trap accounts "
          f"named {result['trap_accounts_named']}, every campaign detected: "
          f"{result['all_campaigns_detected']}")
    write_result(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
