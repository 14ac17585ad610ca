"""The ``extraction-watch`` command line."""

from __future__ import annotations

import argparse
import gc
import importlib
import os
import sys
import tempfile
import time
from pathlib import Path

import orjson

__all__ = ["main"]

# Modules that add subcommands: each has ``register(subparsers)``.
_EXTRA_COMMANDS: tuple[str, ...] = (
    "extraction_watch.alerts_tool",
    "extraction_watch.produce",
    "extraction_watch.sweep",
    "streams.cli",
)


def _open_lines(path: str):
    if path == "-":
        return sys.stdin.buffer, None
    handle = open(path, "rb")  # noqa: SIM115 - closed by the caller
    return handle, os.fstat(handle.fileno()).st_size


def _parse_overrides(items: list[str]) -> dict[str, object]:
    overrides: dict[str, object] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep:
            raise SystemExit(f"--set expects key=value, got {item!r}")
        try:
            overrides[key] = orjson.loads(raw)
        except orjson.JSONDecodeError:
            overrides[key] = raw
    return overrides


def cmd_simulate(args: argparse.Namespace) -> int:
    from extraction_watch.simulator import simulate

    summary = simulate(args.scenario, args.seed, args.out, scale=args.scale, hours=args.hours,
                       overrides=_parse_overrides(args.set), bad_rate=args.bad_rate)
    print(orjson.dumps(summary, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode())
    return 0


def _replay_file(events: str, releases: str | None, alerts_out: str | None,
                 dead_letters_out: str | None, progress: bool):
    from extraction_watch.replay import replay_lines

    stream, size = _open_lines(events)
    release_lines = Path(releases).read_bytes().splitlines() if releases else []
    alerts_handle = open(alerts_out, "wb") if alerts_out else None  # noqa: SIM115
    dead_handle = open(dead_letters_out, "wb") if dead_letters_out else None  # noqa: SIM115
    try:
        return replay_lines(stream, "<stdin>" if events == "-" else os.path.basename(events),
                            alerts_out=alerts_handle, dead_letters_out=dead_handle,
                            releases=release_lines, total_bytes=size, progress=progress)
    finally:
        for handle in (alerts_handle, dead_handle):
            if handle is not None:
                handle.close()
        if stream is not sys.stdin.buffer:
            stream.close()


def cmd_replay_topic(args: argparse.Namespace) -> int:
    from streams.config import Settings
    from streams.replay import ReplayRefused, replay_topic

    settings = Settings.from_env(bootstrap=args.bootstrap)
    alerts_handle = open(args.alerts_out, "wb") if args.alerts_out else None  # noqa: SIM115
    dead_handle = open(args.dead_letters_out, "wb") if args.dead_letters_out else None  # noqa: SIM115
    try:
        summary = replay_topic(settings, args.topic or settings.topic_events, args.from_ts,
                               args.to_ts, alerts_out=alerts_handle, alerts_topic=args.alerts_topic,
                               dead_letters_out=dead_handle,
                               releases_topic=args.releases_topic or settings.topic_releases)
    except ReplayRefused as err:
        print(f"extraction-watch replay: {err}", file=sys.stderr)
        return 2
    finally:
        for handle in (alerts_handle, dead_handle):
            if handle is not None:
                handle.close()
    print(summary.format())
    if args.summary_json:
        Path(args.summary_json).write_bytes(orjson.dumps(summary.as_dict()))
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from extraction_watch.replay import format_summary

    if args.file is None or args.topic or args.bootstrap:
        if args.file is not None:
            raise SystemExit("replay: give either --file or --bootstrap/--topic, not both")
        return cmd_replay_topic(args)
    if args.alerts_out is None:
        raise SystemExit("replay --file needs --alerts-out")

    summary = _replay_file(args.file, args.releases, args.alerts_out, args.dead_letters_out,
                           progress=sys.stderr.isatty() and not args.no_progress)
    print(format_summary(summary))
    if args.summary_json:
        Path(args.summary_json).write_bytes(orjson.dumps(summary.as_dict()))
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from extraction_watch.evaluate import evaluate, format_report, load_alerts, load_truth

    result = evaluate(load_truth(args.truth), load_alerts(args.alerts),
                      max_alert_ids=args.max_alert_ids)
    if args.json:
        print(orjson.dumps(result, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode())
    else:
        print(format_report(result))
    return 0 if (result["passed"]["all"] or not args.strict) else 1


def cmd_demo(args: argparse.Namespace) -> int:
    from extraction_watch.evaluate import evaluate, format_report, load_alerts, load_truth
    from extraction_watch.replay import format_summary
    from extraction_watch.report import format_alerts
    from extraction_watch.simulator import simulate

    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="extraction-watch-demo-"))
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    print(f"== 1/3 simulating scenario '{args.scenario}' (seed {args.seed}) into {out}")
    sim = simulate(args.scenario, args.seed, out, scale=args.scale)
    print(f"   {sim['events']:,} events, {sim.get('accounts', 0):,} accounts "
          f"in {time.perf_counter() - started:.1f} s")
    print("== 2/3 replaying through the engine (no broker)")
    summary = _replay_file(str(out / "events.jsonl"), str(out / "releases.jsonl"),
                           str(out / "alerts.jsonl"), str(out / "dead_letters.jsonl"),
                           progress=sys.stderr.isatty())
    print(format_summary(summary))
    alerts = load_alerts(out / "alerts.jsonl")
    print("\n== alerts (latest update of each)\n")
    print(format_alerts(alerts))
    print("== 3/3 detection quality against the simulator's ground truth\n")
    result = evaluate(load_truth(out / "truth.json"), alerts)
    print(format_report(result))
    print(f"\nfiles in {out}: events.jsonl, truth.json, alerts.jsonl, dead_letters.jsonl")
    print(f"demo finished in {time.perf_counter() - started:.1f} s")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="extraction-watch",
        description="Detect industrial-scale capability extraction in LLM API traffic.")
    sub = parser.add_subparsers(dest="command", required=True)

    sim = sub.add_parser("simulate", help="write a simulated traffic scenario with ground truth")
    from extraction_watch.simulator import scenario_names

    sim.add_argument("--scenario", default="default",
                     help="one of: " + ", ".join(scenario_names()))
    sim.add_argument("--seed", type=int, default=1)
    sim.add_argument("--out", required=True)
    sim.add_argument("--scale", type=float, default=1.0)
    sim.add_argument("--hours", type=float, default=None)
    sim.add_argument("--bad-rate", type=float, default=None)
    sim.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help="override a scenario parameter, e.g. hydra.accounts=4000")
    sim.set_defaults(func=cmd_simulate)

    rep = sub.add_parser(
        "replay", help="run the engine over a JSONL file, or a time range of a Kafka topic",
        description="With --file: the embedded engine, no broker. With --bootstrap/--topic: "
                    "an isolated pipeline over [--from, --to) of a historical topic (no consumer "
                    "group, own state, never the production alerts topic).")
    rep.add_argument("--file", default=None, help="events JSONL ('-' for stdin)")
    rep.add_argument("--releases", default=None, help="model_release JSONL")
    rep.add_argument("--bootstrap", default=None, help="Kafka bootstrap (overrides EXW_KAFKA_BOOTSTRAP)")
    rep.add_argument("--topic", default=None, help="events topic to replay (default EXW_TOPIC_EVENTS)")
    rep.add_argument("--releases-topic", default=None, help="releases topic (default EXW_TOPIC_RELEASES)")
    rep.add_argument("--from", dest="from_ts", default=None, metavar="TS", help="RFC 3339 start (inclusive)")
    rep.add_argument("--to", dest="to_ts", default=None, metavar="TS", help="RFC 3339 end (exclusive)")
    rep.add_argument("--alerts-topic", default=None, help="write alerts to this topic (not production's)")
    rep.add_argument("--alerts-out", default=None, help="write alerts to this JSONL file")
    rep.add_argument("--dead-letters-out", default=None)
    rep.add_argument("--summary-json", default=None)
    rep.add_argument("--no-progress", action="store_true")
    rep.set_defaults(func=cmd_replay)

    ev = sub.add_parser("eval", help="score alerts against simulator ground truth")
    ev.add_argument("--truth", required=True)
    ev.add_argument("--alerts", required=True)
    ev.add_argument("--json", action="store_true")
    ev.add_argument("--strict", action="store_true", help="exit 1 when a quality bar fails")
    ev.add_argument("--max-alert-ids", type=int, default=20)
    ev.set_defaults(func=cmd_eval)

    demo = sub.add_parser("demo", help="simulate, replay and report in one go")
    demo.add_argument("--scenario", default="default")
    demo.add_argument("--seed", type=int, default=1)
    demo.add_argument("--scale", type=float, default=1.0)
    demo.add_argument("--out", default=None)
    demo.set_defaults(func=cmd_demo)
    for module in _EXTRA_COMMANDS:
        importlib.import_module(module).register(sub)
    return parser


def tune_gc() -> None:
    """Collect young garbage less often: the engine keeps many long-lived small
    objects, and CPython's default thresholds rescan them constantly (about 17%
    of replay time, measured). Only entry points call this; models/ never does."""
    gc.set_threshold(50_000, 20, 100)


def main(argv: list[str] | None = None) -> int:
    tune_gc()
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
