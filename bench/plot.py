"""Plot the benchmark results: docs/performance.png from bench/results/*.json.

Four panels: the long run's throughput and RSS (with tracked accounts) over
the events processed, the side-by-side ratios against their targets, and the
event-to-alert latency of each alert on the real broker. A panel whose result
file is missing says so instead of failing.

Usage: python bench/plot.py [--results bench/results] [--out docs/performance.png]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]


def load(results: Path) -> dict[str, dict]:
    out = {}
    for path in sorted(results.glob("*.json")):
        try:
            out[path.stem] = orjson.loads(path.read_bytes())
        except orjson.JSONDecodeError:
            print(f"skipping {path}: not JSON", file=sys.stderr)
    return out


def _missing(ax, what: str) -> None:
    ax.text(0.5, 0.5, f"no {what} result yet", ha="center", va="center", transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])


def plot(res: dict[str, dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(13, 8.5))
    (ax_tp, ax_rss), (ax_ratio, ax_lat) = axes

    long = res.get("rss_long_run")
    if long and long.get("samples"):
        s = long["samples"]
        x = [p["events"] / 1e6 for p in s]
        ax_tp.plot(x, [p["interval_events_per_s"] / 1000 for p in s], lw=1, color="tab:blue")
        ax_tp.axhline(long["events_per_s"] / 1000, ls="--", lw=1, color="tab:gray",
                      label=f"whole run {long['events_per_s']:,} events/s")
        ax_tp.set_xlabel("events processed (millions)")
        ax_tp.set_ylabel("thousand events/s (per interval)")
        ax_tp.set_ylim(bottom=0)
        ax_tp.set_title(f"Engine throughput over the long run ({long['events']:,} events, "
                        f"{long['simulated_hours']:g} h event time)", fontsize=10)
        ax_tp.legend(loc="lower right", fontsize=8)

        ax_rss.plot(x, [p["rss_bytes"] / 2**20 for p in s], color="tab:red", label="RSS")
        ax_rss.set_xlabel("events processed (millions)")
        ax_rss.set_ylabel("RSS (MiB)", color="tab:red")
        ax_rss.set_ylim(bottom=0)
        flat = long.get("flatness", {})
        warm = flat.get("warm_from_events")
        if warm:
            ax_rss.axvline(warm / 1e6, ls=":", color="tab:gray", lw=1)
            ax_rss.text(warm / 1e6, 5, " warm", fontsize=8, color="tab:gray")
        twin = ax_rss.twinx()
        twin.plot(x, [p["tracked_accounts"] / 1000 for p in s], color="tab:green", lw=1)
        twin.set_ylabel("tracked accounts (thousands)", color="tab:green")
        twin.set_ylim(bottom=0)
        slope = flat.get("slope_mib_per_million_events")
        verdict = flat.get("verdict", "?")
        ax_rss.set_title(f"RSS and tracked accounts: {verdict}"
                         + (f", {slope:+.1f} MiB per million events after warm-up"
                            if slope is not None else ""), fontsize=10)
    else:
        _missing(ax_tp, "rss_long_run")
        _missing(ax_rss, "rss_long_run")

    bars = []
    eng = res.get("engine_throughput")
    if eng:
        bars.append(("engine /\ndecode-only", eng["ratio"], eng.get("target_ratio", 0.25)))
    peer = res.get("peer_bytewax")
    if peer:
        bars.append(("engine /\nbytewax count", peer["ratio"], peer.get("target_ratio", 1.0)))
    wk = res.get("worker_throughput")
    if wk and wk.get("ratio"):
        bars.append(("worker /\nbare consumer", wk["ratio"], wk.get("target_ratio", 0.4)))
    if bars:
        xs = range(len(bars))
        ax_ratio.bar(xs, [b[1] for b in bars], color="tab:blue", width=0.55)
        for i, (_, value, target) in enumerate(bars):
            ax_ratio.text(i, value, f"{value:.3f}", ha="center", va="bottom", fontsize=9)
            if target is not None:
                ax_ratio.hlines(target, i - 0.35, i + 0.35, colors="tab:red", linestyles="--")
                ax_ratio.text(i + 0.36, target, f"target {target:g}", fontsize=8, color="tab:red",
                              va="center")
        ax_ratio.set_xticks(list(xs), [b[0] for b in bars], fontsize=9)
        ax_ratio.set_yscale("log")
        values = [b[1] for b in bars] + [b[2] for b in bars if b[2] is not None]
        ax_ratio.set_ylim(min(values) / 2, max(values) * 2.5)
        ax_ratio.set_ylabel("ratio (same events, same run; log scale)")
        ax_ratio.set_title("Side-by-side ratios (dashed: target)", fontsize=10)
    else:
        _missing(ax_ratio, "ratio")

    lat = res.get("latency")
    runs = (lat or {}).get("runs") or ([lat] if lat and lat.get("per_alert") else [])
    if runs:
        colors = ["tab:purple", "tab:orange", "tab:cyan"]
        for k, run in enumerate(runs):
            rows = run["per_alert"]
            color = colors[k % len(colors)]
            q = run["latency"]
            ax_lat.plot(range(1, len(rows) + 1), [r["latency_s"] * 1000 for r in rows], "o-",
                        ms=3, lw=0.6, color=color,
                        label=f"{run['partitions']} partition(s): p50 {q['p50_ms']:,.0f} ms, "
                              f"p99 {q['p99_ms']:,.0f} ms")
        ax_lat.set_xlabel("alert update, in order of publication")
        ax_lat.set_ylabel("event produced -> alert published (ms)")
        ax_lat.set_ylim(bottom=0)
        ax_lat.legend(fontsize=8)
        ax_lat.set_title(f"Event-to-alert latency, one worker, real broker, "
                         f"{lat['rate_achieved']:,} events/s", fontsize=10)
    else:
        _missing(ax_lat, "latency")

    machines = {(r["machine"].get("cores"), r["machine"].get("python")) for r in res.values()
                if isinstance(r.get("machine"), dict)}
    dates = sorted(r["date"] for r in res.values() if r.get("date"))
    note = "; ".join(f"{c} cores, Python {p}" for c, p in sorted(machines, key=str))
    if dates:
        note += f"; measured {dates[0][:10]}" + (f" to {dates[-1][:10]}" if dates[-1][:10] != dates[0][:10]
                                                  else "")
    fig.suptitle(f"extraction-watch benchmarks ({note})", fontsize=11)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default=str(ROOT / "bench" / "results"))
    parser.add_argument("--out", default=str(ROOT / "docs" / "performance.png"))
    args = parser.parse_args()
    plot(load(Path(args.results)), Path(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
