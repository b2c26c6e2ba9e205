"""The net kernel: a node's connections to its peers.

`NetKernel` dials peers (through discovery or a given address) and accepts
them, runs the handshake, keeps one connection per node pair (simultaneous
connects are resolved by name: the connection started by the node with the
smaller name wins) and turns a lost connection into `noconnection` for every
link and monitor that crossed it (`system.node_down`), `NodeDown` for node
watchers and failed remote spawns. What travels over a connection is the job
of `trioactors.cluster.routing` (outbound) and `trioactors.cluster.dispatch`
(inbound); remote spawn is `trioactors.cluster.spawn`.
"""

from __future__ import annotations

import logging
import ssl
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

import trio

from ..errors import (
    ConnectionFailed,
    EpmdError,
    NotSerializable,
    ProtocolError,
    TrioActorsError,
)
from ..runtime.messages import NodeDown, NodeUp
from ..wire import records as p
from ..wire.cbor import MessageCodec, MessageRegistry
from ..wire.erldist_handshake import Established as ErlangEstablished
from ..wire.framing import DEFAULT_MAX_FRAME_SIZE
from ..wire.handshake import (
    REFUSE_DUPLICATE,
    REFUSE_SIMULTANEOUS,
    Handshake,
    PeerHello,
    Refused,
    Role,
)
from ..wire.handshake import Established as HandshakeEstablished
from ..wire.names import NodeAddress, parse_node
from ..wire.sniff import PeerProtocol, Sniffed
from ..wire.terms import Pid
from .connection import CLOSED, Connection, run_handshake, sniff_stream, wrap_tls
from .dispatch import cbor_dispatcher
from .peers import Attempt, Peer, PeerTable

if TYPE_CHECKING:
    from ..otp.system import ActorSystem
    from .discovery import Discovery
    from .erlang_peer import ErlangPeers
    from .services import ClusterServices
    from .spawn import RemoteSpawn

__all__ = ["NOCONNECTION", "NetKernel"]

log = logging.getLogger("trioactors.cluster")

#: The reason links and monitors fire with when a node is lost or unreachable.
NOCONNECTION: Final = "noconnection"
#: Protocols a node port never serves: such a connection is closed with a log line.
_FOREIGN: Final = frozenset({PeerProtocol.TLS, PeerProtocol.HTTP, PeerProtocol.EPMD})
#: After a failed attempt, discovery waits this long before trying that node again.
_DISCOVERY_RETRY: Final = 30.0


class NetKernel:
    """The connections of one node to its peers (see the module docstring)."""

    def __init__(
        self,
        system: ActorSystem,
        *,
        cookie: bytes,
        tick_timeout: float = 60.0,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        tls: ssl.SSLContext | None = None,
        tls_client: ssl.SSLContext | None = None,
        connect_timeout: float = 10.0,
        registry: MessageRegistry | None = None,
    ) -> None:
        self.system = system
        #: This node's name (the system's node name).
        self.name = system.node_name
        self.creation = system.creation
        self.codec = MessageCodec(registry)
        self.tick_timeout = tick_timeout
        self.max_frame_size = max_frame_size
        self.connect_timeout = connect_timeout
        self.peers = PeerTable(self.name)
        #: Set by the node when it runs with EPMD: lookups and node lists.
        self.discovery: Discovery | None = None
        #: Set by the node: the cluster services and remote spawn, for dispatch.
        self.services: ClusterServices | None = None
        self.spawner: RemoteSpawn | None = None
        #: Set by a node with a full name (``name@host``): Erlang peers.
        self.erlang: ErlangPeers | None = None
        self._cookie = cookie
        self._tls = tls
        self._tls_client = tls_client
        self._node_watchers: set[Pid] = set()
        self._nursery: trio.Nursery | None = None
        self.closing = False
        self._all_closed = trio.Event()

    # ------------------------------------------------------------------ lifecycle

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Own the connection tasks until cancelled (start with `nursery.start`)."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            await trio.sleep_forever()

    def start_soon(self, fn: object, *args: object) -> None:
        """Run a task of this node's connection layer (a remote spawn, ...)."""
        if self._nursery is None:
            raise RuntimeError("the net kernel is not running")
        self._nursery.start_soon(fn, *args)  # type: ignore[arg-type]

    async def leave(self, grace: float = 5.0) -> None:
        """Tell every peer goodbye, flush what is queued for it, and close."""
        self.closing = True
        goodbye = p.RECORDS.frame(self.codec, p.Goodbye("shutdown"))
        live = [peer.conn for peer in self.peers if peer.conn is not None]
        for peer in self.peers:
            if peer.conn is not None:
                # Erlang has no goodbye: closing the connection says it.
                peer.conn.close(final=b"" if peer.kind == "erlang" else goodbye)
        for peer in self.peers:
            if peer.attempt is not None:
                peer.attempt.finish(ConnectionFailed(f"node {self.name!r} is shutting down"))
        if live:
            with trio.move_on_after(grace):
                await self._all_closed.wait()

    # ------------------------------------------------------------------ peers

    def nodes(self) -> list[str]:
        """Names of the peers with an established connection."""
        return self.peers.connected()

    def should_autoconnect(self, name: str) -> bool:
        """Discovery asks: is `name` worth a connection attempt now?"""
        if name == self.name or self.closing:
            return False
        peer = self.peers.get(name)
        if peer is None:
            return True
        return (
            peer.conn is None
            and peer.attempt is None
            and not peer.accepting
            and trio.current_time() - peer.last_failure > _DISCOVERY_RETRY
        )

    async def connect(self, target: str) -> str:
        """Connect to a node (any form of `trioactors.wire.names.parse_node`);
        returns its name once the connection is established. Raises
        `ConnectionFailed` (or `AuthenticationFailed`)."""
        address = parse_node(target)
        name = address.name
        if name == self.name:
            return name
        if self.closing:
            raise ConnectionFailed(f"node {self.name!r} is shutting down")
        if name is None:
            # host:port: whoever listens there, under the name it announces.
            assert address.direct is not None
            name = await self._dial_unnamed(address)
            return name
        peer = self.peers.ensure(name)
        if address.direct is not None:
            peer.address = address.direct
        if peer.conn is not None:
            return name
        self._ensure_connecting(peer)
        attempt = peer.attempt
        if attempt is not None:
            await attempt.done.wait()
            if attempt.error is not None:
                raise attempt.error
        else:
            with trio.move_on_after(self.connect_timeout):
                await peer.up.wait()
        if peer.conn is None:
            raise ConnectionFailed(f"connection to node {name!r} did not come up")
        return name

    def disconnect(self, name: str) -> bool:
        """Close the connection to `name` after flushing it (Erlang's
        `disconnect_node`); False if not connected. Links and monitors across
        it fire with `noconnection`, node watchers get `NodeDown(name, "disconnect")`
        (the peer's get ``connection_closed``)."""
        peer = self.peers.get(name)
        if peer is None or not peer.connected:
            return False
        assert peer.conn is not None
        goodbye = (
            b"" if peer.kind == "erlang" else p.RECORDS.frame(self.codec, p.Goodbye("disconnect"))
        )
        peer.conn.close(final=goodbye)
        return True

    def connect_soon(self, name: str) -> None:
        """Start connecting to `name` in the background (no-op if under way)."""
        if name != self.name:
            self._ensure_connecting(self.peers.ensure(name))

    def _ensure_connecting(self, peer: Peer) -> None:
        if peer.conn is not None or peer.attempt is not None or peer.accepting:
            return
        if self.closing or self._nursery is None:
            return
        attempt = peer.attempt = Attempt()
        self._nursery.start_soon(self._connect_task, peer, attempt)

    def to_peer(self, peer: Peer, frame: bytes) -> None:
        """Queue `frame` for `peer`, connecting first if need be (dropped if
        the node is shutting down)."""
        conn = peer.conn
        if conn is not None:
            conn.send_frame(frame)
        elif not self.closing:
            peer.pending.append(frame)
            self._ensure_connecting(peer)

    async def _address_of(self, peer: Peer) -> tuple[str, int]:
        if peer.address is not None:
            return peer.address
        if self.discovery is None:
            raise ConnectionFailed(
                f"no address known for node {peer.name!r} and discovery is off; "
                f"connect with '{peer.name}@host:port'"
            )
        try:
            found = await self.discovery.lookup(peer.name)
        except EpmdError as exc:
            raise ConnectionFailed(f"cannot look up node {peer.name!r}: {exc}") from exc
        if found is None:
            host = _host_part(peer.name)
            where = f"EPMD at {self.discovery.address}"
            if host is not None:
                where += f" nor with the EPMD of host {host}"
            raise ConnectionFailed(
                f"node {peer.name!r} is not registered with {where}; is it running "
                "and using the same EPMD (port)?"
            )
        return found

    async def _dial(
        self, host: str, port: int, expected: NodeAddress, what: str
    ) -> tuple[trio.abc.Stream, Handshake, HandshakeEstablished | Refused]:
        try:
            stream: trio.abc.Stream = await trio.open_tcp_stream(host, port)
        except OSError as exc:
            raise ConnectionFailed(
                f"cannot reach {what} at {host}:{port}: {exc.strerror or exc}"
            ) from exc
        log.debug(
            "handshake with %s at %s:%d: connected, %s",
            what,
            host,
            port,
            "starting TLS" if self._tls_client is not None else "sending hello",
        )
        try:
            if self._tls_client is not None:
                stream = await wrap_tls(
                    stream, self._tls_client, server_side=False, server_hostname=host
                )
            machine = Handshake(
                Role.CONNECT,
                name=self.name,
                creation=self.creation,
                cookie=self._cookie,
                expected_peer=expected,
            )
            outcome = await run_handshake(stream, machine)
        except BaseException as exc:
            log.debug("handshake with %s at %s:%d failed: %r", what, host, port, exc)
            await trio.aclose_forcefully(stream)
            raise
        log.debug("handshake with %s at %s:%d: %s", what, host, port, _outcome(outcome))
        return stream, machine, outcome

    def _dial_error(self, what: str, exc: BaseException) -> BaseException:
        if isinstance(exc, TrioActorsError) and not isinstance(exc, ProtocolError):
            return exc
        return ConnectionFailed(f"connecting to {what} failed: {exc}")

    async def _connect_task(self, peer: Peer, attempt: Attempt) -> None:
        what = f"node {peer.name!r}"
        erlang = self.erlang
        is_erlang = False
        try:
            with trio.fail_after(self.connect_timeout):
                if erlang is not None and peer.kind != "trioactors" and peer.address is None:
                    # 'name@host': that host's EPMD says whether it is an Erlang node.
                    found = await erlang.lookup(peer.name)
                    if found is None:
                        raise ConnectionFailed(
                            f"node {peer.name!r} is not registered with the EPMD of its host; "
                            "is it running (and using that EPMD)?"
                        )
                    host, port, is_erlang = found
                else:
                    host, port = await self._address_of(peer)
                if is_erlang:
                    assert erlang is not None
                    stream, emachine, eoutcome = await erlang.dial(host, port, peer.name)
                else:
                    if peer.address is not None and "@" not in peer.name:
                        # Dialled as 'name@host:port': 'name@host' is the same node.
                        expected = NodeAddress(peer.name, host, port)
                    else:
                        expected = NodeAddress(peer.name)
                    stream, machine, outcome = await self._dial(host, port, expected, what)
        except trio.TooSlowError:
            error: BaseException = ConnectionFailed(
                f"connecting to {what} timed out after {self.connect_timeout} s"
            )
            self._attempt_failed(peer, attempt, error)
            return
        except (
            TrioActorsError,
            OSError,
            ssl.SSLError,
            trio.BrokenResourceError,
            ValueError,  # a name discovery cannot look up
        ) as exc:
            self._attempt_failed(peer, attempt, self._dial_error(what, exc))
            return
        if is_erlang:
            assert erlang is not None
            if isinstance(eoutcome, ErlangEstablished):
                await erlang.attach(peer, stream, emachine, eoutcome)
                return
            refused: str | None = eoutcome.status
        else:
            refused = outcome.reason if isinstance(outcome, Refused) else None
        if refused is not None:
            # The peer's own connection to us wins (or already exists): wait for it.
            await trio.aclose_forcefully(stream)
            with trio.move_on_after(self.connect_timeout):
                await peer.up.wait()
            if peer.conn is None:
                self._attempt_failed(
                    peer,
                    attempt,
                    ConnectionFailed(
                        f"node {peer.name!r} refused the connection ({refused}) "
                        "and its own connection did not come up"
                    ),
                )
            else:
                attempt.finish()
                if peer.attempt is attempt:
                    peer.attempt = None
            return
        assert isinstance(outcome, HandshakeEstablished)
        if outcome.peer.name != peer.name:
            # Dialled as 'name@host:port', it calls itself 'name@host'.
            real = self.peers.ensure(outcome.peer.name)
            real.address = peer.address
            real.pending.extend(peer.pending)
            peer.pending.clear()
            if peer.attempt is attempt:
                peer.attempt = None
            attempt.finish()
            peer = real
        await self._attach(peer, stream, machine.trailing_data(), outcome.peer.creation)

    async def _dial_unnamed(self, address: NodeAddress) -> str:
        assert address.direct is not None
        host, port = address.direct
        what = f"the node at {host}:{port}"
        try:
            with trio.fail_after(self.connect_timeout):
                stream, machine, outcome = await self._dial(host, port, address, what)
        except trio.TooSlowError:
            raise ConnectionFailed(
                f"connecting to {what} timed out after {self.connect_timeout} s"
            ) from None
        except (OSError, ssl.SSLError, trio.BrokenResourceError, ProtocolError) as exc:
            raise self._dial_error(what, exc) from exc
        if isinstance(outcome, Refused):
            await trio.aclose_forcefully(stream)
            raise ConnectionFailed(f"{what} refused the connection ({outcome.reason})")
        peer = self.peers.ensure(outcome.peer.name)
        peer.address = (host, port)
        if peer.conn is not None:
            await trio.aclose_forcefully(stream)
            return peer.name
        assert self._nursery is not None
        self._nursery.start_soon(
            self._attach, peer, stream, machine.trailing_data(), outcome.peer.creation
        )
        with trio.move_on_after(self.connect_timeout):
            await peer.up.wait()
        if peer.conn is None:
            raise ConnectionFailed(f"connection to {what} did not come up")
        return peer.name

    def _attempt_failed(self, peer: Peer, attempt: Attempt, error: BaseException) -> None:
        if peer.attempt is attempt:
            peer.attempt = None
        attempt.finish(error)
        if peer.conn is not None:
            return  # an incoming connection made it meanwhile
        log.info("connection to node %r failed: %s", peer.name, error)
        peer.last_failure = trio.current_time()
        peer.pending.clear()
        peer.deferred.clear()
        if self.closing:
            return
        # Links and monitors requested while connecting fire now, like Erlang.
        self.system.node_down(peer.name, NOCONNECTION)
        self._notify_watchers(peer, NOCONNECTION)

    # ------------------------------------------------------------------ incoming

    async def handle_incoming(self, stream: trio.abc.Stream) -> None:
        """Serve one accepted TCP connection (the listener's handler)."""
        where = _remote_address(stream)
        log.debug("handshake from %s: accepted a connection", where)
        claimed: list[Peer] = []
        try:
            if self._tls is not None:
                stream = await wrap_tls(stream, self._tls, server_side=True)
            with trio.fail_after(self.connect_timeout):
                first, sniffed = await sniff_stream(stream)
            if sniffed.protocol is PeerProtocol.ERLANG_DIST and self.erlang is not None:
                await self.erlang.handle_incoming(stream, first, where)
                return
            if sniffed.protocol in _FOREIGN or sniffed.protocol is PeerProtocol.ERLANG_DIST:
                log.warning(
                    "refused node connection from %s: %s",
                    where,
                    self._foreign_reason(sniffed),
                )
                await trio.aclose_forcefully(stream)
                return
            machine = Handshake(
                Role.ACCEPT, name=self.name, creation=self.creation, cookie=self._cookie
            )
            with trio.fail_after(self.connect_timeout):
                outcome = await run_handshake(
                    stream, machine, decide=lambda ev: self._decide(ev, claimed), initial=first
                )
        except (TrioActorsError, OSError, ssl.SSLError, trio.TooSlowError) as exc:
            log.warning("refused node connection from %s: %s", where, str(exc) or repr(exc))
            await trio.aclose_forcefully(stream)
            self._unclaim(claimed)
            return
        except trio.BrokenResourceError as exc:
            log.warning("node connection from %s broke during the handshake: %s", where, exc)
            await trio.aclose_forcefully(stream)
            self._unclaim(claimed)
            return
        if isinstance(outcome, Refused):
            log.debug("declined node connection from %s: %s", where, outcome.reason)
            await trio.aclose_forcefully(stream)
            return
        log.debug("handshake from %s: %s", where, _outcome(outcome))
        await self._attach(claimed[0], stream, machine.trailing_data(), outcome.peer.creation)

    def _foreign_reason(self, sniffed: Sniffed) -> str:
        text = sniffed.describe(f"node {self.name!r}")
        if sniffed.protocol is PeerProtocol.ERLANG_DIST:
            text += (
                f"; to join Erlang clusters a node needs a full name such as "
                f"'{self.name}@HOST' (open_node('{self.name}@127.0.0.1'))"
            )
        elif sniffed.protocol is PeerProtocol.TLS:
            text = "met TLS: " + text
        return text

    def _unclaim(self, claimed: list[Peer]) -> None:
        for peer in claimed:
            peer.accepting = False
            if peer.conn is None and peer.watchers:
                self._ensure_connecting(peer)

    def _decide(self, event: PeerHello, claimed: list[Peer]) -> tuple[str, str] | None:
        info = event.peer
        if self.closing:
            return ("shutdown", f"node {self.name!r} is shutting down")
        peer = self.peers.ensure(info.name)
        if peer.accepting:
            return (REFUSE_DUPLICATE, "a handshake with this node is already in progress")
        if peer.conn is not None and peer.creation == info.creation:
            return (REFUSE_DUPLICATE, "already connected")
        if peer.attempt is not None and peer.conn is None and self.name < info.name:
            return (REFUSE_SIMULTANEOUS, "both nodes connect; the smaller name's connection wins")
        # A new incarnation of a connected node replaces the old connection once
        # it has authenticated (see _attach), not before.
        peer.accepting = True
        claimed.append(peer)
        return None

    # ------------------------------------------------------------------ established

    async def _attach(
        self,
        peer: Peer,
        stream: trio.abc.Stream,
        initial: bytes,
        creation: int,
        *,
        on_frame: Callable[[bytes], None] | None = None,
        answer_ticks: bool = False,
    ) -> None:
        """Run an established connection to `peer` (either protocol) until it ends."""
        peer.accepting = False
        old = peer.conn
        if old is not None:
            # The peer restarted (new creation) before we noticed it was gone.
            self._lost(peer, old, CLOSED)
            old.abort(CLOSED)
        erlang = on_frame is not None
        if not erlang:
            peer.kind = "trioactors"
        conn = Connection(
            stream,
            peer=peer.name,
            on_frame=on_frame or cbor_dispatcher(self, peer),
            tick_timeout=self.tick_timeout,
            max_frame_size=self.max_frame_size,
            initial=initial,
            outgoing=peer.pending,
            answer_ticks=answer_ticks,
        )
        peer.pending = deque()
        peer.conn = conn
        peer.creation = creation
        if peer.attempt is not None:
            peer.attempt.finish()
            peer.attempt = None
        deferred, peer.deferred = peer.deferred, []
        for op in deferred:
            try:
                op()
            except NotSerializable as exc:
                # Sent before the protocol was known: the sender is long gone.
                log.warning("dropped a message for node %r: %s", peer.name, exc)
        peer.up.set()
        if not erlang:
            log.info("connected to node %r", peer.name)
        if self.services is not None and not erlang:
            self.services.peer_up(peer.name)
        for watcher in self._node_watchers:
            self.system.deliver(watcher, NodeUp(peer.name))
        reason = CLOSED
        try:
            reason = await conn.run()
        finally:
            self._lost(peer, conn, conn.reason or reason)

    def _lost(self, peer: Peer, conn: Connection, reason: str) -> None:
        if peer.conn is not conn:
            return
        peer.conn = None
        peer.up = trio.Event()
        if self.closing:
            if not self.peers.any_connection():
                self._all_closed.set()
            return
        log.info("connection to node %r closed: %s", peer.name, reason)
        self.system.node_down(peer.name, NOCONNECTION)
        self._notify_watchers(peer, reason)
        for watcher in self._node_watchers:
            self.system.deliver(watcher, NodeDown(peer.name, reason))
        if self.spawner is not None:
            self.spawner.node_lost(peer.name, reason)
        if self.services is not None and peer.kind != "erlang":
            self.services.peer_down(peer.name)

    # ------------------------------------------------------------------ node watchers

    def monitor_node(self, watcher: Pid, node_name: str) -> None:
        """`NodeDown(node_name, reason)` to `watcher` when that node goes (at
        once if it cannot be reached)."""
        if node_name == self.name:
            return
        peer = self.peers.ensure(node_name)
        peer.watchers.append(watcher)
        if peer.conn is None:
            if self.closing:
                self._notify_watchers(peer, NOCONNECTION)
            else:
                self._ensure_connecting(peer)

    def demonitor_node(self, watcher: Pid, node_name: str) -> None:
        """Cancel one `monitor_node`."""
        peer = self.peers.get(node_name)
        if peer is not None and watcher in peer.watchers:
            peer.watchers.remove(watcher)

    def _notify_watchers(self, peer: Peer, reason: str) -> None:
        watchers, peer.watchers = peer.watchers, []
        for watcher in watchers:
            self.system.deliver(watcher, NodeDown(peer.name, reason))

    def monitor_nodes(self, pid: Pid) -> None:
        """Deliver `NodeUp`/`NodeDown` for every peer to local `pid`."""
        self._node_watchers.add(pid)

    def demonitor_nodes(self, pid: Pid) -> None:
        """Stop `monitor_nodes` for `pid`."""
        self._node_watchers.discard(pid)


def _remote_address(stream: trio.abc.Stream) -> str:
    sock = getattr(stream, "socket", None)
    if sock is None:
        inner = getattr(stream, "transport_stream", None)
        sock = getattr(inner, "socket", None)
    try:
        host, port = sock.getpeername()[:2] if sock is not None else ("?", 0)
    except OSError:
        return "?"
    return f"{host}:{port}"


def _host_part(name: str) -> str | None:
    try:
        address = parse_node(name)
    except ValueError:
        return None
    return address.host if address.port is None else None


def _outcome(outcome: HandshakeEstablished | Refused) -> str:
    if isinstance(outcome, Refused):
        return f"refused ({outcome.reason}: {outcome.detail})"
    peer = outcome.peer
    return f"node {peer.name!r} authenticated (creation {peer.creation}, protocol {peer.version})"
