"""`python -m extraction_watch.simulator SCENARIO [options]`: the same as
`extraction-watch simulate --scenario SCENARIO [options]` (one parser serves both)."""

from __future__ import annotations

import sys

from extraction_watch.cli import main


def run(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and not args[0].startswith("-"):
        args = ["--scenario", args[0], *args[1:]]
    return main(["simulate", *args])


if __name__ == "__main__":
    sys.exit(run())
