"""The `trioactors` command line (also `python -m trioactors`).

Each subcommand lives in its own module under `trioactors.cli` and adds
itself to the parser through `add_parser(subparsers)`, setting `run`: a
function taking the parsed arguments and returning the exit code.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from .. import __version__

__all__ = ["build_parser", "main"]

# Subcommand modules in help order.
_COMMANDS = ("demo", "epmd", "nodes", "node", "ping", "info", "top", "rpc")

LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--version", action="version", version=f"trioactors {__version__}")
    parser.add_argument(
        "--log-level",
        default=argparse.SUPPRESS,
        choices=["debug", "info", "warning", "error"],
        help="logging verbosity (default: info)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser with every available subcommand."""
    parser = argparse.ArgumentParser(
        prog="trioactors",
        description="Erlang/OTP-style actors and distribution on Trio.",
    )
    _common(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMANDS:
        module = importlib.import_module(f"trioactors.cli.{name}")
        sp = module.add_parser(sub)
        _common(sp)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `trioactors` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    level = getattr(args, "log_level", "info")
    logging.basicConfig(level=level.upper(), format=LOG_FORMAT, stream=sys.stderr)
    run = getattr(args, "run", None)
    if run is None:
        parser.print_help()
        return 2
    try:
        code: int = run(args)
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
