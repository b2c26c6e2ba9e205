"""`trioactors top NODE`: a live view of a running node, like Erlang's
observer or `etop`: its processes sorted by mailbox length, and its
connections. `--once` prints one snapshot and exits (for scripts).

The view is fetched with the node's built-in rpc functions
(``trioactors.node_info``, ``trioactors.processes``,
``trioactors.connections``), so any node can be watched without setup.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shutil
import sys
import termios
import tty
from collections.abc import AsyncIterator, Sequence
from typing import TextIO

import trio

from ..cluster.node import Node
from ..errors import RpcFailed, TrioActorsError
from ..runtime.introspection import ProcessInfo
from .info import format_connections, format_summary
from .remote import Remote, add_remote_options, connected, remote_from_args, report_failure

__all__ = ["add_parser", "format_processes", "run"]

log = logging.getLogger("trioactors.cli")

# The alternate screen (restored on exit, as top(1) does), home + clear.
_ENTER = "\x1b[?1049h\x1b[?25l"
_LEAVE = "\x1b[?25h\x1b[?1049l"
_CLEAR = "\x1b[H\x1b[2J"
_QUIT_KEYS = frozenset(b"qQ\x1b")


def add_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """Add the `top` subcommand."""
    parser = subparsers.add_parser(
        "top",
        help="live view of a running node: processes by mailbox length, connections",
        description="Show NODE's processes (largest mailbox first) and its connections, "
        "refreshed every --interval seconds until you press q (or Ctrl-C). With --once, "
        "print one snapshot and exit.",
    )
    add_remote_options(parser)
    parser.add_argument("--once", action="store_true", help="print one snapshot and exit")
    parser.add_argument(
        "--interval",
        type=_positive,
        default=2.0,
        metavar="SECONDS",
        help="refresh period of the live view (default: %(default)s)",
    )
    parser.add_argument(
        "--limit",
        type=int,
        default=None,
        metavar="N",
        help="show at most N processes (default: all with --once, else what fits the terminal)",
    )
    parser.set_defaults(run=run)
    return parser


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {text!r}")
    return value


def _short(value: object, width: int) -> str:
    text = str(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def format_processes(infos: Sequence[ProcessInfo], limit: int | None = None) -> list[str]:
    """A table of processes, largest mailbox first (then most messages received)."""
    ordered = sorted(infos, key=lambda i: (-i.mailbox, -i.received, i.pid.id, i.pid.serial))
    shown = ordered if limit is None else ordered[: max(limit, 0)]
    head = ("PID", "NAME", "STATUS", "MAILBOX", "RECEIVED", "LINKS", "MONITORS", "PARENT")
    rows = [head] + [
        (
            str(i.pid),
            _short(i.name or "-", 24),
            i.status,
            str(i.mailbox),
            str(i.received),
            str(len(i.links)),
            str(len(i.monitors)),
            str(i.parent) if i.parent is not None else "-",
        )
        for i in shown
    ]
    widths = [max(len(row[c]) for row in rows) for c in range(len(head))]
    right = {3, 4, 5, 6}  # numbers line up on the right
    lines = [
        "  ".join(
            cell.rjust(w) if c in right else cell.ljust(w)
            for c, (cell, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    ]
    hidden = len(ordered) - len(shown)
    if hidden:
        lines.append(f"... and {hidden} more")
    return lines


async def _snapshot(
    me: Node, name: str, remote: Remote, limit: int | None, *, fit: bool
) -> list[str]:
    summary = await me.rpc(name, "trioactors.node_info", timeout=remote.timeout)
    infos = await me.rpc(name, "trioactors.processes", timeout=remote.timeout)
    conns = await me.rpc(name, "trioactors.connections", timeout=remote.timeout)
    others = [c for c in conns if c.node != me.name]
    if limit is None and fit:
        # Fit the terminal: summary, blank, table head, "more", blank, connections.
        rows = shutil.get_terminal_size().lines
        limit = max(rows - 5 - 4 - 3 - max(len(others), 1) - 1, 1)
    return [
        *format_summary(summary, hide=me.name),
        "",
        *format_processes(infos, limit),
        "",
        *format_connections(conns, hide=me.name),
    ]


@contextlib.asynccontextmanager
async def _keyboard() -> AsyncIterator[trio.lowlevel.FdStream | None]:
    """Key presses from the terminal, one at a time without Enter (cbreak
    mode, restored on exit); None when stdin is not a terminal."""
    if not sys.stdin.isatty():
        yield None
        return
    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    tty.setcbreak(fd)
    # FdStream makes the descriptor non-blocking; stdin's own flag is shared
    # with the duplicate, so it is restored below.
    stream = trio.lowlevel.FdStream(os.dup(fd))
    try:
        yield stream
    finally:
        with trio.CancelScope(shield=True):
            await stream.aclose()
        os.set_blocking(fd, True)
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


async def _quit_pressed(keys: trio.lowlevel.FdStream | None, within: float) -> bool:
    """Wait up to `within` seconds; True if a quit key was pressed."""
    with trio.move_on_after(within):
        if keys is None:
            await trio.sleep_forever()
        while True:
            data = await keys.receive_some(64)
            if not data or _QUIT_KEYS.intersection(data):
                return True
    return False


def run(args: argparse.Namespace) -> int:
    """Show the node (live, or once); 1 if it cannot be reached."""
    remote = remote_from_args(args)
    if remote is None:
        return 1
    try:
        return trio.run(_top, remote, args.once, args.interval, args.limit, sys.stdout)
    except KeyboardInterrupt:
        return 0  # Ctrl-C is how a live view is left, as with top(1)


async def _top(remote: Remote, once: bool, interval: float, limit: int | None, out: TextIO) -> int:
    try:
        async with connected(remote) as (me, name):
            if once:
                lines = await _snapshot(me, name, remote, limit, fit=False)
                out.write("\n".join(lines) + "\n")
                return 0
            return await _live(me, name, remote, interval, limit, out)
    except RpcFailed as exc:
        log.error("%s", exc)
    except (TrioActorsError, OSError, ValueError) as exc:
        report_failure(remote, exc)
    return 1


async def _live(
    me: Node, name: str, remote: Remote, interval: float, limit: int | None, out: TextIO
) -> int:
    async with _keyboard() as keys:
        out.write(_ENTER)
        try:
            while True:
                lines = await _snapshot(me, name, remote, limit, fit=True)
                footer = f"refreshed every {interval:g} s · q to quit"
                out.write(_CLEAR + "\n".join([*lines, "", footer]) + "\n")
                out.flush()
                if await _quit_pressed(keys, interval):
                    return 0
        finally:
            out.write(_LEAVE)
            out.flush()
