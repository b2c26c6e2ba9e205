"""What the commands that talk to a running node share (`ping`, `info`,
`top`, `rpc`): the options, and a throw-away node connected to the target."""

from __future__ import annotations

import argparse
import logging
import secrets
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import attrs

from ..cluster.node import Node, open_node, read_cookie
from ..epmd import EpmdClient
from ..epmd.resolve import find_node
from ..errors import ConnectionFailed
from ..wire.names import NodeAddress, parse_host_port, parse_node
from .node import cookie_option, epmd_option, tls_contexts, tls_options

__all__ = ["Remote", "add_remote_options", "connected", "remote_from_args", "report_failure"]

log = logging.getLogger("trioactors.cli")


@attrs.frozen
class Remote:
    """Where and how to reach the target node."""

    target: NodeAddress
    epmd: str
    cookie: bytes
    timeout: float
    tls: tuple[ssl.SSLContext | None, ssl.SSLContext | None]

    @property
    def label(self) -> str:
        """The node as the user named it."""
        return self.target.name or f"{self.target.host}:{self.target.port}"


def add_remote_options(parser: argparse.ArgumentParser, *, timeout: float = 5.0) -> None:
    """NODE, --epmd, --cookie-file, the TLS options and --timeout."""
    parser.add_argument("node", metavar="NODE", help="node name (via EPMD) or name@host:port")
    epmd_option(parser)
    cookie_option(parser)
    tls_options(parser)
    parser.add_argument(
        "--timeout",
        type=float,
        default=timeout,
        metavar="SECONDS",
        help="give up after this long (default: %(default)s)",
    )


def remote_from_args(args: argparse.Namespace) -> Remote | None:
    """The `Remote` the options name; None (the reason logged) for bad ones."""
    if "log_level" not in args:
        # The throw-away probe node's own start-up and connection lines are
        # noise for a one-shot command; its failures are reported by the command.
        logging.getLogger("trioactors.cluster").setLevel(logging.WARNING)
    try:
        return Remote(
            target=parse_node(args.node),
            epmd=args.epmd,
            cookie=read_cookie(cookie_file=args.cookie_file),
            timeout=args.timeout,
            tls=tls_contexts(args),
        )
    except (OSError, ValueError) as exc:
        log.error("%s", exc)
        return None


@asynccontextmanager
async def connected(remote: Remote) -> AsyncIterator[tuple[Node, str]]:
    """A throw-away node (registered nowhere) connected to the target; yields
    it and the target's node name. Raises `ConnectionFailed` (or
    `AuthenticationFailed`, `EpmdError`) when the target cannot be reached."""
    target = remote.target
    address = target.direct
    if address is None:
        if remote.epmd.lower() == "none":
            raise ConnectionFailed("no EPMD (--epmd none): give the node as name@host:port")
        host, port = parse_host_port(remote.epmd, what="--epmd")
        client = EpmdClient(host, port, timeout=remote.timeout)
        try:
            found = await find_node(remote.label, client)
        finally:
            await client.aclose()
        if found is None:
            where = remote.epmd
            if target.host is not None:
                where += f" nor with the EPMD of host {target.host}"
            raise ConnectionFailed(f"node {remote.label!r} is not registered with EPMD at {where}")
        address = found.address
    async with open_node(
        f"cli-{secrets.token_hex(4)}",
        epmd=None,
        cookie=remote.cookie,
        connect_timeout=remote.timeout,
        shutdown_timeout=1.0,
        tls=remote.tls[0],
        tls_client=remote.tls[1],
    ) as me:
        host, port = address
        if target.alive is None:
            name = await me.connect(f"{host}:{port}")
        elif target.host is not None and target.port is None:
            # A full name: the node at that address must call itself so.
            name = await me.connect(f"{host}:{port}")
            if name != target.name:
                me.disconnect(name)
                raise ConnectionFailed(
                    f"node {remote.label!r} was looked up, but the node at {host}:{port} "
                    f"is {name!r}"
                )
        else:
            name = await me.connect(f"{target.alive}@{host}:{port}")
        yield me, name


def report_failure(remote: Remote, exc: BaseException) -> None:
    """Log why the target could not be reached, naming it once."""
    if isinstance(exc, ConnectionFailed) and remote.label in str(exc):
        log.error("%s", exc)
    else:
        log.error("cannot reach node %r: %s", remote.label, exc)
