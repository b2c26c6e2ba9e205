"""`trioactors rpc NODE FUNCTION [ARG...]`: call a function the node registered.

Each ARG is read as JSON when it parses (``3``, ``"x"``, ``[1, 2]``,
``{"k": true}``, ``null``) and as a plain string otherwise, so
``trioactors rpc beta add 2 3`` passes two ints. The result is printed as
JSON when it is plain data, else as its repr.
"""

from __future__ import annotations

import argparse
import json
import logging
from typing import Any

import trio

from ..errors import RpcFailed, TrioActorsError
from .remote import Remote, add_remote_options, connected, remote_from_args, report_failure

__all__ = ["add_parser", "parse_arg", "run"]

log = logging.getLogger("trioactors.cli")


def add_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """Add the `rpc` subcommand."""
    parser = subparsers.add_parser(
        "rpc",
        help="call a function a running node registered (node.register_rpc)",
        description="Call FUNCTION, registered on NODE with node.register_rpc (or one of "
        "the built-in trioactors.* functions), with ARGs read as JSON where they parse.",
    )
    add_remote_options(parser, timeout=10.0)
    parser.add_argument("function", metavar="FUNCTION", help="the registered function's name")
    parser.add_argument("arg", metavar="ARG", nargs="*", help="arguments (JSON, else strings)")
    parser.set_defaults(run=run)
    return parser


def parse_arg(text: str) -> Any:
    """`text` as JSON if it parses, else the string itself."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _show(value: Any) -> str:
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


def run(args: argparse.Namespace) -> int:
    """Call the function; print its result (exit 0) or why it failed (exit 1)."""
    remote = remote_from_args(args)
    if remote is None:
        return 1
    return trio.run(_rpc, remote, args.function, [parse_arg(a) for a in args.arg])


async def _rpc(remote: Remote, function: str, arguments: list[Any]) -> int:
    try:
        async with connected(remote) as (me, name):
            result = await me.rpc(name, function, *arguments, timeout=remote.timeout)
    except RpcFailed as exc:
        log.error("%s", exc)
        return 1
    except (TrioActorsError, OSError, ValueError) as exc:
        report_failure(remote, exc)
        return 1
    print(_show(result))
    return 0
