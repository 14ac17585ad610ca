"""Where the engine's time goes, per event: decode, accept, apply, tick (CPU time).

Runs the engine over a JSONL file once with timers wrapped around its stages
and prints microseconds of CPU time per input line for each, next to a loop
that only reads and orjson-decodes the same lines. Timers add their own cost
(a few percent): use bench/engine_throughput.py for the rate, this for the
shares. For a sampling profile of the same run:
``py-spy record -o profile.svg -- .venv/bin/python bench/profile_engine.py FILE``.

The pure-Python build only (the compiled one cannot be wrapped).

Usage: python bench/profile_engine.py EVENTS.jsonl [--limit N]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# the timers wrap Engine methods, which the compiled build's Engine (a cdef class) does
# not allow: this script times the pure-Python build (models/_native.py); for the
# compiled one, `perf record` a run of bench/engine_throughput.py
if __name__ == "__main__":
    os.environ["EXW_PURE_PYTHON"] = "1"

from extraction_watch.cli import tune_gc  # noqa: E402
from models import contract  # noqa: E402
from models import engine as engine_module  # noqa: E402

clock = time.process_time


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("events")
    parser.add_argument("--limit", type=int, default=0, help="first N lines only")
    args = parser.parse_args()
    tune_gc()
    with open(args.events, "rb") as fh:
        lines = fh.read().splitlines()
    if args.limit:
        lines = lines[: args.limit]
    n = len(lines)

    started = clock()
    for line in lines:
        try:
            orjson.loads(line)
        except orjson.JSONDecodeError:
            pass
    floor = clock() - started

    spent = {"decode": 0.0, "apply": 0.0, "tick": 0.0}

    def timed(name, fn):
        def wrapper(*a, **k):
            t0 = clock()
            try:
                return fn(*a, **k)
            finally:
                spent[name] += clock() - t0
        return wrapper

    Engine = engine_module.Engine
    engine_module.decode_api_call = timed("decode", contract.decode_api_call)
    Engine._apply = timed("apply", Engine._apply)  # type: ignore[method-assign]
    Engine._tick = timed("tick", Engine._tick)  # type: ignore[method-assign]
    engine = Engine()
    started = clock()
    for i, line in enumerate(lines, 1):
        engine.process(line, {"file": args.events, "line": i})
    engine.flush()
    total = clock() - started
    # apply runs inside ticks' callers, not inside ticks: the stages do not overlap
    other = total - spent["decode"] - spent["apply"] - spent["tick"]

    def us(x: float) -> str:
        return f"{x / n * 1e6:6.2f} us"

    print(f"lines                          {n:,}")
    print(f"read + orjson.loads (floor)    {us(floor)}")
    print(f"engine total                   {us(total)}   ({n / total:,.0f} events/s CPU)")
    print(f"  decode + validate            {us(spent['decode'])}")
    print(f"  accept (dedup, lateness)     {us(other)}   (and the loop)")
    print(f"  apply (per-event state)      {us(spent['apply'])}")
    print(f"  ticks (scoring, clusters)    {us(spent['tick'])}")
    print(f"ratio engine / floor (CPU)     {floor / total:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
