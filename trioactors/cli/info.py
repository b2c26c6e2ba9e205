"""`trioactors info NODE`: a running node's name, uptime, peers and connections."""

from __future__ import annotations

import argparse
import logging

import trio

from ..cluster.rpc import ConnectionInfo, NodeSummary
from ..errors import TrioActorsError
from .remote import Remote, add_remote_options, connected, remote_from_args, report_failure

__all__ = ["add_parser", "format_connections", "format_summary", "run"]

log = logging.getLogger("trioactors.cli")


def add_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """Add the `info` subcommand."""
    parser = subparsers.add_parser(
        "info",
        help="show a running node: uptime, processes, peers, connections",
        description="Connect to NODE and print what it reports about itself (its "
        "trioactors.node_info and trioactors.connections rpc functions).",
    )
    add_remote_options(parser)
    parser.set_defaults(run=run)
    return parser


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    days, seconds = divmod(seconds, 86400)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    if days:
        return f"{days}d {hours}h {minutes}m"
    if hours:
        return f"{hours}h {minutes}m {seconds}s"
    return f"{minutes}m {seconds}s" if minutes else f"{seconds}s"


def format_summary(summary: NodeSummary, *, hide: str | None = None) -> list[str]:
    """The lines `info` prints about the node (`hide`: our own probe node)."""
    peers = [p for p in summary.peers if p != hide]
    return [
        f"node {summary.name} (creation {summary.creation}) at {summary.address}",
        f"uptime:    {_duration(summary.uptime)}",
        f"epmd:      {summary.epmd or 'none'}",
        f"processes: {summary.processes}",
        f"peers:     {', '.join(peers) if peers else '(none)'}",
    ]


def format_connections(conns: list[ConnectionInfo], *, hide: str | None = None) -> list[str]:
    """A table of connection figures."""
    rows = [c for c in conns if c.node != hide]
    if not rows:
        return ["connections: (none)"]
    head = ("NODE", "IN", "OUT", "RECORDS IN", "RECORDS OUT", "QUEUED", "UP", "LAST HEARD")
    table = [head] + [
        (
            c.node,
            _size(c.bytes_in),
            _size(c.bytes_out),
            str(c.records_in),
            str(c.records_out),
            str(c.queued),
            _duration(c.connected_for),
            f"{c.last_heard:.1f}s ago",
        )
        for c in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(head))]
    return ["connections:"] + [
        "  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in table
    ]


def run(args: argparse.Namespace) -> int:
    """Print the node's summary; 1 if it cannot be reached."""
    remote = remote_from_args(args)
    if remote is None:
        return 1
    return trio.run(_info, remote)


async def _info(remote: Remote) -> int:
    try:
        with trio.fail_after(remote.timeout):
            async with connected(remote) as (me, name):
                summary = await me.rpc(name, "trioactors.node_info", timeout=remote.timeout)
                conns = await me.rpc(name, "trioactors.connections", timeout=remote.timeout)
    except trio.TooSlowError:
        log.error("node %r did not answer within %s s", remote.label, remote.timeout)
        return 1
    except (TrioActorsError, OSError, ValueError) as exc:
        report_failure(remote, exc)
        return 1
    for line in format_summary(summary, hide=me.name) + format_connections(conns, hide=me.name):
        print(line)
    return 0
