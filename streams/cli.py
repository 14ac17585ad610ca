"""Subcommands of the Kafka side: ``worker``."""

from __future__ import annotations

import argparse

__all__ = ["register"]


def cmd_worker(args: argparse.Namespace) -> int:
    from streams.config import Settings
    from streams.worker import run

    settings = Settings.from_env(bootstrap=args.bootstrap, web_port=args.web_port)
    run(settings, loglevel=args.loglevel)
    return 0


def register(sub) -> None:
    worker = sub.add_parser(
        "worker", help="run a Faust worker: consume api-calls, publish alerts and dead letters",
        description="Configuration comes from EXW_ environment variables (see README).")
    worker.add_argument("--bootstrap", default=None, help="overrides EXW_KAFKA_BOOTSTRAP")
    worker.add_argument("--web-port", type=int, default=None, help="overrides EXW_WEB_PORT")
    worker.add_argument("--loglevel", default="warning")
    worker.set_defaults(func=cmd_worker)
