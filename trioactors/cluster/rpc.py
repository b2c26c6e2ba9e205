"""Remote procedure calls to functions a node registered, and the node's own
introspection functions (what `trioactors info`, `top` and `rpc` call).

Each node runs a `Rex` server registered as ``"rex"`` (the name of Erlang's
rpc server). `node.rpc(other, "fn", *args)` calls it; it runs the function
registered as ``"fn"`` in a fresh actor (one slow call does not hold up
others) and replies ``("ok", value)`` or ``("badrpc", reason)``. Only
registered functions run: a node never imports or evaluates what a peer
names. Built in, on every node:

- ``trioactors.node_info`` -> `NodeSummary`
- ``trioactors.processes`` -> list of `ta.ProcessInfo`, oldest first
- ``trioactors.process_info`` (pid or name) -> `ta.ProcessInfo` or None
- ``trioactors.connections`` -> list of `ConnectionInfo`
- ``trioactors.supervision_trees`` -> list of `ta.SupervisionNode`
- ``trioactors.functions`` -> the names `rpc` can call here
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

import attrs
import trio

from ..otp.gen_server import NO_REPLY, Caller, GenServer
from ..otp.system import Context
from ..runtime.process import _classify
from ..wire.cbor import message
from ..wire.names import format_host_port

if TYPE_CHECKING:
    from .node import Node

__all__ = ["REX", "ConnectionInfo", "NodeSummary", "Rex", "RpcFunctions"]

log = logging.getLogger("trioactors.cluster")

#: The registered name of every node's rpc server (Erlang's).
REX: Final = "rex"


@message("trioactors.NodeSummary")
@attrs.frozen(slots=True)
class NodeSummary:
    """What `trioactors info` shows: `name`, `creation`, `address`
    (``host:port``), `uptime` (seconds), `processes` (count), `peers`
    (connected node names), `epmd` (``host:port`` or None)."""

    name: str
    creation: int
    address: str
    uptime: float
    processes: int
    peers: tuple[str, ...]
    epmd: str | None


@message("trioactors.ConnectionInfo")
@attrs.frozen(slots=True)
class ConnectionInfo:
    """One peer connection: bytes and records in and out, frames queued for
    the writer, seconds since it came up and since the peer was last heard
    (to a quarter of the tick timeout)."""

    node: str
    bytes_in: int
    bytes_out: int
    records_in: int
    records_out: int
    queued: int
    connected_for: float
    last_heard: float


RpcFunction = Callable[..., Any]


class RpcFunctions:
    """The functions `rpc` may call on one node, by name."""

    def __init__(self) -> None:
        self._fns: dict[str, RpcFunction] = {}

    def register(self, name: str, fn: RpcFunction) -> None:
        """Offer `fn` (sync or async, plain data in and out) as `name`."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"an rpc function name is a non-empty str, got {name!r}")
        if not callable(fn):
            raise TypeError(f"{fn!r} is not callable")
        self._fns[name] = fn

    def unregister(self, name: str) -> bool:
        """Withdraw `name`; False if it was not registered."""
        return self._fns.pop(name, None) is not None

    def get(self, name: str) -> RpcFunction | None:
        """The function registered as `name`, if any."""
        return self._fns.get(name)

    def names(self) -> list[str]:
        """Every registered name, sorted."""
        return sorted(self._fns)


class Rex(GenServer):
    """The rpc server (see the module docstring)."""

    async def init(self, functions: RpcFunctions) -> None:
        self.functions = functions

    async def handle_call(self, request: Any, caller: Caller) -> Any:
        if not (isinstance(request, tuple) and len(request) == 3 and request[0] == "call"):
            return ("badrpc", ("bad_request", repr(request)[:200]))
        _, name, args = request
        fn = self.functions.get(name) if isinstance(name, str) else None
        if fn is None:
            return ("badrpc", ("undef", name))
        if not isinstance(args, list | tuple):
            return ("badrpc", ("bad_request", "arguments must be a list"))
        self.ctx.spawn(_run, self, fn, tuple(args), caller)
        return NO_REPLY


async def _run(
    ctx: Context, rex: Rex, fn: RpcFunction, args: tuple[Any, ...], caller: Caller
) -> None:
    try:
        value = fn(*args)
        if inspect.isawaitable(value):
            value = await value
    except Exception as exc:
        reason, _ = _classify(exc)
        rex.reply(caller, ("badrpc", ("EXIT", reason)))
        return
    rex.reply(caller, ("ok", value))


def register_builtins(functions: RpcFunctions, node: Node) -> None:
    """The introspection functions every node offers."""
    started = time.monotonic()

    def node_info() -> NodeSummary:
        return NodeSummary(
            name=node.name,
            creation=node.system.creation,
            address=format_host_port(*node.address),
            uptime=time.monotonic() - started,
            processes=len(node.system.processes()),
            peers=tuple(node.nodes()),
            epmd=node.epmd,
        )

    def processes() -> list[Any]:
        infos = (node.system.process_info(pid) for pid in node.system.processes())
        return [info for info in infos if info is not None]

    def connections() -> list[ConnectionInfo]:
        return node.connection_stats()

    functions.register("trioactors.node_info", node_info)
    functions.register("trioactors.processes", processes)
    functions.register("trioactors.process_info", node.system.process_info)
    functions.register("trioactors.connections", connections)
    functions.register("trioactors.supervision_trees", node.system.supervision_trees)
    functions.register("trioactors.functions", functions.names)


def connection_info(name: str, conn: Any) -> ConnectionInfo:
    """The `ConnectionInfo` of a live `Connection` to node `name`."""
    now = trio.current_time()
    return ConnectionInfo(
        node=name,
        bytes_in=conn.bytes_in,
        bytes_out=conn.bytes_out,
        records_in=conn.frames_in,
        records_out=conn.frames_out,
        queued=conn.queued,
        connected_for=now - conn.since,
        last_heard=now - conn.last_heard,
    )
