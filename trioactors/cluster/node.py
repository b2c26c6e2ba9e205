"""`open_node`: a trio program becomes a cluster node.

```
open_node("alpha", ...)                  async context manager -> Node
└── node nursery
    ├── ActorSystem nursery              the local runtime (open_actor_system)
    ├── NetKernel                        owns outgoing connection tasks
    ├── listener (trio.serve_tcp)        incoming connections, one task each
    ├── Discovery                        EPMD registration, polling, auto-connect
    └── PeerNodes nursery                child node processes (start_peer)
```

Leaving the block shuts down in this order: child nodes started with
`start_peer` are stopped, the EPMD registration is removed
(no new peer finds us), local actors end with `shutdown` (their exit signals
and `Down`s still reach remote peers, as with Erlang's ``init:stop()``), every
peer gets a goodbye after what was queued for it (its node watchers see
``connection_closed``, its links and monitors still open ``noconnection``),
then the listener and the sockets close.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
import secrets
import socket
import ssl
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import trio

from ..epmd import NodeInfo
from ..errors import (
    CallFailed,
    CallTimeout,
    ConnectionFailed,
    EpmdError,
    NotSerializable,
    RpcFailed,
)
from ..otp.system import ActorSystem, open_actor_system
from ..runtime.process import NODEDOWN
from ..wire.cbor import MessageRegistry
from ..wire.etf import Atom
from ..wire.framing import DEFAULT_MAX_FRAME_SIZE
from ..wire.names import format_host_port, parse_host_port, parse_node_name
from ..wire.terms import Pid, Ref
from .discovery import DEFAULT_POLL_INTERVAL, Discovery
from .erlang_peer import NET_KERNEL, ErlangNetKernel, ErlangPeers, erlang_group_leader
from .globals import Resolver
from .kernel import NetKernel
from .peer_nodes import PeerNode, PeerNodes, open_peer_nodes
from .routing import Routing
from .rpc import REX, ConnectionInfo, Rex, RpcFunctions, connection_info, register_builtins
from .services import ClusterServices
from .spawn import RemoteSpawn

__all__ = [
    "COOKIE_ENV",
    "DEFAULT_COOKIE_FILE",
    "DEFAULT_EPMD",
    "EPMD_ENV",
    "EPMD_FROM_ENV",
    "Node",
    "open_node",
    "read_cookie",
]

log = logging.getLogger("trioactors.cluster")

#: Environment variable naming the EPMD daemon ("host:port") when none is given.
EPMD_ENV: Final = "TRIOACTORS_EPMD"
#: The EPMD daemon when neither `epmd=` nor ``$TRIOACTORS_EPMD`` says otherwise.
DEFAULT_EPMD: Final = "127.0.0.1:4369"
#: `open_node`'s default `epmd`: ``$TRIOACTORS_EPMD``, else `DEFAULT_EPMD`.
EPMD_FROM_ENV: Final = "$TRIOACTORS_EPMD"
#: Environment variable holding the cookie when none is given.
COOKIE_ENV: Final = "TRIOACTORS_COOKIE"
#: The cookie file used (and created, mode 0600) when neither is given.
DEFAULT_COOKIE_FILE: Final = "~/.trioactors.cookie"
_ANY: Final = ("", "0.0.0.0", "::")


def read_cookie(cookie: str | bytes | None = None, cookie_file: str | None = None) -> bytes:
    """The cookie to use: `cookie`, else the contents of `cookie_file`, else
    ``$TRIOACTORS_COOKIE``, else ``~/.trioactors.cookie`` (created with a random
    value on first use, like Erlang's ``~/.erlang.cookie``)."""
    if cookie is not None:
        value = cookie.encode() if isinstance(cookie, str) else bytes(cookie)
    elif cookie_file is not None:
        value = Path(cookie_file).expanduser().read_bytes().strip()
    elif os.environ.get(COOKIE_ENV):
        value = os.environ[COOKIE_ENV].encode()
    else:
        path = Path(DEFAULT_COOKIE_FILE).expanduser()
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(24))
        value = path.read_bytes().strip()
    if not value:
        raise ValueError("the cookie is empty; every node of a cluster needs the same cookie")
    return value


def name_hash(name: str) -> int:
    """A stable 32-bit number for node name `name` (`Node.node_id`)."""
    digest = hashlib.blake2b(name.encode("utf-8"), digest_size=4).digest()
    return int.from_bytes(digest, "big") or 1


if TYPE_CHECKING:
    # Type checkers see every ActorSystem method on Node with its real
    # signature; at run time `__getattr__` forwards them to `node.system`.
    _SystemAPI = ActorSystem
else:
    _SystemAPI = object


class Node(_SystemAPI):
    """A cluster node: an `ActorSystem` plus connections to other nodes.

    Every `ActorSystem` method and attribute is available on the node itself
    (`node.spawn`, `node.send`, `await node.call`, `node.actor()`, ...), or
    as `node.system`. Pids of other nodes work everywhere a pid does.
    """

    def __init__(
        self,
        system: ActorSystem,
        kernel: NetKernel,
        spawner: RemoteSpawn,
        address: tuple[str, int],
        discovery: Discovery | None,
        peer_nodes: PeerNodes,
    ) -> None:
        self.system = system
        self._peer_nodes = peer_nodes
        self._rpc = RpcFunctions()
        self.kernel = kernel
        self._spawner = spawner
        #: (host, port) this node listens on.
        self.address = address
        self._discovery = discovery

    def __getattr__(self, attr: str) -> Any:
        # The whole ActorSystem API, without restating it here.
        if attr.startswith("__"):
            raise AttributeError(attr)
        return getattr(self.system, attr)

    def __repr__(self) -> str:
        host, port = self.address
        return f"<Node {self.name!r} at {host}:{port}>"

    @property
    def name(self) -> str:
        """This node's name."""
        return self.kernel.name

    @property
    def node_id(self) -> int:
        """A stable 32-bit number derived from the name (for display; pids
        carry the name itself)."""
        return name_hash(self.name)

    @property
    def epmd(self) -> str | None:
        """host:port of the EPMD daemon, or None when running without discovery."""
        return self._discovery.address if self._discovery is not None else None

    async def start_peer(
        self,
        name: str,
        *,
        app: str | None = None,
        args: Sequence[str] = (),
        listen: str = "127.0.0.1:0",
        timeout: float = 30.0,  # noqa: ASYNC109 - a start-up budget, as in OTP's peer
    ) -> PeerNode:
        """Start a child node process named `name` (OTP's ``peer:start``) and
        connect to it; returns a `ta.PeerNode` once it is connected.

        The child runs ``python -m trioactors node NAME`` with this node's
        cookie (passed on its stdin, never in argv or the environment), the
        same EPMD daemon and tick timeout, `app` as its ``--app
        module:function`` and `args` as extra command-line options. It is tied
        to this node: it leaves the cluster and exits when this node's block
        ends or when this process dies, even by SIGKILL. Use it to put more
        cores to work: one node per core. Raises `ta.ConnectionFailed` if the
        child does not come up within `timeout` seconds.
        """
        return await self._peer_nodes.start(
            name, app=app, args=args, listen=listen, timeout=timeout
        )

    def peer_nodes(self) -> list[PeerNode]:
        """The child nodes started with `start_peer` that are still running."""
        return self._peer_nodes.children()

    async def connect(self, node: str) -> str:
        """Connect to `"name"` (found through EPMD), `"name@host:port"` or
        `"host:port"` (whatever node listens there).

        Usually implicit: the first send to a node connects. Returns the node
        name. Raises `ta.ConnectionFailed` or `ta.AuthenticationFailed`
        (wrong cookie); ValueError for a malformed `node`.
        """
        return await self.kernel.connect(node)

    def disconnect(self, node: str) -> bool:
        """Close the connection to `node` (Erlang's `disconnect_node`): what is
        queued goes out first, then links and monitors across it fire with
        `noconnection` and node watchers get `ta.NodeDown(node, "disconnect")`
        here, ``connection_closed`` on `node` (as Erlang reports it).
        False if it was not connected. A later send connects again."""
        return self.kernel.disconnect(node)

    def nodes(self) -> list[str]:
        """Names of the nodes connected right now (Erlang's `nodes()`)."""
        return self.kernel.nodes()

    def register_rpc(self, name: str, fn: Callable[..., Any]) -> None:
        """Let peers (and `trioactors rpc`) call `fn` as `name` through
        `rpc`; `fn` may be sync or async, its arguments and result plain
        data. Only registered functions can be called, never arbitrary code."""
        self._rpc.register(name, fn)

    def unregister_rpc(self, name: str) -> bool:
        """Withdraw an rpc function; False if it was not registered."""
        return self._rpc.unregister(name)

    async def rpc(
        self,
        node: str,
        function: str,
        *args: Any,
        timeout: float | None = 5.0,  # noqa: ASYNC109 - as call's
    ) -> Any:
        """Call the function registered as `function` on `node` (this node's
        own name works too) with `args` and return its result (Erlang's
        ``rpc:call``). Raises `ta.RpcFailed` when it is not registered there
        or raises, `ta.CallFailed` / `ta.CallTimeout` as `call` does when the
        node cannot be reached or does not answer in time. Every node offers
        ``trioactors.node_info``, ``trioactors.processes``,
        ``trioactors.process_info``, ``trioactors.connections``,
        ``trioactors.supervision_trees`` and ``trioactors.functions``.

        On an Erlang node `function` is ``"module:function"`` and this is
        Erlang's own ``rpc:call(Node, M, F, Args)`` (what it prints goes to
        this node's log, at debug level); ``{badrpc, Reason}`` raises
        `ta.RpcFailed` with `Reason`."""
        erlang = self.kernel.erlang
        if erlang is not None and "@" in node and node != self.name:
            try:
                await self.kernel.connect(node)
            except ConnectionFailed:
                raise CallFailed((NODEDOWN, node), (REX, node)) from None
            peer = self.kernel.peers.get(node)
            if peer is not None and peer.kind == "erlang":
                return await self._erlang_rpc(node, function, args, timeout)
        reply = await self.system.call((REX, node), ("call", function, list(args)), timeout)
        if isinstance(reply, tuple) and len(reply) == 2 and reply[0] == "ok":
            return reply[1]
        reason = reply[1] if isinstance(reply, tuple) and len(reply) == 2 else reply
        raise RpcFailed(node, function, reason)

    async def _erlang_rpc(
        self,
        node: str,
        function: str,
        args: tuple[Any, ...],
        timeout: float | None,  # noqa: ASYNC109 - as call's
    ) -> Any:
        module, colon, name = function.partition(":")
        if not (colon and module and name):
            raise ValueError(f"an Erlang function is 'module:function', got {function!r}")
        erlang = self.kernel.erlang
        assert erlang is not None
        request = erlang.rpc_request(module, name, list(args))
        reply = await self.system.call((REX, node), request, timeout)
        if type(reply) is tuple and len(reply) == 2 and reply[0] == Atom("badrpc"):
            raise RpcFailed(node, function, reply[1])
        return reply

    def connection_stats(self) -> list[ConnectionInfo]:
        """Per-peer connection figures (`ConnectionInfo`), by node name."""
        stats = []
        for name in sorted(self.kernel.nodes()):
            peer = self.kernel.peers.get(name)
            if peer is not None and peer.conn is not None:
                stats.append(connection_info(name, peer.conn))
        return stats

    def node_of(self, pid: Pid) -> str:
        """The name of the node `pid` lives on (`pid.node`)."""
        return pid.node

    async def list_nodes(self) -> list[NodeInfo]:
        """Everything EPMD knows (connected or not); `ta.EpmdError` without EPMD."""
        if self._discovery is None:
            raise EpmdError("this node runs without EPMD (epmd=None): use node.nodes()")
        return await self._discovery.list_nodes()

    def register_spawnable(self, name: str, fn: Callable[..., Any]) -> None:
        """Let peers start `fn` here as `name` with `spawn_on`: an actor function
        `async def fn(ctx, *args)` or a `ta.GenServer` subclass. Only names
        registered this way can be started remotely: no code, module or
        function name received from the network is ever imported."""
        self._spawner.register(name, fn)

    async def spawn_on(
        self,
        node: str,
        name: str,
        *args: Any,
        link_to: Pid | None = None,
        timeout: float | None = 30.0,  # noqa: ASYNC109 - a budget for the remote side
    ) -> Pid:
        """Start the spawnable `name` on `node` with `args` (CBOR data) and
        return its pid (a GenServer has run `init` by then). With `link_to` (a
        local pid) the new actor is linked to it before it can run. Raises
        `ta.SpawnFailed`: node unreachable or gone, unknown name, start error."""
        return await self._spawner.spawn_on(node, name, *args, link_to=link_to, timeout=timeout)

    # -- gen_server calls and casts to a name on several nodes

    async def multi_call(
        self,
        nodes: Iterable[str] | None,
        name: str,
        request: Any,
        timeout: float | None = None,  # noqa: ASYNC109 - one budget for every node
    ) -> tuple[list[tuple[str, Any]], list[str]]:
        """Call the server registered locally as `name` on each of `nodes`
        at once (Erlang's `gen_server:multi_call`); None means this node and
        every connected one. Returns ``(replies, bad_nodes)``: ``(node,
        reply)`` for each node that answered within `timeout` seconds (None:
        no limit) and the nodes that did not (unreachable, no such server,
        it ended, no answer in time), both in the order of `nodes`. A late
        answer is dropped. Raises `ta.NotSerializable` if `request` cannot
        cross nodes."""
        targets = self._multi_targets(nodes)
        results: list[tuple[bool, Any]] = [(False, None)] * len(targets)
        errors: list[BaseException] = []

        async def one(i: int, node: str) -> None:
            try:
                results[i] = (True, await self.system.call((name, node), request, timeout))
            except (CallFailed, CallTimeout):
                pass
            except NotSerializable as exc:
                errors.append(exc)

        async with trio.open_nursery() as nursery:
            for i, node in enumerate(targets):
                nursery.start_soon(one, i, node)
        if errors:
            raise errors[0]
        replies = [(node, r[1]) for node, r in zip(targets, results, strict=True) if r[0]]
        bad = [node for node, r in zip(targets, results, strict=True) if not r[0]]
        return replies, bad

    def abcast(self, nodes: Iterable[str] | None, name: str, request: Any) -> None:
        """Cast `request` to the server registered locally as `name` on each of
        `nodes` (Erlang's `gen_server:abcast`); None means this node and every
        connected one. Never blocks; nodes or names that are not there drop it."""
        for node in self._multi_targets(nodes):
            self.system.cast((name, node), request)

    def _multi_targets(self, nodes: Iterable[str] | None) -> list[str]:
        if nodes is None:
            return [self.name, *self.nodes()]
        if isinstance(nodes, str):
            raise TypeError(f"nodes is a list of node names, not the str {nodes!r}")
        targets = list(nodes)
        for node in targets:
            if not isinstance(node, str):
                raise TypeError(f"a node name is a str, not {node!r}")
        return targets

    def monitor_nodes(self, pid: Pid) -> None:
        """Deliver `ta.NodeUp(node)` / `ta.NodeDown(node, reason)` to local
        `pid` for every connection that comes up or goes down."""
        self.kernel.monitor_nodes(pid)

    def demonitor_nodes(self, pid: Pid) -> None:
        """Stop `monitor_nodes` for `pid`."""
        self.kernel.demonitor_nodes(pid)

    # -- cluster services: global names and process groups

    @property
    def _services(self) -> ClusterServices:
        services = self.kernel.services
        assert services is not None
        return services

    async def register_global(
        self, name: str, pid: Pid, *, resolve: Resolver | None = None
    ) -> bool:
        """Register `pid` under the cluster-wide `name`; False if it is taken
        (anywhere among the connected nodes) or `pid` is not alive. Exactly
        one of several nodes racing for a name wins. `resolve(name, pid1,
        pid2) -> pid | None` picks the survivor when a healed partition brings
        two registrations together; only for a local `pid`. The default,
        `ta.resolve_keep_first_node` (Erlang's `random_exit_name`), keeps the
        registration of the node whose name sorts first and kills the other
        pid (reason ``killed``); with a resolver of your own the loser is
        only unregistered (`ta.resolve_notify_all` also tells both pids).
        Send to the name with the destination ``("global", name)``.
        """
        return await self._services.globals.register_global(name, pid, resolve=resolve)

    async def re_register_global(
        self, name: str, pid: Pid, *, resolve: Resolver | None = None
    ) -> bool:
        """Make the cluster-wide `name` refer to `pid`, taken or not (Erlang's
        `global:re_register_name`): the previous holder keeps running, it only
        loses the name. A `pid` that is not alive leaves the name
        unregistered. False only when `pid` is of a node that is not
        connected; `resolve` as for `register_global`."""
        return await self._services.globals.re_register_global(name, pid, resolve=resolve)

    async def unregister_global(self, name: str) -> None:
        """Remove the cluster-wide `name` (harmless if it is not registered)."""
        await self._services.globals.unregister_global(name)

    def whereis_global(self, name: str) -> Pid | None:
        """The pid registered cluster-wide as `name` (no network round trip)."""
        return self._services.globals.whereis_global(name)

    def registered_globals(self) -> list[str]:
        """Every cluster-wide name this node knows, sorted."""
        return self._services.globals.registered_globals()

    def join_group(self, group: str, pid: Pid) -> None:
        """Add local `pid` to the cluster-wide process group `group` (joins are
        counted: join twice, leave twice). `ta.NotLocalPid` for a pid of
        another node: each node joins its own pids, as with Erlang's `pg`."""
        self._services.groups.join_group(group, pid)

    def leave_group(self, group: str, pid: Pid) -> bool:
        """Undo one `join_group`; False if `pid` was not a member."""
        return self._services.groups.leave_group(group, pid)

    def group_members(self, group: str) -> list[Pid]:
        """Every member of `group` across the connected cluster."""
        return self._services.groups.group_members(group)

    def local_group_members(self, group: str) -> list[Pid]:
        """The members of `group` that live on this node."""
        return self._services.groups.local_group_members(group)

    def which_groups(self) -> list[str]:
        """Every group with at least one member, sorted."""
        return self._services.groups.which_groups()

    def monitor_group(self, group: str, pid: Pid) -> Ref:
        """Deliver `ta.GroupJoin(ref, group, pids)` / `ta.GroupLeave(ref, group,
        pids)` to local `pid` for every change of `group`, until
        `demonitor_group(ref)` or `pid` ends."""
        return self._services.groups.monitor_group(group, pid)

    def demonitor_group(self, ref: Ref) -> bool:
        """Stop a `monitor_group`; False if `ref` was not active."""
        return self._services.groups.demonitor_group(ref)


def _default_creation() -> int:
    # Milliseconds: a restarted node gets a different creation (equality is
    # all that matters, so the 32-bit wrap every 49 days is harmless).
    return int(time.time() * 1000) % (2**32 - 1) + 1


@contextlib.asynccontextmanager
async def open_node(
    name: str,
    *,
    listen: str = "127.0.0.1:0",
    epmd: str | None = EPMD_FROM_ENV,
    cookie: str | bytes | None = None,
    tick_timeout: float = 60.0,
    tls: ssl.SSLContext | None = None,
    tls_client: ssl.SSLContext | None = None,
    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
    connect_timeout: float = 10.0,
    discovery_interval: float = DEFAULT_POLL_INTERVAL,
    epmd_keepalive: float = 20.0,
    advertise: str | None = None,
    registry: MessageRegistry | None = None,
    creation: int | None = None,
    shutdown_timeout: float = 5.0,
) -> AsyncIterator[Node]:
    """Run a cluster node named `name` for the duration of the block.

    - `name`: a short name (``"alpha"``, unique in the EPMD daemon) or an
      Erlang-style full name (``"alpha@h2"``: registered as ``alpha`` with
      h2's own EPMD, so ``alpha@h1`` may run too; peers reach it by asking
      h2's EPMD). Pids of the node carry this name.
    - `listen`: "host:port" for peer connections (port 0 picks a free one).
    - `epmd`: "host:port" of the EPMD daemon to register with and discover
      peers through (default: ``$TRIOACTORS_EPMD``, else 127.0.0.1:4369), or
      None (then peers are reached as "name@host:port").
    - `cookie`: the cluster's shared secret (default: ``$TRIOACTORS_COOKIE``,
      else ``~/.trioactors.cookie``). It never crosses the wire.
    - `tick_timeout`: a peer silent for this long is down.
    - `tls` / `tls_client`: `ssl.SSLContext`s for accepted and outgoing
      connections (both or neither; mutual TLS when the server context
      requires client certificates).
    - `advertise`: the host registered with EPMD, what peers dial (default:
      the listen host; when listening on every interface, this host's
      address on the route to the EPMD daemon, so remote peers get a
      routable address, never 127.0.0.1 unless the daemon is local).
    - `creation`: which incarnation of the node this is (default: from the
      clock, so a restarted node's pids differ from its predecessor's).

    Raises `ta.NameTaken` if EPMD has a live node of that name. When no EPMD
    daemon answers, the node starts anyway (with a warning) and registers as
    soon as one does, retrying with backoff up to `epmd_keepalive` seconds.
    """
    if not isinstance(name, str):
        raise ValueError(f"a node name is 'name' or 'name@host', got {name!r}")
    parse_node_name(name)
    if (tls is None) != (tls_client is None):
        raise ValueError(
            "TLS needs both contexts: tls= for connections this node accepts and "
            "tls_client= for the ones it makes"
        )
    if tick_timeout <= 0:
        raise ValueError("tick_timeout must be positive")
    secret = read_cookie(cookie)
    host, port = parse_host_port(listen, what="listen", default_host="0.0.0.0", allow_zero=True)
    if epmd == EPMD_FROM_ENV:
        epmd = os.environ.get(EPMD_ENV) or DEFAULT_EPMD
    epmd_address = parse_host_port(epmd, what="epmd") if epmd is not None else None
    serial = _default_creation() if creation is None else creation

    kernel: NetKernel | None = None
    error: BaseException | None = None
    try:
        async with trio.open_nursery() as nursery:
            try:
                async with open_actor_system(
                    node_name=name, creation=serial, shutdown_timeout=shutdown_timeout
                ) as system:
                    kernel = NetKernel(
                        system,
                        cookie=secret,
                        tick_timeout=tick_timeout,
                        max_frame_size=max_frame_size,
                        tls=tls,
                        tls_client=tls_client,
                        connect_timeout=connect_timeout,
                        registry=registry,
                    )
                    erlang: ErlangPeers | None = None
                    if "@" in name:
                        epmd_port = epmd_address[1] if epmd_address is not None else 4369
                        erlang = kernel.erlang = ErlangPeers(
                            kernel, cookie=secret, epmd_port=epmd_port
                        )
                    spawner = kernel.spawner = RemoteSpawn(kernel)
                    routing = Routing(kernel, spawner)
                    system.set_router(routing)
                    await nursery.start(kernel.run)
                    services = kernel.services = ClusterServices(system, routing)
                    await nursery.start(services.run)
                    listeners = await nursery.start(
                        functools.partial(trio.serve_tcp, kernel.handle_incoming, port, host=host)
                    )
                    bound = listeners[0].socket.getsockname()
                    address = (host if host not in _ANY else bound[0], bound[1])
                    discovery: Discovery | None = None
                    if epmd_address is not None:
                        discovery = Discovery(
                            kernel,
                            *epmd_address,
                            poll_interval=discovery_interval,
                            keepalive_interval=epmd_keepalive,
                        )
                        kernel.discovery = discovery
                        if advertise is None:
                            advertise = (
                                await _outbound_address(epmd_address[0])
                                if address[0] in _ANY
                                else address[0]
                            )
                        await nursery.start(discovery.run, advertise, address[1])
                    epmd_text = None if epmd_address is None else format_host_port(*epmd_address)
                    try:
                        async with open_peer_nodes(
                            kernel, cookie=secret, epmd=epmd_text
                        ) as peer_nodes:
                            node = Node(system, kernel, spawner, address, discovery, peer_nodes)
                            register_builtins(node._rpc, node)
                            if erlang is not None:
                                erlang.rpc_functions = node._rpc
                                await system.start_server(ErlangNetKernel, name=NET_KERNEL)
                                erlang.group_leader = system.spawn(erlang_group_leader)
                            await system.start_server(Rex, node._rpc, name=REX)
                            log.info("node %r listening on %s", name, format_host_port(*address))
                            try:
                                yield node
                            except BaseException as exc:
                                # Re-raised as it is once the node has shut down,
                                # not wrapped in the node nursery's ExceptionGroup.
                                error = exc
                    finally:
                        if discovery is not None:
                            await discovery.stop()
            finally:
                # The system has shut its actors down; their last signals are queued.
                if kernel is not None:
                    with trio.CancelScope(shield=True):
                        await kernel.leave()
                        if kernel.discovery is not None:
                            await kernel.discovery.aclose()
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        raise _collapse(group) from None
    if error is not None:
        try:
            raise error
        finally:
            error = None


async def _outbound_address(toward: str) -> str:
    """This host's address on the route to `toward`: a UDP socket's connect
    picks the route and the source address without sending a packet."""
    try:
        infos = await trio.socket.getaddrinfo(toward, 9, type=socket.SOCK_DGRAM)
        family, _, _, _, sockaddr = infos[0]
        with trio.socket.socket(family, socket.SOCK_DGRAM) as sock:
            await sock.connect(sockaddr)
            local: str = sock.getsockname()[0]
    except OSError as exc:
        log.warning("cannot find a route to %s (%s): advertising 127.0.0.1", toward, exc)
        return "127.0.0.1"
    return local


def _collapse(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """A start-up failure (`NameTaken`, `EpmdUnavailable`, a bind error) as
    itself rather than nested in nursery exception groups."""
    leaves: list[BaseException] = []
    pending: list[BaseException] = [group]
    while pending:
        exc = pending.pop()
        if isinstance(exc, BaseExceptionGroup):
            pending.extend(exc.exceptions)
        else:
            leaves.append(exc)
    return leaves[0] if len(leaves) == 1 else group
