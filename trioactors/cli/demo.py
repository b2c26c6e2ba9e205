"""`trioactors demo`: the cluster demo (or `--local`, the supervision demo).

The demos are examples, not library code: they live in the source tree as
examples/demo_cluster.py and examples/demo_local.py (what `make demo` runs).
This command finds them next to the installed package (a source checkout or
an editable install) and runs them as scripts.
"""

from __future__ import annotations

import argparse
import logging
import runpy
import sys
from pathlib import Path

__all__ = ["add_parser", "find_example", "run"]

log = logging.getLogger("trioactors.cli")


def add_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """Add the `demo` subcommand."""
    parser = subparsers.add_parser(
        "demo",
        help="a guided demo, explained as it runs (examples/demo_cluster.py)",
        description="Run a demo cluster on embedded defaults that explains itself as it "
        "goes and ends by itself; --local runs the single-system supervision demo.",
    )
    parser.add_argument(
        "--local",
        action="store_true",
        help="the local demo: a supervision tree, a crash and its restart, in one process",
    )
    parser.add_argument(
        "--pause",
        type=float,
        default=0.4,
        metavar="SECONDS",
        help="pause between steps so the story can be followed (default: %(default)s)",
    )
    parser.set_defaults(run=run)
    return parser


def find_example(name: str) -> Path | None:
    """examples/NAME next to the package (source checkout), or None."""
    candidate = Path(__file__).resolve().parents[2] / "examples" / name
    return candidate if candidate.is_file() else None


def run(args: argparse.Namespace) -> int:
    """Run the chosen demo script with its own command line."""
    name = "demo_local.py" if args.local else "demo_cluster.py"
    script = find_example(name)
    if script is None:
        log.error(
            "the demo is examples/%s in trioactors' source tree, which this installation "
            "does not include: clone the repository and run `make demo`",
            name,
        )
        return 1
    argv = [str(script), "--pause", str(args.pause)]
    if args.local and hasattr(args, "log_level"):
        argv += ["--log-level", args.log_level]
    saved = sys.argv
    sys.argv = argv
    try:
        runpy.run_path(str(script), run_name="__main__")
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv = saved
    return 0
