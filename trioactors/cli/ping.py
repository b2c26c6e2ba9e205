"""`trioactors ping NODE`: handshake with a node; ``pong`` (exit 0) or ``pang`` (exit 1).

NODE is a name looked up through EPMD, or ``name@host:port``. Like Erlang's
``net_adm:ping/1`` the answer is a full authenticated handshake, so a wrong
cookie is a ``pang`` too (the reason goes to the log).
"""

from __future__ import annotations

import argparse
import logging

import trio

from ..errors import TrioActorsError
from .remote import Remote, add_remote_options, connected, remote_from_args, report_failure

__all__ = ["add_parser", "run"]

log = logging.getLogger("trioactors.ping")


def add_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """Add the `ping` subcommand."""
    parser = subparsers.add_parser(
        "ping",
        help="check that a node answers (prints pong or pang)",
        description="Connect to NODE and complete the authenticated handshake. Prints "
        "'pong' and exits 0 if it answers, 'pang' and exits 1 otherwise.",
    )
    add_remote_options(parser)
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Ping the node; 0 for pong, 1 for pang."""
    remote = remote_from_args(args)
    if remote is None:
        print("pang", flush=True)
        return 1
    ok = trio.run(_ping, remote)
    print("pong" if ok else "pang", flush=True)
    return 0 if ok else 1


async def _ping(remote: Remote) -> bool:
    with trio.move_on_after(remote.timeout):
        try:
            async with connected(remote):
                return True
        except (TrioActorsError, OSError, ValueError) as exc:
            report_failure(remote, exc)
            return False
    log.error("node %r did not answer within %s s", remote.label, remote.timeout)
    return False
