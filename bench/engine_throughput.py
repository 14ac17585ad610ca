"""Engine throughput against the physical limit of a Python JSONL reader, and memory.

Prints, from one run on the same file:
  * decode-only rate: a loop that only reads lines and orjson-decodes them;
  * engine rate: the full engine (validation, aggregates, scoring, alerts);
  * their ratio (target >= 0.15 for now);
  * peak RSS of the process;
  * bytes per tracked account with 100 thousand accounts tracked.

Usage: python bench/engine_throughput.py [--events 1000000] [--seed 1] [--json out.json]
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import random
import resource
import sys
import time
import tracemalloc
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from extraction_watch.cli import tune_gc  # noqa: E402
from extraction_watch.replay import replay_lines  # noqa: E402
from extraction_watch.simulator import simulate  # noqa: E402
from models.engine import Engine  # noqa: E402


def decode_only(path: Path) -> tuple[int, float]:
    loads = orjson.loads
    n = 0
    started = time.perf_counter()
    with open(path, "rb") as fh:
        for line in fh:
            try:
                loads(line)
            except orjson.JSONDecodeError:
                pass  # the file carries a few deliberately broken lines
            n += 1
    return n, time.perf_counter() - started


def engine_run(path: Path) -> tuple[int, float, int]:
    with open(path, "rb") as fh:
        summary = replay_lines(fh, path.name, alerts_out=None)
    return summary.lines, summary.wall_s, summary.alert_ids


def bytes_per_account(accounts: int, events_per_account: int = 3, seed: int = 5) -> tuple[float, int]:
    """Feed events for ``accounts`` distinct accounts and measure traced heap growth."""
    rng = random.Random(seed)
    tasks = ["coding", "chat", "writing", "reasoning", "math"]
    base = 1_772_755_200.0  # 2026-03-06T00:00:00Z
    total = accounts * events_per_account
    engine = Engine()
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for i in range(total):
        t = base + i * (36 * 3600 / total)
        acct = rng.randrange(accounts)
        ms = int(t * 1000)
        ev = {
            "v": 1, "event_id": f"e{i}", "account_id": f"acct_{acct:08x}",
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z",
            "access_path": "api", "client_ip": f"10.{acct % 250}.{(acct // 250) % 250}.{acct % 200 + 1}",
            "asn": 64500 + acct % 50, "model": "claude-sim-3", "features": [],
            "task": tasks[acct % 5], "prompt_simhash": f"{rng.getrandbits(64):016x}",
            "cot_elicitation": round(rng.random() * 0.2, 3), "input_tokens": 300,
            "output_tokens": 500, "status": 200, "payment_fingerprint": f"pay{acct:08x}",
            "account_created_at": "2024-01-01T00:00:00Z",
        }
        engine.process(orjson.dumps(ev))
    engine.flush()
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    tracked = engine.tracked_accounts()
    return (after - before) / max(tracked, 1), tracked


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--workdir", default=str(ROOT / "bench" / "out"))
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    tune_gc()  # the same setting as the command line

    workdir = Path(args.workdir) / f"default-seed{args.seed}-{args.events}"
    events = workdir / "events.jsonl"
    if not events.exists():
        print(f"simulating ~{args.events:,} events into {workdir} ...", flush=True)
        summary = simulate("default", args.seed, workdir, scale=args.events / 1_000_000)
        print(f"  {summary['events']:,} events", flush=True)

    decode_only(events)  # warm the page cache
    n_dec, s_dec = decode_only(events)
    n_eng, s_eng, alert_ids = engine_run(events)
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    per_account, tracked = bytes_per_account(args.accounts)

    result = {
        "machine": {"cores": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform()},
        "events": n_eng,
        "decode_only_events_per_s": round(n_dec / s_dec),
        "engine_events_per_s": round(n_eng / s_eng),
        "ratio": round((n_eng / s_eng) / (n_dec / s_dec), 4),
        "alert_ids": alert_ids,
        "peak_rss_bytes": peak_rss,
        "tracked_accounts_for_memory": tracked,
        "bytes_per_tracked_account": round(per_account),
    }
    print(f"events                      {n_eng:,}")
    print(f"decode-only (read+orjson)   {result['decode_only_events_per_s']:,} events/s")
    print(f"engine (full detection)     {result['engine_events_per_s']:,} events/s")
    print(f"ratio engine/decode-only    {result['ratio']:.3f}   (target >= 0.15)")
    print(f"peak RSS                    {peak_rss / 2**20:,.0f} MiB")
    print(f"bytes per tracked account   {per_account:,.0f}   ({tracked:,} accounts tracked)")
    if args.json:
        Path(args.json).write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
