"""`python -m extraction_watch.simulator SCENARIO --seed N --out DIR`: simulate and print the summary."""

from __future__ import annotations

import argparse
import json

from . import scenario_names, simulate


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m extraction_watch.simulator")
    parser.add_argument("scenario", choices=scenario_names())
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", required=True)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--hours", type=float, default=None)
    parser.add_argument("--bad-rate", type=float, default=None)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=JSON",
                        help='override a parameter, e.g. --set hydra.accounts=4000')
    args = parser.parse_args(argv)
    overrides = {}
    for item in args.set:
        key, _, value = item.partition("=")
        overrides[key] = json.loads(value)
    summary = simulate(args.scenario, args.seed, args.out, scale=args.scale, hours=args.hours,
                       overrides=overrides, bad_rate=args.bad_rate)
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
