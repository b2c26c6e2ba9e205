"""`trioactors nodes`: list the nodes an EPMD daemon knows (ours or Erlang's epmd)."""

from __future__ import annotations

import argparse
import os
import sys

import trio

from ..epmd.client import EpmdClient
from ..epmd.server import DEFAULT_PORT
from ..errors import EpmdError
from ..wire.epmd_native import NodeInfo
from ..wire.names import parse_host_port

__all__ = ["add_parser", "default_epmd", "format_table", "parse_address", "run"]

ENV_EPMD = "TRIOACTORS_EPMD"


def default_epmd() -> str:
    """The EPMD address from TRIOACTORS_EPMD, else 127.0.0.1:4369."""
    return os.environ.get(ENV_EPMD) or f"127.0.0.1:{DEFAULT_PORT}"


def parse_address(text: str, default_port: int = DEFAULT_PORT) -> tuple[str, int]:
    """`host:port`, `host`, `:port` or `[v6addr]:port` -> (host, port), through
    the one address parser (`parse_host_port`); ValueError naming ``--epmd``."""
    stripped = text.strip()
    if stripped and ":" not in stripped and not stripped.startswith("["):
        stripped = f"{stripped}:{default_port}"  # a bare host: the default port
    elif stripped.startswith("[") and stripped.endswith("]"):
        stripped = f"{stripped}:{default_port}"  # a bare [v6addr]
    try:
        return parse_host_port(stripped, what="--epmd", default_host="127.0.0.1")
    except ValueError as exc:
        raise ValueError(str(exc).replace(repr(stripped), repr(text))) from None


def _epmd_arg(text: str) -> str:
    try:
        parse_address(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--epmd: ")) from None
    return text


def add_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """Add the `nodes` subcommand."""
    parser = subparsers.add_parser(
        "nodes",
        help="list the nodes registered with an EPMD daemon",
        description=(
            "List the nodes registered with an EPMD daemon: a trioactors daemon (with "
            "each node's metadata) or a real Erlang epmd. Exit 1 when no daemon answers."
        ),
    )
    parser.add_argument(
        "--epmd",
        type=_epmd_arg,
        default=None,
        metavar="HOST:PORT",
        help=f"the daemon (default: ${ENV_EPMD} or 127.0.0.1:{DEFAULT_PORT})",
    )
    parser.set_defaults(run=run)
    return parser


def format_table(nodes: list[NodeInfo]) -> str:
    """A readable table of `nodes` (name, host, port, kind, creation, metadata)."""
    header = ("NAME", "HOST", "PORT", "KIND", "CREATION", "METADATA")
    rows = [header]
    for n in sorted(nodes, key=lambda n: n.name):
        meta = [f"v{n.protocol_version}"] if n.kind == "trioactors" else []
        if n.erlang is not None:
            kind = {77: "normal", 72: "hidden"}.get(n.erlang.node_type, str(n.erlang.node_type))
            meta.append(f"{kind} node, dist {n.erlang.lowest_version}-{n.erlang.highest_version}")
        if n.capabilities:
            meta.append("caps=" + ",".join(n.capabilities))
        meta.extend(f"{k}={v}" for k, v in sorted(n.metadata.items()))
        rows.append(
            (
                n.name,
                n.host,
                str(n.port),
                n.kind,
                "-" if n.creation is None else str(n.creation),
                " ".join(meta) or "-",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header) - 1)]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r[:-1], widths, strict=True)) + "  " + r[-1]
        for r in rows
    )


def run(args: argparse.Namespace) -> int:
    """Print the table; 1 with a one-line message when no daemon answers."""
    text = args.epmd or default_epmd()
    try:
        host, port = parse_address(text)
    except ValueError as exc:
        print(f"trioactors nodes: {exc}", file=sys.stderr)
        return 2
    try:
        protocol, nodes = trio.run(_list, host, port)
    except EpmdError as exc:
        print(f"trioactors nodes: {exc}", file=sys.stderr)
        return 1
    daemon = "trioactors EPMD" if protocol == "native" else "Erlang epmd"
    count = f"{len(nodes)} node{'s' if len(nodes) != 1 else ''}"
    print(f"{daemon} at {host}:{port}: {count}")
    if nodes:
        print(format_table(nodes))
    return 0


async def _list(host: str, port: int) -> tuple[str | None, list[NodeInfo]]:
    client = EpmdClient(host, port)
    try:
        nodes = await client.list_nodes()
        return client.protocol, nodes
    finally:
        await client.aclose()
