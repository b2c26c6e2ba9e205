"""`trioactors epmd`: run the EPMD discovery daemon until SIGINT/SIGTERM (exit 0)."""

from __future__ import annotations

import argparse
import functools
import logging
import signal

import trio

from ..epmd.server import DEFAULT_PORT, EpmdServer, serve_epmd
from ..wire.names import parse_host_port

__all__ = ["add_parser", "listen_port", "run"]

log = logging.getLogger("trioactors.epmd")


def listen_port(text: str) -> int:
    """argparse type of ``--port``: 0-65535 (0 picks a free one), read by the
    one address parser (`parse_host_port`)."""
    try:
        return parse_host_port(f"-:{text.strip()}", allow_zero=True)[1]
    except ValueError as exc:
        message = str(exc).removeprefix("address: ").replace(repr(f"-:{text.strip()}"), repr(text))
        raise argparse.ArgumentTypeError(message) from None


def add_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """Add the `epmd` subcommand."""
    parser = subparsers.add_parser(
        "epmd",
        help="run the EPMD discovery daemon (native and Erlang protocols on one port)",
        description=(
            "Run the EPMD discovery daemon. trioactors nodes register with it over the "
            "native protocol; Erlang nodes (erl -sname) and tools (epmd -names) use "
            "Erlang's own EPMD protocol on the same port. Stops cleanly on SIGINT/SIGTERM."
        ),
    )
    parser.add_argument(
        "--host",
        default="0.0.0.0",
        help="address to listen on (default: 0.0.0.0, every interface, like epmd; "
        "registrations are accepted from loopback peers only)",
    )
    parser.add_argument(
        "--port",
        type=listen_port,
        default=DEFAULT_PORT,
        help=f"port to listen on (default: {DEFAULT_PORT}; 0 picks a free one, logged at start)",
    )
    parser.add_argument(
        "--keepalive-timeout",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="remove a trioactors registration this long after its last keep-alive (default: 60)",
    )
    parser.add_argument(
        "--packet-timeout",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="close a connection whose request is not complete after this long (default: 60)",
    )
    parser.add_argument(
        "--relaxed-command-check",
        action="store_true",
        help="allow STOP_REQ (epmd -stop NAME) and KILL_REQ while nodes are registered, "
        "as epmd -relaxed_command_check does",
    )
    parser.add_argument(
        "--allow-remote-register",
        action="store_true",
        help="accept trioactors registrations from other hosts (Erlang's stay loopback-only)",
    )
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Serve until a signal (or an Erlang KILL_REQ) stops the daemon."""
    return trio.run(_main, args)


async def _main(args: argparse.Namespace) -> int:
    serve = functools.partial(
        serve_epmd,
        args.host,
        args.port,
        keepalive_timeout=args.keepalive_timeout,
        packet_timeout=args.packet_timeout,
        relaxed_command_check=args.relaxed_command_check,
        allow_remote_register=args.allow_remote_register,
    )
    failed: list[BaseException] = []
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        try:
            async with trio.open_nursery() as nursery:

                async def service(*, task_status: trio.TaskStatus[EpmdServer]) -> None:
                    await serve(task_status=task_status)
                    nursery.cancel_scope.cancel()  # stopped by KILL_REQ

                server: EpmdServer = await nursery.start(service)
                async for signum in signals:
                    log.info("got %s: stopping the EPMD daemon", signal.Signals(signum).name)
                    server.shutdown()
                    break
        except* OSError as group:
            failed.extend(group.exceptions)
    if failed:
        log.error(
            "cannot listen on %s:%d: %s (is another EPMD daemon running there? "
            "pick another --port)",
            args.host,
            args.port,
            failed[0],
        )
        return 1
    log.info("EPMD daemon stopped")
    return 0
