"""`trioactors node NAME`: run a cluster node until SIGINT/SIGTERM (exit 0).

Prints ``node NAME listening on HOST:PORT`` on stdout once the node is up
(scripts and tests parse it). ``--app module:function`` (or
``path/to/file.py:function``) runs ``async def function(node)`` inside the
node; the node keeps running after it returns, until a signal.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import os
import signal
import ssl
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import trio
import trio.lowlevel

from ..cluster.node import DEFAULT_EPMD, EPMD_ENV, Node, open_node, read_cookie
from ..errors import TrioActorsError
from ..wire.names import format_host_port, parse_host_port

__all__ = [
    "DEFAULT_EPMD",
    "add_parser",
    "cookie_option",
    "epmd_address",
    "epmd_option",
    "listen_address",
    "load_app",
    "run",
    "tls_contexts",
    "tls_options",
]

log = logging.getLogger("trioactors.node")


def epmd_address(text: str) -> str:
    """argparse type of ``--epmd``: ``host:port`` (port 1-65535) or ``none``.

    Checked when the options are parsed, so a bad value is an error naming
    the option (exit 2) rather than a failure later on."""
    if text.strip().lower() == "none":
        return "none"
    try:
        parse_host_port(text, what="--epmd")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--epmd: ")) from None
    return text


def listen_address(text: str) -> str:
    """argparse type of ``--listen``: ``host:port`` or ``:port`` (port 0-65535;
    0 picks a free one)."""
    try:
        parse_host_port(text, what="--listen", default_host="0.0.0.0", allow_zero=True)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--listen: ")) from None
    return text


def epmd_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--epmd`` (default ``$TRIOACTORS_EPMD`` or 127.0.0.1:4369)."""
    parser.add_argument(
        "--epmd",
        type=epmd_address,
        default=os.environ.get(EPMD_ENV) or DEFAULT_EPMD,
        metavar="HOST:PORT",
        help="EPMD daemon for registration and discovery, or 'none' "
        "(default: $TRIOACTORS_EPMD or %(default)s)",
    )


def cookie_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--cookie-file``."""
    parser.add_argument(
        "--cookie-file",
        metavar="FILE",
        help="file holding the cluster cookie (default: $TRIOACTORS_COOKIE, "
        "else ~/.trioactors.cookie, created on first use)",
    )


def tls_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--tls-cert``, ``--tls-key``, ``--tls-ca`` (TLS between nodes)."""
    group = parser.add_argument_group("TLS between nodes (every node of the cluster alike)")
    group.add_argument(
        "--tls-cert", metavar="PEM", help="this node's certificate chain (and key, if no --tls-key)"
    )
    group.add_argument("--tls-key", metavar="PEM", help="this node's private key")
    group.add_argument(
        "--tls-ca",
        metavar="PEM",
        help="CA certificates peers must be signed by (peers are verified both ways: mutual TLS)",
    )


def tls_contexts(args: argparse.Namespace) -> tuple[ssl.SSLContext | None, ssl.SSLContext | None]:
    """The (server, client) contexts of the TLS options, or (None, None)."""
    if not args.tls_cert:
        if args.tls_key or args.tls_ca:
            raise ValueError("--tls-key and --tls-ca need --tls-cert")
        return None, None
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    client = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    for ctx in (server, client):
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
        if args.tls_ca:
            ctx.load_verify_locations(args.tls_ca)
    if args.tls_ca:
        server.verify_mode = ssl.CERT_REQUIRED
    return server, client


def add_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """Add the `node` subcommand."""
    parser = subparsers.add_parser(
        "node",
        help="run a cluster node",
        description=(
            "Run a trioactors cluster node named NAME until SIGINT/SIGTERM, which shut it "
            "down gracefully (exit 0). Prints 'node NAME listening on HOST:PORT' when up."
        ),
    )
    parser.add_argument(
        "name",
        metavar="NAME",
        help="the node's name: 'name' (unique in its EPMD) or Erlang's 'name@host' "
        "(registered as 'name' with that host's EPMD; peers ask it)",
    )
    parser.add_argument(
        "--listen",
        type=listen_address,
        default="127.0.0.1:0",
        metavar="HOST:PORT",
        help="address for peer connections (default: %(default)s, a free port)",
    )
    parser.add_argument(
        "--advertise",
        metavar="HOST",
        help="host or address registered with EPMD for peers to dial (default: the "
        "listen host; with 0.0.0.0, this host's address on the route to EPMD)",
    )
    epmd_option(parser)
    cookie_option(parser)
    tls_options(parser)
    parser.add_argument(
        "--app",
        metavar="MODULE:FUNCTION",
        help="run `async def FUNCTION(node)` inside the node (MODULE may be a .py path)",
    )
    parser.add_argument(
        "--tick-timeout",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="a peer silent for this long is down (default: %(default)s)",
    )
    parser.add_argument(
        "--epmd-keepalive",
        type=float,
        default=20.0,
        metavar="SECONDS",
        help="refresh the EPMD registration this often; it is renewed this long after "
        "a daemon restart at the latest (default: %(default)s)",
    )
    parser.add_argument(
        "--linked",
        action="store_true",
        help="run as a child of the process that started it (what node.start_peer uses): "
        "read the cookie from the first line of stdin and leave the cluster when stdin "
        "closes, e.g. because the starter exited or was killed",
    )
    parser.set_defaults(run=run)
    return parser


AppFn = Callable[[Node], Awaitable[Any]]


def load_app(spec: str) -> AppFn:
    """The function named by ``module:function`` or ``path/file.py:function``."""
    module_name, sep, attr = spec.rpartition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"must be MODULE:FUNCTION or path/file.py:FUNCTION, got {spec!r}")
    if module_name.endswith(".py"):
        path = Path(module_name)
        loader_spec = importlib.util.spec_from_file_location(path.stem, path)
        if loader_spec is None or loader_spec.loader is None:
            raise ValueError(f"cannot load {path}")
        module = importlib.util.module_from_spec(loader_spec)
        sys.modules[path.stem] = module
        loader_spec.loader.exec_module(module)
    else:
        module = importlib.import_module(module_name)
    fn = getattr(module, attr, None)
    if fn is None or not callable(fn):
        raise ValueError(f"{module_name} has no function {attr!r}")
    return fn  # type: ignore[no-any-return]


def _cookie_from_starter() -> bytes:
    # Read unbuffered, one byte at a time up to the newline, so nothing after
    # the cookie line is taken from the pipe that later signals end-of-file.
    line = bytearray()
    while (byte := os.read(0, 1)) not in (b"", b"\n"):
        line += byte
    if not line:
        raise ValueError("--linked: no cookie line on stdin (the starter is gone?)")
    return bytes.fromhex(line.decode("ascii"))


async def _until_starter_leaves() -> None:
    # Our own copy of the descriptor: FdStream makes it non-blocking and closes it.
    async with trio.lowlevel.FdStream(os.dup(0)) as stdin:
        while await stdin.receive_some(4096):
            pass


def _describe(exc: BaseException) -> str:
    if isinstance(exc, SyntaxError):
        return f"syntax error in {exc.filename}, line {exc.lineno}: {exc.msg}"
    if isinstance(exc, ModuleNotFoundError):
        return f"no module named {exc.name!r} (check the name and the current directory)"
    if isinstance(exc, ValueError):
        return str(exc)
    return f"importing it raised {type(exc).__name__}: {exc}"


def run(args: argparse.Namespace) -> int:
    """Run the node; exit 0 after a signal, 1 if it cannot start or the app fails."""
    try:
        if args.linked:
            cookie = _cookie_from_starter()
        else:
            cookie = read_cookie(cookie_file=args.cookie_file)
        tls = tls_contexts(args)
    except (OSError, ValueError) as exc:
        log.error("%s", exc)
        return 1
    try:
        app = load_app(args.app) if args.app else None
    except Exception as exc:
        # Importing the app runs its code: any error names --app and what failed.
        log.error("--app %s: %s", args.app, _describe(exc))
        return 1
    return trio.run(_main, args, cookie, app, tls)


async def _main(
    args: argparse.Namespace,
    cookie: bytes,
    app: AppFn | None,
    tls: tuple[ssl.SSLContext | None, ssl.SSLContext | None],
) -> int:
    epmd = None if args.epmd.lower() == "none" else args.epmd
    code = 0
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        try:
            async with (
                open_node(
                    args.name,
                    listen=args.listen,
                    epmd=epmd,
                    cookie=cookie,
                    tick_timeout=args.tick_timeout,
                    epmd_keepalive=args.epmd_keepalive,
                    advertise=args.advertise,
                    tls=tls[0],
                    tls_client=tls[1],
                ) as node,
                trio.open_nursery() as nursery,
            ):
                _status(f"node {node.name} listening on {format_host_port(*node.address)}")
                failed: list[BaseException] = []
                if app is not None:
                    nursery.start_soon(_run_app, app, node, failed, nursery.cancel_scope)
                if args.linked:
                    nursery.start_soon(_leave_with_starter, nursery.cancel_scope)
                async for signum in signals:
                    log.info("got %s: leaving the cluster", signal.Signals(signum).name)
                    break
                nursery.cancel_scope.cancel()
            if failed:
                code = 1
        except (TrioActorsError, OSError, ValueError) as exc:
            log.error("node %s cannot run: %s", args.name, exc)
            return 1
    _status(f"node {args.name} stopped")
    return code


def _status(line: str) -> None:
    # The reader of stdout (a starting node, a script) may be gone already.
    try:
        print(line, flush=True)
    except BrokenPipeError:
        # Python's own flush at exit would raise again: point stdout nowhere.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


async def _leave_with_starter(scope: trio.CancelScope) -> None:
    await _until_starter_leaves()
    log.info("the starting node is gone (stdin closed): leaving the cluster")
    scope.cancel()


async def _run_app(
    app: AppFn, node: Node, failed: list[BaseException], scope: trio.CancelScope
) -> None:
    try:
        await app(node)
    except Exception as exc:
        log.exception("the app of node %s failed", node.name)
        failed.append(exc)
        scope.cancel()
