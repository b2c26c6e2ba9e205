"""The EPMD daemon: a Trio nursery service speaking both protocols on one port.

```python
async with trio.open_nursery() as nursery:
    server = await nursery.start(ta.serve_epmd, "127.0.0.1", 0)
    server.port, server.nodes()
```

One name space serves both protocols: a native registration shows in Erlang's
NAMES and PORT_PLEASE2 answers (as a hidden node), an Erlang registration in
the native ListNodes and Lookup answers.

Lifetimes: a registration lives as long as the connection that made it, as
in epmd: an Erlang one its ALIVE2 connection (after a refused ALIVE2 epmd keeps
the connection open too, until the peer closes it or sends more), a native one
the connection its ``register`` came over, so the name of a node killed with
SIGKILL is free the moment its kernel closes the socket. A native client that
reconnects may take its registration over with its token (the old connection
may be half-open, not yet seen to close). As the fallback for a half-open
connection that never closes, a native registration is also removed
`keepalive_timeout` seconds after its last keep-alive.
Every connection that breaks a protocol rule, or sends a partial request and
then nothing for `packet_timeout` seconds, is closed with a log line; nothing
else is touched.
"""

from __future__ import annotations

import collections
import ipaddress
import logging
import time
from collections.abc import Callable
from typing import Any, Final

import attrs
import trio

from ..errors import ProtocolError
from ..wire.epmd_erlang import (
    PORT2_NOT_FOUND,
    Alive2Req,
    DumpReq,
    ErlangNodeFields,
    ErlangRequest,
    KillReq,
    NamesReq,
    Port2Req,
    StopReq,
    alive2_refusal,
    encode_alive2_resp,
    encode_dump_line,
    encode_names_header,
    encode_names_line,
    encode_port2_resp,
    parse_trioactors_extra,
    parse_trioactors_node,
    trioactors_extra,
)
from ..wire.epmd_native import (
    KIND_ERLANG,
    KIND_TRIOACTORS,
    VERSION,
    Alive,
    Found,
    KeepAlive,
    ListNodes,
    Lookup,
    NativeRequest,
    NativeResponse,
    NodeInfo,
    NodeList,
    Ping,
    Pong,
    Refused,
    Register,
    Registered,
    Unregister,
    Unregistered,
    encode_message,
    encode_preamble,
)
from ..wire.epmd_protocol import NATIVE_REQUESTS, NativeHello, ServerConnection

__all__ = ["DEFAULT_PORT", "EpmdServer", "serve_epmd"]

log = logging.getLogger("trioactors.epmd")

DEFAULT_PORT: Final = 4369
MAX_UNREG_COUNT: Final = 1000  # epmd remembers this many old names (for creation)
_RECEIVE_SIZE = 65536


@attrs.define(eq=False)
class _Conn:
    stream: trio.SocketStream
    peer: str
    fd: int
    local_peer: bool
    scope: trio.CancelScope = attrs.field(factory=trio.CancelScope)


@attrs.define(eq=False)
class _Entry:
    info: NodeInfo
    owner: _Conn
    fd: int
    cr_counter: int
    token: bytes = b""
    last_seen: float = 0.0

    @property
    def native(self) -> bool:
        # Registered over the native protocol (a trioactors node registered
        # through ALIVE2 has kind "trioactors" but Erlang's lifetime rules).
        return self.info.erlang is None


def _bump(counter: int) -> int:
    # epmd's bump_creation: a 32-bit counter that skips 0..3 (those mean
    # "old-style creation" to Erlang).
    counter = (counter + 1) & 0xFFFFFFFF
    return 4 if counter < 4 else counter


def _creation(counter: int, highest_version: int) -> int:
    # Nodes speaking distribution version 6+ get the 32-bit counter; older
    # ones the classic 1..3 cycle (epmd's get_creation).
    return counter if highest_version >= 6 else counter % 3 + 1


def _is_local_peer(peer: Any, local: Any) -> bool:
    # epmd's conn_local_peer_check: loopback addresses, or a connection from
    # this host's own address.
    try:
        addr = ipaddress.ip_address(peer[0])
    except (ValueError, TypeError, IndexError):
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    if addr.is_loopback:
        return True
    try:
        return bool(peer[0] == local[0])
    except (TypeError, IndexError):
        return False


class _Registry:
    """The name table, with epmd's creation bookkeeping; no I/O."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self.nodes: dict[str, _Entry] = {}
        # Unregistered names, oldest first: name -> (creation counter, port, fd).
        self.unreg: collections.OrderedDict[str, tuple[int, int, int]] = collections.OrderedDict()

    def newest_first(self) -> list[_Entry]:
        return list(reversed(self.nodes.values()))

    def add(self, info: NodeInfo, owner: _Conn, token: bytes, now: float) -> _Entry:
        name = info.name
        old = self.unreg.pop(name, None)
        if old is not None:
            counter = _bump(old[0])
        elif len(self.unreg) > MAX_UNREG_COUNT:
            # Like epmd: steal the oldest remembered slot, counter and all.
            _, (counter, _, _) = self.unreg.popitem(last=False)
        else:
            counter = _bump(int(self._clock()))
        high = info.erlang.highest_version if info.erlang is not None else 6
        info = attrs.evolve(info, creation=_creation(counter, high))
        entry = _Entry(info, owner, owner.fd, counter, token, now)
        self.nodes[name] = entry
        return entry

    def remove(self, name: str) -> _Entry | None:
        entry = self.nodes.pop(name, None)
        if entry is not None:
            self.unreg[name] = (entry.cr_counter, entry.info.port, entry.fd)
        return entry


class EpmdServer:
    """Handle of a running EPMD daemon (what `serve_epmd` gives `nursery.start`).

    `port` is the bound port (useful with port 0), `nodes()` the registered
    nodes newest first, `shutdown()` stops the daemon; `killed` turns true
    when an Erlang KILL_REQ (``epmd -kill``) stopped it.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        keepalive_timeout: float,
        packet_timeout: float,
        relaxed_command_check: bool,
        allow_remote_register: bool,
    ) -> None:
        self.host = host
        self.port = port
        self.keepalive_timeout = keepalive_timeout
        self.packet_timeout = packet_timeout
        self.relaxed_command_check = relaxed_command_check
        self.allow_remote_register = allow_remote_register
        self.killed = False
        self._registry = _Registry()
        self._cancel_scope = trio.CancelScope()
        self._changed = trio.Event()

    # -- public

    def nodes(self) -> list[NodeInfo]:
        """Every registered node, newest registration first."""
        return [e.info for e in self._registry.newest_first()]

    def lookup(self, name: str) -> NodeInfo | None:
        """The registered node called `name`, if any."""
        entry = self._registry.nodes.get(name)
        return entry.info if entry is not None else None

    async def wait_changed(self) -> None:
        """Wait until the next registration or removal (for tests and tools)."""
        await self._changed.wait()

    def shutdown(self) -> None:
        """Stop serving: close the listener and every connection."""
        self._cancel_scope.cancel()

    # -- registry changes (logged)

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    def _add(self, info: NodeInfo, conn: _Conn, token: bytes = b"") -> _Entry:
        entry = self._registry.add(info, conn, token, trio.current_time())
        info = entry.info
        log.info(
            "registered %s at %s:%d (%s, creation %d)",
            info.name,
            info.host,
            info.port,
            info.kind,
            info.creation,
        )
        self._notify()
        return entry

    def _remove(self, name: str, reason: str) -> _Entry | None:
        entry = self._registry.remove(name)
        if entry is not None:
            log.info("removed %s (%s)", name, reason)
            self._notify()
        return entry

    # -- service

    async def _run(self, listeners: list[trio.SocketListener], task_status: Any) -> None:
        with self._cancel_scope:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._expire_loop)
                await nursery.start(trio.serve_listeners, self._handle, listeners)
                task_status.started(self)
        if self.killed:
            log.info("EPMD daemon on port %d stopped by KILL_REQ", self.port)

    async def _expire_loop(self) -> None:
        period = min(max(self.keepalive_timeout / 10, 0.01), 5.0)
        while True:
            await trio.sleep(period)
            limit = trio.current_time() - self.keepalive_timeout
            for entry in list(self._registry.nodes.values()):
                if entry.native and entry.last_seen < limit:
                    self._remove(entry.info.name, "keep-alives stopped")

    async def _handle(self, stream: trio.SocketStream) -> None:
        sock = stream.socket
        try:
            peer = sock.getpeername()
            local = sock.getsockname()
        except OSError:
            await stream.aclose()
            return
        conn = _Conn(stream, f"{peer[0]}:{peer[1]}", sock.fileno(), _is_local_peer(peer, local))
        try:
            with conn.scope:
                async with stream:
                    # Logged before the close, so the line is there by the
                    # time the peer sees its connection end.
                    try:
                        await self._serve(conn)
                    except ProtocolError as exc:
                        log.warning("closed connection from %s: %s", conn.peer, exc)
                    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
                        # A peer going away breaks no rule: info, not warning.
                        log.info("closed connection from %s: connection lost (%s)", conn.peer, exc)
        finally:
            # The registering connection is the registration's lifetime, for
            # both protocols (a crashed node's kernel closes its sockets).
            for entry in list(self._registry.nodes.values()):
                if entry.owner is conn:
                    self._remove(entry.info.name, "its EPMD connection closed")

    async def _receive(self, conn: _Conn, limit: float, what: str) -> bytes:
        with trio.move_on_after(limit):
            return await conn.stream.receive_some(_RECEIVE_SIZE)
        raise ProtocolError(f"timed out on receive after {limit:g} s {what}")

    async def _serve(self, conn: _Conn) -> None:
        parser = ServerConnection()
        deadline = trio.current_time() + self.packet_timeout
        while True:
            data = await self._receive(
                conn, max(deadline - trio.current_time(), 0.0), "waiting for a request"
            )
            if not data:
                if parser.buffered:
                    raise ProtocolError(f"got partial packet only ({parser.buffered} bytes)")
                return
            parser.feed(data)
            events = parser.events()
            if not events:
                continue
            first = events[0]
            if isinstance(first, NativeHello):
                await self._serve_native(conn, parser, first)
            else:
                await self._serve_erlang(conn, parser, first)  # type: ignore[arg-type]
            return

    # -- native protocol

    async def _serve_native(
        self,
        conn: _Conn,
        parser: ServerConnection,
        hello: NativeHello,
    ) -> None:
        await conn.stream.send_all(encode_preamble(min(hello.version, VERSION)))
        pending = parser.events()
        partial_since: float | None = None
        while True:
            if pending:
                out = b"".join(
                    encode_message(self._native(conn, req))
                    for req in pending
                    if isinstance(req, NATIVE_REQUESTS)
                )
                await conn.stream.send_all(out)
            now = trio.current_time()
            if parser.buffered:
                if partial_since is None:
                    partial_since = now
                timeout = partial_since + self.packet_timeout - now
                what = "in the middle of a frame"
            else:
                partial_since = None
                timeout = self.keepalive_timeout
                what = "idle"
            data = await self._receive(conn, max(timeout, 0.0), what)
            if not data:
                if parser.buffered:
                    raise ProtocolError(
                        f"closed in the middle of a frame ({parser.buffered} bytes)"
                    )
                return
            parser.feed(data)
            pending = parser.events()

    def _native(self, conn: _Conn, req: NativeRequest) -> NativeResponse:
        if isinstance(req, Lookup):
            return Found(req.id, self.lookup(req.name))
        if isinstance(req, ListNodes):
            return NodeList(req.id, tuple(self.nodes()))
        if isinstance(req, Ping):
            return Pong(req.id)
        if isinstance(req, KeepAlive):
            now = trio.current_time()
            unknown: list[str] = []
            for name in req.names:
                entry = self._registry.nodes.get(name)
                if entry is not None and entry.owner is conn and entry.native:
                    entry.last_seen = now
                else:
                    unknown.append(name)
            return Alive(req.id, tuple(unknown))
        if isinstance(req, Unregister):
            entry = self._registry.nodes.get(req.name)
            if entry is None:
                return Unregistered(req.id, False)
            if entry.owner is not conn:
                return Refused(
                    req.id,
                    "not_allowed",
                    f"{req.name!r} was registered by another connection",
                )
            self._remove(req.name, "unregistered")
            return Unregistered(req.id, True)
        return self._register(conn, req)

    def _register(self, conn: _Conn, req: Register) -> NativeResponse:
        if not conn.local_peer and not self.allow_remote_register:
            log.warning("refused registration of %s from non-local %s", req.name, conn.peer)
            return Refused(
                req.id,
                "not_allowed",
                f"this EPMD daemon accepts registrations from loopback peers only "
                f"(you are {conn.peer}); start it with --allow-remote-register",
            )
        host = req.host
        if host in ("", "0.0.0.0", "::"):
            # A node listening on every interface: others reach it at the
            # address it reached us from.
            host = conn.peer.rsplit(":", 1)[0]
        entry = self._registry.nodes.get(req.name)
        if entry is not None:
            if entry.native and req.token and entry.token == req.token:
                # The same client again (after a reconnect): take it over, same
                # incarnation, fresh keep-alive.
                entry.owner = conn
                entry.last_seen = trio.current_time()
                entry.info = attrs.evolve(
                    entry.info,
                    host=host,
                    port=req.port,
                    protocol_version=req.protocol_version,
                    capabilities=req.capabilities,
                    metadata=req.metadata,
                )
                return Registered(req.id, entry.info)
            info = entry.info
            return Refused(
                req.id,
                "name_taken",
                f"{req.name!r} is registered by a live {info.kind} node at {info.host}:{info.port}",
            )
        info = NodeInfo(
            name=req.name,
            host=host,
            port=req.port,
            kind=KIND_TRIOACTORS,
            protocol_version=req.protocol_version,
            capabilities=req.capabilities,
            metadata=req.metadata,
        )
        return Registered(req.id, self._add(info, conn, req.token).info)

    # -- Erlang protocol

    async def _serve_erlang(
        self, conn: _Conn, parser: ServerConnection, req: ErlangRequest
    ) -> None:
        send = conn.stream.send_all
        if isinstance(req, Alive2Req):
            await self._alive2(conn, parser, req)
        elif isinstance(req, Port2Req):
            entry = self._registry.nodes.get(req.name)
            if entry is None:
                await send(PORT2_NOT_FOUND)
            else:
                await send(encode_port2_resp(entry.info.name, entry.info.port, _erlang_view(entry)))
        elif isinstance(req, NamesReq):
            await send(
                encode_names_header(self.port)
                + b"".join(
                    encode_names_line(e.info.name, e.info.port)
                    for e in self._registry.newest_first()
                )
            )
        elif isinstance(req, DumpReq):
            self._require_local(conn, "DUMP_REQ")
            active = (
                encode_dump_line(e.info.name, e.info.port, e.fd, active=True)
                for e in self._registry.newest_first()
            )
            old = (
                encode_dump_line(name, port, fd, active=False)
                for name, (_, port, fd) in self._registry.unreg.items()
            )
            await send(encode_names_header(self.port) + b"".join(active) + b"".join(old))
        elif isinstance(req, KillReq):
            self._require_local(conn, "KILL_REQ")
            if self._registry.nodes and not self.relaxed_command_check:
                # With relaxed checking epmd kills brutally, names or not.
                log.info("refused KILL_REQ from %s: nodes are registered", conn.peer)
                await send(b"NO")
                return
            await send(b"OK")
            log.info("got KILL_REQ from %s: stopping", conn.peer)
            self.killed = True
            self.shutdown()
        elif isinstance(req, StopReq):
            self._require_local(conn, "STOP_REQ")
            if not self.relaxed_command_check:
                raise ProtocolError("STOP_REQ refused: relaxed command checking is off")
            await send(self._stop(req.name) + b"STOPPED")

    def _require_local(self, conn: _Conn, what: str) -> None:
        if not conn.local_peer:
            raise ProtocolError(f"{what} from non-local address")

    def _stop(self, raw: bytes) -> bytes:
        try:
            name: str | None = raw.decode("utf-8")
        except UnicodeDecodeError:
            name = None
        entry = self._remove(name, "stopped by STOP_REQ") if name is not None else None
        if entry is None:
            return b"NOEXIST"  # epmd then says STOPPED as well
        if not entry.native:
            entry.owner.scope.cancel()
        return b""

    async def _alive2(self, conn: _Conn, parser: ServerConnection, req: Alive2Req) -> None:
        if not conn.local_peer:
            raise ProtocolError("ALIVE2_REQ from non-local address")
        refusal = alive2_refusal(req)
        name = req.name.decode("utf-8") if refusal is None else ""
        if refusal is None and name in self._registry.nodes:
            refusal = f"node name already occupied {name}"
        entry: _Entry | None = None
        if refusal is None:
            fields = req.fields
            version = parse_trioactors_extra(fields.extra)
            info = NodeInfo(
                name=name,
                host=conn.peer.rsplit(":", 1)[0],
                port=req.port,
                kind=KIND_ERLANG if version is None else KIND_TRIOACTORS,
                protocol_version=0 if version is None else version,
                metadata=_node_metadata(parse_trioactors_node(fields.extra)),
                erlang=fields,
            )
            entry = self._add(info, conn)
            creation = entry.info.creation or 0
        else:
            log.warning("refused ALIVE2_REQ from %s: %s", conn.peer, refusal)
            creation = 0
        await conn.stream.send_all(
            encode_alive2_resp(entry is not None, creation, req.highest_version)
        )
        # Like epmd, the connection now stays open (even after a refusal) and
        # anything but a close from the node ends it, and the registration.
        data = await conn.stream.receive_some(_RECEIVE_SIZE)
        if data:
            parser.feed(data)  # raises: "got more bytes than expected"


def _erlang_view(entry: _Entry) -> ErlangNodeFields:
    # What Erlang-protocol clients are told about a native node: a hidden node
    # speaking distribution versions 5..6 (Erlang nodes cannot connect to it,
    # nor should they try), marked as trioactors in the extra field the way a
    # node registered through ALIVE2 marks itself.
    if entry.info.erlang is not None:
        return entry.info.erlang
    info = entry.info
    return ErlangNodeFields(
        extra=trioactors_extra(info.protocol_version, info.metadata.get("node"))
    )


def _node_metadata(node: str | None) -> dict[str, str]:
    return {} if node is None else {"node": node}


async def serve_epmd(
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    *,
    keepalive_timeout: float = 60.0,
    packet_timeout: float = 60.0,
    relaxed_command_check: bool = False,
    allow_remote_register: bool = False,
    task_status: trio.TaskStatus[EpmdServer] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run an EPMD daemon on host:port until cancelled (or stopped by KILL_REQ).

    Use it as a nursery service: ``server = await nursery.start(serve_epmd,
    "127.0.0.1", 0)`` gives the `EpmdServer` handle once the port is bound.

    - `keepalive_timeout`: a native registration is removed this long after its
      last keep-alive; also the idle timeout of native connections.
    - `packet_timeout`: a request must be complete this long after the
      connection opened (native: after the first byte of a frame); epmd's 60 s.
    - `relaxed_command_check`: allow STOP_REQ, and KILL_REQ while names are
      registered (like ``epmd -relaxed_command_check``).
    - `allow_remote_register`: accept native registrations from non-loopback
      peers (Erlang's ALIVE2 is loopback-only, always, as in epmd).
    """
    if type(port) is not int or not 0 <= port <= 65535:
        # The socket layer would wrap 99999 to 34463: refuse it instead.
        raise ValueError(f"EPMD port {port!r} is out of range (0-65535; 0 picks a free one)")
    listeners = await trio.open_tcp_listeners(port, host=host)
    bound = listeners[0].socket.getsockname()[1]
    server = EpmdServer(
        host,
        bound,
        keepalive_timeout=keepalive_timeout,
        packet_timeout=packet_timeout,
        relaxed_command_check=relaxed_command_check,
        allow_remote_register=allow_remote_register,
    )
    log.info("EPMD daemon listening on %s:%d", host, bound)
    await server._run(listeners, task_status)
