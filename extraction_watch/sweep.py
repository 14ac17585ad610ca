"""``extraction-watch sweep``: detection quality over many randomly shaped small worlds.

One simulator setting proves little: a detector tuned to it fails on traffic
shaped otherwise. A sweep draws ``--worlds`` worlds from the ``small``
scenario with every campaign, trap and population shape drawn at random
(campaign sizes, rates, timing, synchrony, payment methods, templates and
their noise, chain-of-thought share, aged accounts, churn, egress; trap and
benign population sizes; now and then a campaign left out), replays each
through the embedded engine and judges it by the quality bars of
``extraction-watch eval``. World ``i`` is always the same world (its draw is
seeded by ``i``), so a failing world can be re-run alone (``--first i
--worlds 1``) and kept as a regression case.

It prints one line per world and a summary (worlds that pass every bar,
failures per bar, mean recall, lowest precision), and with ``--json`` writes
them to a file. Exit 0 whatever the quality: it measures, it does not gate; exit 1
when a world could not run at all (the others still run and are reported). With
``--keep`` each world leaves about 80 MB of files.

>>> draw(4) == draw(4), draw(4) == draw(5)
(True, False)
>>> 0.4 <= draw(4)["hydra.templated_share"] <= 0.95
True
"""

from __future__ import annotations

import argparse
import io
import random
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import orjson

from extraction_watch.machine import machine

__all__ = ["draw", "run_world", "register", "summarise"]

# the base sizes of the `small` scenario's campaigns, which draws scale up and down
_BASE = {
    "reasoning": {"accounts": 12, "rate_per_hour": 200},
    "agentic": {"accounts": 60, "rate_per_hour": 400},
    "hydra": {"accounts": 250, "rate_per_hour": 600},
}


def draw(world: int) -> dict[str, Any]:
    """The simulator overrides of sweep world ``world`` (on the ``small`` scenario)."""
    rng = random.Random(1000 + world)
    u = rng.uniform
    o: dict[str, Any] = {
        "benign.accounts": rng.choice([1500, 2500, 4000, 6000]),
        "benign.requests_per_day_median": round(u(1.5, 6), 2),
        "benign.diurnal_amplitude": round(u(0.3, 0.95), 2),
        "benign.template_share": round(u(0.03, 0.2), 3),
        "benign.cot_moderate_share": round(u(0.05, 0.3), 3),
        "benign.shared_ip_share": round(u(0.0, 0.08), 3),
        "benign.datacenter_share": round(u(0.1, 0.5), 3),
        "benign.new_account_share": round(u(0.01, 0.1), 3),
        "benign.app_share": round(u(0.01, 0.1), 3),
        "proxy.pool_ips": rng.choice([40, 80, 200]),
    }
    for group, base in _BASE.items():
        if rng.random() < 0.1:
            o[f"{group}.enabled"] = False
            continue
        accounts = max(4, int(base["accounts"] * u(0.4, 2.5)))
        o[f"{group}.accounts"] = accounts
        o[f"{group}.rate_per_hour"] = round(base["rate_per_hour"] * u(0.4, 2.5))
        o[f"{group}.start_h"] = round(u(1, 12), 1)
        timing = rng.choice(["steady", "waves"])
        o[f"{group}.timing"] = timing
        if timing == "waves":
            o[f"{group}.wave_size"] = round(u(2, 15), 1)
            o[f"{group}.wave_spread_s"] = round(u(0, 30), 1)
        o[f"{group}.regularity"] = round(u(1, 10), 1)
        o[f"{group}.synchrony"] = round(u(0.2, 0.95), 2)
        o[f"{group}.calls_per_episode"] = round(u(1, 8), 1)
        o[f"{group}.payment_methods"] = max(1, int(accounts * u(0.05, 0.4)))
        o[f"{group}.templates"] = rng.choice([2, 4, 8, 20, 50])
        o[f"{group}.template_noise_bits"] = rng.choice([2, 3, 4, 5, 6])
        o[f"{group}.templated_share"] = round(u(0.4, 0.95), 2)
        o[f"{group}.cot_mean"] = round(u(0.1, 0.9), 2)
        o[f"{group}.aged_share"] = round(rng.choice([0.0, 0.0, u(0.1, 0.8)]), 2)
        o[f"{group}.churn"] = round(rng.choice([0.0, u(0.1, 0.5)]), 2)
        o[f"{group}.org_share"] = round(u(0.0, 0.8), 2)
        o[f"{group}.diurnal_amplitude"] = round(u(0, 0.5), 2)
        if group != "hydra":  # the hydra always runs behind the shared proxy network
            o[f"{group}.egress"] = rng.choice(["datacenter", "mixed"])
    o["hydra.pivot_share"] = round(u(0.3, 0.7), 2)
    o["hydra.pivot_delay_h"] = round(u(0.5, 4), 1)
    o["nat.accounts"] = rng.choice([60, 120, 300])
    o["nat.ips"] = rng.choice([1, 2, 4])
    o["popular_template.accounts"] = rng.choice([50, 100, 250])
    o["popular_template.template_share"] = round(u(0.2, 0.9), 2)
    o["research_team.accounts"] = rng.choice([2, 4, 8, 15])
    o["research_team.requests_per_day_median"] = round(u(20, 80))
    o["enterprise_batch.rate_per_hour"] = round(u(500, 4000))
    o["enterprise_batch.api_keys"] = rng.choice([1, 3, 6])
    o["fast_adopters.accounts"] = rng.choice([30, 60, 150])
    o["proxy_customers.accounts"] = rng.choice([20, 50, 120])
    # the research team's shape, drawn apart so that every draw above stays as it was:
    # with or without an org, its size, volume and how even its members' volumes are
    trap = random.Random(3000 + world)
    o["research_team.shared_org"] = trap.random() < 0.5
    if trap.random() < 0.4:
        o["research_team.accounts"] = trap.choice([20, 30, 45])
        o["research_team.requests_per_day_median"] = round(trap.uniform(40, 120))
    o["research_team.rate_sigma"] = round(trap.uniform(0.25, 1.0), 2)
    return o


def run_world(world: int, keep: Path | None = None) -> dict[str, Any]:
    """Simulate, replay and judge sweep world ``world``; return its line of the report
    (with ``keep``, its files stay in ``keep/w<world>``)."""
    from extraction_watch.evaluate import evaluate, load_alerts, load_truth
    from extraction_watch.replay import replay_lines
    from extraction_watch.simulator import simulate

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="exw-sweep-") as tmp:
        out = (keep / f"w{world}") if keep is not None else Path(tmp)
        overrides = draw(world)
        simulate("small", 500 + world, out, overrides=overrides)
        alerts = io.BytesIO()
        with open(out / "events.jsonl", "rb") as events:
            summary = replay_lines(events, "events.jsonl", alerts_out=alerts,
                                   releases=(out / "releases.jsonl").read_bytes().splitlines(),
                                   clock=lambda: 0.0)
        (out / "alerts.jsonl").write_bytes(alerts.getvalue())
        if keep is not None:
            (out / "overrides.json").write_bytes(orjson.dumps(overrides, option=orjson.OPT_INDENT_2))
        result = evaluate(load_truth(out / "truth.json"), load_alerts(out / "alerts.jsonl"),
                          max_alert_ids=None)
    return {
        "world": world,
        "events": summary.lines,
        "passed": result["passed"]["all"],
        "failed": sorted(bar for bar, ok in result["passed"].items() if not ok and bar != "all"),
        "precision": round(result["accounts"]["precision"], 4),
        "recall": round(result["accounts"]["recall"], 4),
        "campaigns": [{"archetype": c["archetype"], "detected": c["detected"],
                       "recall": round(c["recall"], 4), "time_to_detect_s": c["time_to_detect_s"],
                       "pivot_latency_s": c["pivot_latency_s"]} for c in result["campaigns"]],
        "trap_accounts_named": {name: t["named_actionable"] for name, t in result["traps"].items()
                                if t["named_actionable"]},
        "wall_s": round(time.perf_counter() - started, 1),
    }


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    failures: dict[str, int] = {}
    for row in rows:
        for bar in row["failed"]:
            failures[bar] = failures.get(bar, 0) + 1
    return {
        "worlds": len(rows),
        "passed_all_bars": sum(1 for r in rows if r["passed"]),
        "failures_by_bar": dict(sorted(failures.items())),
        "mean_recall": round(statistics.fmean(r["recall"] for r in rows), 4) if rows else None,
        "min_precision": min((r["precision"] for r in rows), default=None),
        "failing_worlds": [r["world"] for r in rows if not r["passed"]],
    }


def _line(row: dict[str, Any]) -> str:
    verdict = "pass" if row["passed"] else "FAIL " + ",".join(row["failed"])
    camps = " ".join(f"{c['archetype']}:{c['recall']:.2f}/{(c['time_to_detect_s'] or 0) / 60:.0f}m"
                     for c in row["campaigns"])
    return (f"world {row['world']:4d}  {row['events']:7d} events  precision {row['precision']:.3f}"
            f"  recall {row['recall']:.3f}  [{camps}]  {verdict}")


def cmd_sweep(args: argparse.Namespace) -> int:
    worlds = list(range(args.first, args.first + args.worlds))
    keep = Path(args.keep) if args.keep else None
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    started = time.perf_counter()
    errors: list[dict[str, Any]] = []
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = [pool.submit(run_world, world, keep) for world in worlds]
        for world, future in zip(worlds, futures, strict=True):
            try:
                row = future.result()
            except Exception as err:  # one world that cannot run does not end the sweep
                errors.append({"world": world, "error": f"{type(err).__name__}: {err}"})
                print(f"world {world:4d}  ERROR {type(err).__name__}: {err}", flush=True)
                continue
            rows.append(row)
            print(_line(row), flush=True)
    summary = summarise(rows)
    summary["errors"] = len(errors)
    print(f"\n{summary['passed_all_bars']} of {summary['worlds']} worlds pass every bar; "
          f"failures by bar {summary['failures_by_bar'] or 'none'}; mean recall "
          f"{summary['mean_recall']}, lowest precision {summary['min_precision']} "
          f"({time.perf_counter() - started:.0f} s)"
          + (f"; {len(errors)} world(s) could not run" if errors else ""))
    if args.json:
        Path(args.json).write_bytes(orjson.dumps(
            {"benchmark": "quality_sweep",
             "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "machine": machine(),
             "command": "extraction-watch sweep " + " ".join(sys.argv[2:]),
             "summary": summary, "worlds": rows, "errors": errors}, option=orjson.OPT_INDENT_2))
    return 1 if errors else 0


def register(subparsers: Any) -> None:
    """Add ``sweep`` to the ``extraction-watch`` command line."""
    sw = subparsers.add_parser(
        "sweep", help="detection quality over many randomly shaped small worlds",
        description="Simulate --worlds small worlds with campaign, trap and population shapes "
                    "drawn at random (world i is always the same), replay each through the "
                    "embedded engine and judge it by the quality bars of `eval`.")
    sw.add_argument("--worlds", type=int, default=40)
    sw.add_argument("--first", type=int, default=0, help="number of the first world")
    sw.add_argument("--jobs", type=int, default=2, help="worlds run at once (processes)")
    sw.add_argument("--keep", default=None, metavar="DIR",
                    help="keep each world's events, truth, alerts and overrides in DIR/w<i> "
                         "(about 80 MB a world)")
    sw.add_argument("--json", default=None, metavar="FILE", help="write the results as JSON")
    sw.set_defaults(func=cmd_sweep)
