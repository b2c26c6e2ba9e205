"""The net kernel: a node's peers, connections, routing and remote spawn.

`NetKernel` is the `trioactors.runtime.router.Router` a node installs into its
`ActorSystem`: every signal for a non-local pid becomes a record queued on the
connection to that pid's node (auto-connecting on first use), and every
record arriving from a peer becomes a call of the system's `RemoteSignals`
methods. It keeps one connection per node pair (simultaneous connects are
resolved by name: the connection started by the node with the smaller name
wins), turns a lost connection into `noconnection` for every link and
monitor that crossed it (`system.node_down`) plus `NodeDown` for node
watchers, and fails remote spawns still waiting on that node.
"""

from __future__ import annotations

import logging
import ssl
from collections import deque
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Final, cast

import attrs
import trio

from ..errors import (
    ConnectionFailed,
    EpmdError,
    NotSerializable,
    ProtocolError,
    SpawnFailed,
    StartFailed,
    TrioActorsError,
)
from ..runtime.messages import Down, NodeDown, NodeUp
from ..runtime.router import RemoteName
from ..wire import records as p
from ..wire.cbor import MessageCodec, MessageRegistry
from ..wire.framing import DEFAULT_MAX_FRAME_SIZE, encode_frame
from ..wire.handshake import (
    REFUSE_DUPLICATE,
    REFUSE_SIMULTANEOUS,
    Established,
    Handshake,
    PeerHello,
    PeerInfo,
    Refused,
    Role,
)
from ..wire.terms import Pid, Ref, _Counter, node_id_for
from .connection import CLOSED, DISCONNECT, Connection, run_handshake, wrap_tls

if TYPE_CHECKING:
    from ..otp.gen_server import GenServer
    from ..runtime.system import ActorFn, ActorSystem
    from .discovery import Discovery
    from .services import ClusterServices

__all__ = ["NetKernel", "parse_node_address"]

log = logging.getLogger("trioactors.cluster")

#: NodeDown reason when a node could not be reached at all.
NOCONNECTION: Final = "noconnection"
#: After a failed attempt, discovery waits this long before trying that node again.
_DISCOVERY_RETRY: Final = 30.0
_SEND: Final = p.RECORDS.code_of(p.Send)
_SEND_NAMED: Final = p.RECORDS.code_of(p.SendNamed)


def parse_node_address(target: str) -> tuple[str, tuple[str, int] | None]:
    """Split ``"name"`` or ``"name@host:port"`` into the name and the address."""
    if "@" not in target:
        return target, None
    name, _, where = target.partition("@")
    host, sep, port = where.rpartition(":")
    if not name or not sep or not port.isdigit():
        raise ValueError(f"expected 'name' or 'name@host:port', got {target!r}")
    return name, (host.strip("[]"), int(port))


class _Attempt:
    """One outgoing connection attempt; `connect()` callers wait on it."""

    __slots__ = ("done", "error")

    def __init__(self) -> None:
        self.done = trio.Event()
        self.error: BaseException | None = None

    def finish(self, error: BaseException | None = None) -> None:
        if not self.done.is_set():
            self.error = error
            self.done.set()


class _Peer:
    """Everything this node knows about one other node."""

    __slots__ = (
        "accepting",
        "address",
        "attempt",
        "conn",
        "incarnation",
        "last_failure",
        "name",
        "node_id",
        "pending",
        "up",
        "watchers",
    )

    def __init__(self, name: str) -> None:
        self.name = name
        self.node_id = node_id_for(name)
        self.address: tuple[str, int] | None = None
        self.conn: Connection | None = None
        self.incarnation: int | None = None
        # Frames sent while no connection exists; they go out first once it does.
        self.pending: deque[bytes] = deque()
        self.attempt: _Attempt | None = None
        self.accepting = False
        self.up = trio.Event()
        self.watchers: list[Pid] = []  # monitor_node, one-shot like Erlang
        self.last_failure = -float("inf")


@attrs.define
class _SpawnWait:
    node: str
    link_to: Pid | None
    done: trio.Event = attrs.field(factory=trio.Event)
    pid: Pid | None = None
    error: str = ""


class NetKernel:
    """Peers, connections and routing of one node (the system's `Router`)."""

    def __init__(
        self,
        system: ActorSystem,
        *,
        name: str,
        incarnation: int,
        cookie: bytes,
        tick_timeout: float = 60.0,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        tls: ssl.SSLContext | None = None,
        tls_client: ssl.SSLContext | None = None,
        connect_timeout: float = 10.0,
        registry: MessageRegistry | None = None,
    ) -> None:
        self.system = system
        self.name = name
        self.node_id = node_id_for(name)
        self.incarnation = incarnation
        self.codec = MessageCodec(self.node_id, registry)
        self.tick_timeout = tick_timeout
        self.max_frame_size = max_frame_size
        self.connect_timeout = connect_timeout
        #: Set by the node when it runs with EPMD: lookups and node lists.
        self.discovery: Discovery | None = None
        self.services: ClusterServices | None = None
        self._cookie = cookie
        self._tls = tls
        self._tls_client = tls_client
        self._peers: dict[str, _Peer] = {}
        self._by_id: dict[int, _Peer] = {}
        self._unresolved: dict[int, deque[bytes]] = {}
        self._spawnables: dict[str, Callable[..., Any]] = {}
        self._spawns: dict[Ref, _SpawnWait] = {}
        self._refs = _Counter()
        self._node_watchers: set[Pid] = set()
        self._nursery: trio.Nursery | None = None
        self._closing = False
        self._all_closed = trio.Event()

    # ------------------------------------------------------------------ lifecycle

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Own the connection tasks until cancelled (start with `nursery.start`)."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            await trio.sleep_forever()

    async def leave(self, grace: float = 5.0) -> None:
        """Tell every peer goodbye, flush what is queued for it, and close."""
        self._closing = True
        goodbye = p.RECORDS.frame(self.codec, p.Goodbye("shutdown"))
        live = [peer.conn for peer in self._peers.values() if peer.conn is not None]
        for conn in live:
            conn.close(final=goodbye)
        for peer in self._peers.values():
            if peer.attempt is not None:
                peer.attempt.finish(ConnectionFailed(f"node {self.name!r} is shutting down"))
        if live:
            with trio.move_on_after(grace):
                await self._all_closed.wait()

    # ------------------------------------------------------------------ peers

    def _peer(self, name: str) -> _Peer:
        peer = self._peers.get(name)
        if peer is None:
            peer = self._peers[name] = _Peer(name)
            self._by_id.setdefault(peer.node_id, peer)
        return peer

    def learn_names(self, names: Iterable[str]) -> None:
        """Remember node names (from discovery) so pids of those nodes resolve."""
        for name in names:
            if name != self.name and name not in self._peers:
                self._peer(name)

    def nodes(self) -> list[str]:
        """Names of the peers with an established connection."""
        return sorted(
            name for name, peer in self._peers.items() if peer.conn is not None and peer.conn.open
        )

    def peer_name(self, node_id: int) -> str | None:
        """The name of node `node_id`, if known."""
        peer = self._by_id.get(node_id)
        return peer.name if peer is not None else None

    def should_autoconnect(self, name: str) -> bool:
        """Discovery asks: is `name` worth a connection attempt now?"""
        if name == self.name or self._closing:
            return False
        peer = self._peers.get(name)
        if peer is None:
            return True
        return (
            peer.conn is None
            and peer.attempt is None
            and not peer.accepting
            and trio.current_time() - peer.last_failure > _DISCOVERY_RETRY
        )

    async def connect(self, target: str) -> str:
        """Connect to `"name"` (via discovery) or `"name@host:port"`; returns
        the name once the connection is established. Raises `ConnectionFailed`
        (or its `AuthenticationFailed` / `NodeIdCollision` subclasses)."""
        name, address = parse_node_address(target)
        if name == self.name:
            return name
        if self._closing:
            raise ConnectionFailed(f"node {self.name!r} is shutting down")
        peer = self._peer(name)
        if address is not None:
            peer.address = address
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
        it fire with `noconnection`, node watchers get `NodeDown(name, "disconnect")`."""
        peer = self._peers.get(name)
        if peer is None or peer.conn is None or not peer.conn.open:
            return False
        peer.conn.close(final=self._frame(p.Goodbye("disconnect")))
        return True

    def connect_soon(self, name: str) -> None:
        """Start connecting to `name` in the background (no-op if under way)."""
        if name != self.name:
            self._ensure_connecting(self._peer(name))

    def _ensure_connecting(self, peer: _Peer) -> None:
        if peer.conn is not None or peer.attempt is not None or peer.accepting:
            return
        if self._closing or self._nursery is None:
            return
        attempt = peer.attempt = _Attempt()
        self._nursery.start_soon(self._connect_task, peer, attempt)

    async def _address_of(self, peer: _Peer) -> tuple[str, int]:
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
            raise ConnectionFailed(
                f"node {peer.name!r} is not registered with EPMD; is it running "
                "and using the same EPMD?"
            )
        return found

    async def _dial(self, peer: _Peer) -> tuple[trio.abc.Stream, Handshake, Established | Refused]:
        host, port = await self._address_of(peer)
        try:
            stream: trio.abc.Stream = await trio.open_tcp_stream(host, port)
        except OSError as exc:
            raise ConnectionFailed(
                f"cannot reach node {peer.name!r} at {host}:{port}: {exc.strerror or exc}"
            ) from exc
        try:
            if self._tls_client is not None:
                stream = await wrap_tls(
                    stream, self._tls_client, server_side=False, server_hostname=host
                )
            machine = Handshake(
                Role.CONNECT,
                name=self.name,
                incarnation=self.incarnation,
                cookie=self._cookie,
                expected_peer=peer.name,
            )
            outcome = await run_handshake(stream, machine)
        except BaseException:
            await trio.aclose_forcefully(stream)
            raise
        return stream, machine, outcome

    async def _connect_task(self, peer: _Peer, attempt: _Attempt) -> None:
        try:
            with trio.fail_after(self.connect_timeout):
                stream, machine, outcome = await self._dial(peer)
        except trio.TooSlowError:
            self._attempt_failed(
                peer,
                attempt,
                ConnectionFailed(
                    f"connecting to node {peer.name!r} timed out after {self.connect_timeout} s"
                ),
            )
            return
        except (TrioActorsError, OSError, ssl.SSLError, trio.BrokenResourceError) as exc:
            if isinstance(exc, TrioActorsError) and not isinstance(exc, ProtocolError):
                error: BaseException = exc
            else:
                error = ConnectionFailed(f"connecting to node {peer.name!r} failed: {exc}")
            self._attempt_failed(peer, attempt, error)
            return
        if isinstance(outcome, Refused):
            # The peer's own connection to us wins (or already exists): wait for it.
            await trio.aclose_forcefully(stream)
            with trio.move_on_after(self.connect_timeout):
                await peer.up.wait()
            if peer.conn is None:
                self._attempt_failed(
                    peer,
                    attempt,
                    ConnectionFailed(
                        f"node {peer.name!r} refused the connection ({outcome.reason}) "
                        "and its own connection did not come up"
                    ),
                )
            else:
                attempt.finish()
                if peer.attempt is attempt:
                    peer.attempt = None
            return
        await self._attach(peer, stream, machine, outcome.peer)

    def _attempt_failed(self, peer: _Peer, attempt: _Attempt, error: BaseException) -> None:
        if peer.attempt is attempt:
            peer.attempt = None
        attempt.finish(error)
        if peer.conn is not None:
            return  # an incoming connection made it meanwhile
        log.info("connection to node %r failed: %s", peer.name, error)
        peer.last_failure = trio.current_time()
        peer.pending.clear()
        if self._closing:
            return
        # Links and monitors requested while connecting fire now, like Erlang.
        self.system.node_down(peer.node_id, NOCONNECTION)
        self._notify_watchers(peer, NOCONNECTION)

    # ------------------------------------------------------------------ incoming

    async def handle_incoming(self, stream: trio.abc.Stream) -> None:
        """Serve one accepted TCP connection (the listener's handler)."""
        where = _remote_address(stream)
        claimed: list[_Peer] = []
        try:
            if self._tls is not None:
                stream = await wrap_tls(stream, self._tls, server_side=True)
            machine = Handshake(
                Role.ACCEPT, name=self.name, incarnation=self.incarnation, cookie=self._cookie
            )
            with trio.fail_after(self.connect_timeout):
                outcome = await run_handshake(
                    stream, machine, decide=lambda ev: self._decide(ev, claimed)
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
        await self._attach(claimed[0], stream, machine, outcome.peer)

    def _unclaim(self, claimed: list[_Peer]) -> None:
        for peer in claimed:
            peer.accepting = False
            if peer.conn is None and peer.watchers:
                self._ensure_connecting(peer)

    def _decide(self, event: PeerHello, claimed: list[_Peer]) -> tuple[str, str] | None:
        info = event.peer
        if self._closing:
            return ("shutdown", f"node {self.name!r} is shutting down")
        other = self._by_id.get(info.node_id)
        if other is not None and other.name != info.name and other.conn is not None:
            return (
                "collision",
                f"node names {info.name!r} and {other.name!r} hash to the same node id "
                f"{info.node_id}; rename one of them",
            )
        peer = self._peer(info.name)
        if peer.accepting:
            return (REFUSE_DUPLICATE, "a handshake with this node is already in progress")
        if peer.conn is not None and peer.incarnation == info.incarnation:
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
        self, peer: _Peer, stream: trio.abc.Stream, machine: Handshake, info: PeerInfo
    ) -> None:
        peer.accepting = False
        old = peer.conn
        if old is not None:
            # The peer restarted (new incarnation) before we noticed it was gone.
            self._lost(peer, old, CLOSED)
            old.abort(CLOSED)
        conn = Connection(
            stream,
            peer=peer.name,
            on_frame=self._dispatcher(peer),
            tick_timeout=self.tick_timeout,
            max_frame_size=self.max_frame_size,
            initial=machine.trailing_data(),
            outgoing=peer.pending,
        )
        peer.pending = deque()
        peer.conn = conn
        peer.incarnation = info.incarnation
        self._by_id[peer.node_id] = peer
        if peer.attempt is not None:
            peer.attempt.finish()
            peer.attempt = None
        peer.up.set()
        log.info("connected to node %r", peer.name)
        if self.services is not None:
            self.services.peer_up(peer.name)
        for watcher in self._node_watchers:
            self.system.deliver(watcher, NodeUp(peer.name))
        reason = CLOSED
        try:
            reason = await conn.run()
        finally:
            self._lost(peer, conn, conn.reason or reason)

    def _lost(self, peer: _Peer, conn: Connection, reason: str) -> None:
        if peer.conn is not conn:
            return
        peer.conn = None
        peer.up = trio.Event()
        if self._closing:
            if not any(q.conn is not None for q in self._peers.values()):
                self._all_closed.set()
            return
        log.info("connection to node %r closed: %s", peer.name, reason)
        self.system.node_down(peer.node_id, NOCONNECTION)
        self._notify_watchers(peer, reason)
        for watcher in self._node_watchers:
            self.system.deliver(watcher, NodeDown(peer.name, reason))
        for wait in self._spawns.values():
            if wait.node == peer.name and not wait.done.is_set():
                wait.error = f"node {peer.name!r} went down ({reason}) before answering"
                wait.done.set()
        if self.services is not None:
            self.services.peer_down(peer.name)

    def _notify_watchers(self, peer: _Peer, reason: str) -> None:
        watchers, peer.watchers = peer.watchers, []
        for watcher in watchers:
            self.system.deliver(watcher, NodeDown(peer.name, reason))

    # ------------------------------------------------------------------ inbound records

    def _dispatcher(self, peer: _Peer) -> Callable[[bytes], None]:
        codec_decode = self.codec.decode
        from_value = p.RECORDS.from_value
        send_code = p.RECORDS.code_of(p.Send)
        named_code = p.RECORDS.code_of(p.SendNamed)
        system = self.system
        peer_id = peer.node_id

        def own(pid: Pid) -> Pid:
            # A peer speaks only for its own actors.
            if pid.node != peer_id:
                raise ProtocolError(f"node {peer.name!r} sent a signal on behalf of {pid}")
            return pid

        def on_frame(body: bytes) -> None:
            value = codec_decode(body)
            # Fast path for plain messages: no record object, same checks.
            if type(value) is list and len(value) == 3:
                code = value[0]
                if code == send_code and type(value[1]) is Pid:
                    system.deliver(value[1], value[2])
                    return
                if code == named_code and type(value[1]) is str:
                    system.deliver_named(value[1], value[2])
                    return
            rec = from_value(value)
            kind = type(rec)
            if kind is p.Link:
                system.remote_link(rec.target, own(rec.sender))
            elif kind is p.Unlink:
                system.remote_unlink(rec.target, own(rec.sender))
            elif kind is p.ExitSignal:
                system.remote_exit(own(rec.sender), rec.target, rec.reason, link=rec.link)
            elif kind is p.Monitor:
                system.remote_monitor(own(rec.watcher), rec.ref, rec.target)
            elif kind is p.Demonitor:
                system.remote_demonitor(rec.ref)
            elif kind is p.DownSignal:
                target = rec.target
                if isinstance(target, str):  # monitored by name: Down names (name, node)
                    target = (target, peer.name)
                system.remote_down(rec.watcher, rec.ref, target, rec.reason)
            elif kind is p.SpawnRequest:
                self._on_spawn_request(peer, rec)
            elif kind is p.SpawnReply:
                self._on_spawn_reply(peer, rec)
            elif kind is p.ClusterRecord:
                if self.services is None or not self.services.handle(peer.name, rec.record):
                    raise ProtocolError(f"unexpected cluster record {type(rec.record).__name__}")
            elif kind is p.Goodbye:
                log.info("node %r is leaving: %s", peer.name, rec.reason)
                if peer.conn is not None:
                    peer.conn.abort(DISCONNECT)
            else:  # pragma: no cover - RECORDS only yields the kinds above
                raise ProtocolError(f"unexpected record {kind.__name__}")

        return on_frame

    # ------------------------------------------------------------------ routing

    def _frame(self, record: Any) -> bytes:
        return p.RECORDS.frame(self.codec, record)

    def _signal_frame(self, record: Any, reason: Any) -> bytes:
        """Frame a signal whose reason may not be serialisable (sent as its repr)."""
        try:
            return self._frame(record)
        except NotSerializable:
            return self._frame(attrs.evolve(record, reason=repr(reason)))

    def _message_frame(self, code: int, address: Pid | str, msg: Any) -> bytes:
        body = self.codec.encode_addressed(code, address, msg)
        if len(body) > self.max_frame_size:
            # A frame over the limit would make the peer drop the whole connection.
            raise NotSerializable(
                f"message of {len(body)} bytes exceeds max_frame_size "
                f"({self.max_frame_size}); send it in parts or raise the limit on every node"
            )
        return encode_frame(body)

    def _to_peer(self, peer: _Peer, frame: bytes) -> None:
        conn = peer.conn
        if conn is not None:
            conn.send_frame(frame)
        elif not self._closing:
            peer.pending.append(frame)
            self._ensure_connecting(peer)

    def _to_node(self, node_id: int, frame: bytes) -> None:
        peer = self._by_id.get(node_id)
        if peer is not None:
            self._to_peer(peer, frame)
            return
        if self._closing or self._nursery is None:
            return
        queue = self._unresolved.get(node_id)
        if queue is None:
            queue = self._unresolved[node_id] = deque()
            self._nursery.start_soon(self._resolve, node_id)
        queue.append(frame)

    async def _resolve(self, node_id: int) -> None:
        """Find the name of node `node_id` (a pid of a node we never met)."""
        names: list[str] = []
        if self.discovery is not None:
            try:
                with trio.move_on_after(self.connect_timeout):
                    names = await self.discovery.list_names()
            except (EpmdError, OSError) as exc:
                log.debug("cannot list nodes to resolve node id %d: %s", node_id, exc)
        self.learn_names(names)
        queue = self._unresolved.pop(node_id, deque())
        peer = self._by_id.get(node_id)
        if peer is None:
            log.debug("dropping %d frames for unknown node id %d", len(queue), node_id)
            self.system.node_down(node_id, NOCONNECTION)
            return
        for frame in queue:
            self._to_peer(peer, frame)

    # Router protocol ------------------------------------------------------

    def send(self, to: Pid, msg: Any) -> None:
        """Router: `msg` for the remote pid `to` (`NotSerializable` if it can't go)."""
        if type(msg) is Down:
            frame = self._signal_frame(p.DownSignal(to, msg.ref, msg.pid, msg.reason), msg.reason)
        else:
            frame = self._message_frame(_SEND, to, msg)
        peer = self._by_id.get(to.node)
        if peer is not None and peer.conn is not None:
            peer.conn.send_frame(frame)
        else:
            self._to_node(to.node, frame)

    def send_named(self, to: RemoteName, msg: Any) -> None:
        """Router: `msg` for the actor registered as `to[0]` on node `to[1]`."""
        name, node = to
        frame = self._message_frame(_SEND_NAMED, name, msg)
        peer = self._peers.get(node) or self._peer(node)
        if peer.conn is not None:
            peer.conn.send_frame(frame)
        else:
            self._to_peer(peer, frame)

    def link(self, local: Pid, remote: Pid) -> None:
        """Router: the remote half of a link."""
        self._to_node(remote.node, self._frame(p.Link(local, remote)))

    def unlink(self, local: Pid, remote: Pid) -> None:
        """Router: remove the remote half of a link."""
        self._to_node(remote.node, self._frame(p.Unlink(local, remote)))

    def exit(self, sender: Pid, remote: Pid, reason: Any, *, link: bool) -> None:
        """Router: an exit signal for a remote pid."""
        frame = self._signal_frame(p.ExitSignal(sender, remote, reason, link), reason)
        self._to_node(remote.node, frame)

    def monitor(self, watcher: Pid, ref: Ref, target: Pid | RemoteName) -> None:
        """Router: monitor a remote pid or `(name, node)`."""
        if isinstance(target, Pid):
            self._to_node(target.node, self._frame(p.Monitor(watcher, ref, target)))
        else:
            name, node = target
            self._to_peer(self._peer(node), self._frame(p.Monitor(watcher, ref, name)))

    def demonitor(self, watcher: Pid, ref: Ref, target: Pid | RemoteName) -> None:
        """Router: cancel a remote monitor."""
        if isinstance(target, Pid):
            self._to_node(target.node, self._frame(p.Demonitor(watcher, ref, target)))
        else:
            name, node = target
            peer = self._peers.get(node)
            if peer is not None:
                self._to_peer(peer, self._frame(p.Demonitor(watcher, ref, name)))

    def monitor_node(self, watcher: Pid, node_name: str) -> None:
        """Router: `NodeDown(node_name, reason)` to `watcher` when that node goes."""
        if node_name == self.name:
            return
        peer = self._peer(node_name)
        peer.watchers.append(watcher)
        if peer.conn is None:
            if self._closing:
                self._notify_watchers(peer, NOCONNECTION)
            else:
                self._ensure_connecting(peer)

    def demonitor_node(self, watcher: Pid, node_name: str) -> None:
        """Router: cancel one `monitor_node`."""
        peer = self._peers.get(node_name)
        if peer is not None and watcher in peer.watchers:
            peer.watchers.remove(watcher)

    def is_self(self, node_name: str) -> bool:
        """Router: True when `node_name` is this node."""
        return node_name == self.name

    def whereis_global(self, name: str) -> Pid | None:
        """Router: the pid registered cluster-wide as `name` (local replica)."""
        services = self.services
        return None if services is None else services.globals.whereis_global(name)

    async def spawn_remote(
        self,
        node: str,
        name: str,
        args: tuple[Any, ...],
        link_to: Pid,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - a budget for the remote side
    ) -> Pid:
        """Router: `spawn_on` linked to `link_to`, for supervisors.

        `node` may be ``"name@host:port"``. Raises `ConnectionFailed` when
        the node cannot be reached or goes down before answering, else
        `SpawnFailed` (see `trioactors.runtime.router.Router.spawn_remote`).
        """
        target, _ = parse_node_address(node)
        await self.connect(node)
        try:
            return await self.spawn_on(target, name, *args, link_to=link_to, timeout=timeout)
        except SpawnFailed as exc:
            if target != self.name and target not in self.nodes():
                raise ConnectionFailed(str(exc)) from exc
            raise

    # ------------------------------------------------------------------ node watchers

    def monitor_nodes(self, pid: Pid) -> None:
        """Deliver `NodeUp`/`NodeDown` for every peer to local `pid`."""
        self._node_watchers.add(pid)

    def demonitor_nodes(self, pid: Pid) -> None:
        """Stop `monitor_nodes` for `pid`."""
        self._node_watchers.discard(pid)

    # ------------------------------------------------------------------ cluster services

    # ClusterTransport protocol (trioactors.cluster.services)

    @property
    def local_node(self) -> str:
        """ClusterTransport: this node's name."""
        return self.name

    def connected_nodes(self) -> list[str]:
        """ClusterTransport: the peers with an established connection."""
        return self.nodes()

    def send_to(self, node: str, record: object) -> None:
        """ClusterTransport: queue a cluster record for connected `node` (else dropped)."""
        peer = self._peers.get(node)
        if peer is not None and peer.conn is not None:
            peer.conn.send_frame(self._frame(p.ClusterRecord(record)))

    def broadcast(self, record: object) -> None:
        """ClusterTransport: `send_to` every connected node (encoded once)."""
        frame = b""
        for peer in self._peers.values():
            if peer.conn is not None:
                frame = frame or self._frame(p.ClusterRecord(record))
                peer.conn.send_frame(frame)

    # ------------------------------------------------------------------ remote spawn

    def register_spawnable(self, name: str, fn: Callable[..., Any]) -> None:
        """Let peers start `fn` (an actor function or a GenServer class) as `name`."""
        if not callable(fn):
            raise TypeError(f"spawnable {name!r} must be an actor function or a GenServer class")
        self._spawnables[name] = fn

    def spawnables(self) -> list[str]:
        """Names peers may start here."""
        return sorted(self._spawnables)

    async def spawn_on(
        self,
        node: str,
        name: str,
        *args: Any,
        link_to: Pid | None = None,
        timeout: float | None = 30.0,  # noqa: ASYNC109 - a budget for the remote side
    ) -> Pid:
        """Start the spawnable `name` on `node`; see `Node.spawn_on`."""
        if link_to is not None and not link_to.is_local():
            raise ValueError("link_to must be a pid of this node")
        if node == self.name:
            return await self._spawn_local(name, list(args), link_to, None)
        try:
            await self.connect(node)
        except ConnectionFailed as exc:
            raise SpawnFailed(f"cannot spawn {name!r} on node {node!r}: {exc}") from exc
        ref = Ref(0, self._refs.next(), self.incarnation)
        frame = self._frame(p.SpawnRequest(ref, name, list(args), link_to))
        wait = self._spawns[ref] = _SpawnWait(node, link_to)
        try:
            self._to_peer(self._peer(node), frame)
            if timeout is None:
                await wait.done.wait()
            else:
                with trio.move_on_after(timeout):
                    await wait.done.wait()
        finally:
            del self._spawns[ref]
        if not wait.done.is_set():
            raise SpawnFailed(f"node {node!r} did not answer the spawn of {name!r} in {timeout} s")
        if wait.pid is None:
            raise SpawnFailed(wait.error)
        return wait.pid

    def _spawn_error(self, name: str) -> str:
        return (
            f"node {self.name!r} has no spawnable named {name!r}; register it there with "
            f"node.register_spawnable({name!r}, fn) (known: {', '.join(self.spawnables()) or '-'})"
        )

    async def _spawn_local(
        self, name: str, args: list[Any], link_to: Pid | None, peer: _Peer | None
    ) -> Pid:
        from ..otp.gen_server import GenServer

        fn = self._spawnables.get(name)
        if fn is None:
            raise SpawnFailed(self._spawn_error(name))
        if self._closing or self.system._closing:
            # An actor started now would be cut down with the node at once.
            raise SpawnFailed(f"node {self.name!r} is shutting down; it starts no {name!r}")
        try:
            if isinstance(fn, type) and issubclass(fn, GenServer):
                pid = await self._start_server(fn, tuple(args), link_to)
                if not self.system.is_alive(pid):
                    # It ended between init and now: a link made now would only
                    # say noproc, so the spawner learns it as a failed start.
                    raise SpawnFailed(f"spawnable {name!r} ended right after its init")
            else:
                ctx = self.system._spawn(cast("ActorFn", fn), tuple(args))
                ctx._parent = link_to
                pid = ctx.pid
        except SpawnFailed:
            raise
        except StartFailed as exc:
            raise SpawnFailed(f"spawnable {name!r} failed to start: {exc}") from exc
        except Exception as exc:
            # Whatever a spawn request trips over, the requester hears why and
            # this node carries on.
            raise SpawnFailed(f"spawnable {name!r} could not be started: {exc!r}") from exc
        # No checkpoint from here until the reply is queued: the link exists
        # before the new actor can end, and its signals follow the reply.
        if link_to is not None:
            if peer is None:
                # The same node: a plain local link made on the new actor's behalf.
                self.system.remote_link(pid, link_to)
                self.system.remote_link(link_to, pid)
            else:
                self.system.remote_link(pid, link_to)
        return pid

    async def _start_server(
        self, cls: type[GenServer], args: tuple[Any, ...], parent: Pid | None
    ) -> Pid:
        """`system.start_server` with the spawner as the server's parent, so a
        server trapping exits ends through `terminate` when its (remote)
        supervisor tells it to, as an OTP gen_server does."""
        from ..otp.gen_server import _serve
        from ..runtime.system import _Started

        started = _Started()
        ctx = self.system._spawn(_serve, (cls, args), started=started)
        ctx._parent = parent  # read by _serve once init has returned
        await started.event.wait()
        if started.failed:
            raise StartFailed(started.reason)
        return ctx.pid

    def _on_spawn_request(self, peer: _Peer, rec: p.SpawnRequest) -> None:
        if rec.link_to is not None and rec.link_to.node != peer.node_id:
            raise ProtocolError(f"node {peer.name!r} asked to link a spawn to {rec.link_to}")
        assert self._nursery is not None
        self._nursery.start_soon(self._serve_spawn, peer, rec)

    async def _serve_spawn(self, peer: _Peer, rec: p.SpawnRequest) -> None:
        conn = peer.conn
        try:
            pid: Pid | None = await self._spawn_local(rec.name, rec.args, rec.link_to, peer)
            error = ""
        except SpawnFailed as exc:
            pid, error = None, str(exc)
            log.info("spawn request from node %r refused: %s", peer.name, error)
        if pid is not None and rec.link_to is not None and peer.conn is not conn:
            # The requester's connection was lost while the actor started: its
            # node_down has passed, so the new link fires here, as it would have.
            self.system.remote_exit(rec.link_to, pid, NOCONNECTION, link=True)
        if peer.conn is not None:
            peer.conn.send_frame(self._frame(p.SpawnReply(rec.ref, pid, error)))

    def _on_spawn_reply(self, peer: _Peer, rec: p.SpawnReply) -> None:
        wait = self._spawns.get(rec.ref)
        if wait is None or wait.node != peer.name or wait.done.is_set():
            return  # the spawner gave up (timeout); the new actor lives on, like Erlang
        if rec.pid is not None:
            own_pid = rec.pid
            if own_pid.node != peer.node_id:
                raise ProtocolError(f"node {peer.name!r} answered a spawn with {own_pid}")
            wait.pid = own_pid
            if wait.link_to is not None:
                # Before any later signal of the new actor is dispatched.
                self.system.remote_link(wait.link_to, own_pid)
        else:
            wait.error = rec.error or f"node {peer.name!r} refused the spawn"
        wait.done.set()


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
