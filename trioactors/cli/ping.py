"""`trioactors ping NODE`: handshake with a node; ``pong`` (exit 0) or ``pang`` (exit 1).

NODE is a name looked up through EPMD, or ``name@host:port``. Like Erlang's
``net_adm:ping/1`` the answer is a full authenticated handshake, so a wrong
cookie is a ``pang`` too (the reason goes to the log).
"""

from __future__ import annotations

import argparse
import logging
import secrets
import ssl

import trio

from ..cluster.node import open_node, read_cookie
from ..epmd import EpmdClient
from ..errors import TrioActorsError
from ..wire.names import NodeAddress, parse_host_port, parse_node
from .node import cookie_option, epmd_option, tls_contexts, tls_options

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
    parser.add_argument("node", metavar="NODE", help="node name (via EPMD) or name@host:port")
    epmd_option(parser)
    cookie_option(parser)
    tls_options(parser)
    parser.add_argument(
        "--timeout",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="give up after this long (default: %(default)s)",
    )
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Ping the node; 0 for pong, 1 for pang."""
    try:
        cookie = read_cookie(cookie_file=args.cookie_file)
        target = parse_node(args.node)
        tls = tls_contexts(args)
    except (OSError, ValueError) as exc:
        log.error("%s", exc)
        print("pang", flush=True)
        return 1
    ok = trio.run(_ping, target, args.epmd, cookie, args.timeout, tls)
    print("pong" if ok else "pang", flush=True)
    return 0 if ok else 1


async def _ping(
    target: NodeAddress,
    epmd: str,
    cookie: bytes,
    budget: float,
    tls: tuple[ssl.SSLContext | None, ssl.SSLContext | None],
) -> bool:
    name = target.name or f"{target.host}:{target.port}"
    with trio.move_on_after(budget):
        try:
            address = target.direct
            if address is None:
                if epmd.lower() == "none":
                    log.error("no EPMD (--epmd none): give the node as name@host:port")
                    return False
                host, port = parse_host_port(epmd, what="--epmd")
                client = EpmdClient(host, port, timeout=budget)
                try:
                    info = await client.lookup(name)
                finally:
                    await client.aclose()
                if info is None:
                    log.error("node %r is not registered with EPMD at %s", name, epmd)
                    return False
                address = (info.host, info.port)
            # A throw-away node that does not register anywhere.
            async with open_node(
                f"ping-{secrets.token_hex(4)}",
                epmd=None,
                cookie=cookie,
                connect_timeout=budget,
                shutdown_timeout=1.0,
                tls=tls[0],
                tls_client=tls[1],
            ) as me:
                host, port = address
                if target.alive is None:
                    await me.connect(f"{host}:{port}")
                else:
                    await me.connect(f"{target.alive}@{host}:{port}")
                return True
        except (TrioActorsError, OSError, ValueError) as exc:
            log.error("cannot reach node %r: %s", name, exc)
            return False
    log.error("node %r did not answer within %s s", name, budget)
    return False
