"""Outbound: signals for other nodes' pids become records on their connections.

`Routing` is the `trioactors.runtime.router.Router` a node installs into its
actor system, and the `ClusterTransport` of its cluster services. A pid names
its node, so routing is a lookup by name; a node not connected yet is
connected on first use (its frames wait in the peer's pending queue), and one
that cannot be reached turns links and monitors into `noconnection`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

import attrs

from ..errors import NotSerializable
from ..runtime.router import RemoteName
from ..wire import records as p
from ..wire.framing import encode_frame
from ..wire.terms import Pid, Ref

if TYPE_CHECKING:
    from .erlang_peer import ErlangPeers
    from .kernel import NetKernel
    from .peers import Peer
    from .spawn import RemoteSpawn

__all__ = ["Routing"]

log = logging.getLogger("trioactors.cluster")

_SEND: Final = p.RECORDS.code_of(p.Send)
_SEND_NAMED: Final = p.RECORDS.code_of(p.SendNamed)
_CALL_REPLY: Final = p.RECORDS.code_of(p.CallReply)
_TRIOACTORS: Final = "trioactors"


def _node_of(target: Pid | RemoteName) -> str:
    return target.node if isinstance(target, Pid) else target[1]


class Routing:
    """The router of one node (see the module docstring)."""

    def __init__(self, kernel: NetKernel, spawner: RemoteSpawn) -> None:
        self.kernel = kernel
        self.spawner = spawner
        self._codec = kernel.codec
        self._peers = kernel.peers
        self._name = kernel.name
        self._max_frame = kernel.max_frame_size

    # -- Erlang peers

    def _erlang_peer(self, node: str) -> Peer | None:
        """The peer when `node` speaks, or may speak, Erlang's protocol."""
        if self.kernel.erlang is None or "@" not in node or node == self._name:
            return None
        peer = self._peers.ensure(node)
        return None if peer.kind == "trioactors" else peer

    def _via_erlang(self, peer: Peer, again: Callable[[], None]) -> ErlangPeers | None:
        """The Erlang side if `peer` is an Erlang node; None if that is not
        known yet (`again` is run once it is)."""
        erlang = self.kernel.erlang
        assert erlang is not None
        if peer.kind == "erlang":
            return erlang
        if not self.kernel.closing:
            # Not known yet: EPMD or the handshake will say; `again` then
            # routes it by the protocol found.
            peer.deferred.append(again)
            self.kernel.connect_soon(peer.name)
        return None

    # -- frames

    def frame(self, record: Any) -> bytes:
        """The frame of node record `record`."""
        return p.RECORDS.frame(self._codec, record)

    def _signal_frame(self, record: Any, reason: Any) -> bytes:
        """Frame a signal whose reason may not be serialisable (sent as its repr)."""
        try:
            return self.frame(record)
        except NotSerializable:
            return self.frame(attrs.evolve(record, reason=repr(reason)))

    def _to_node(self, node: str, frame: bytes) -> None:
        if node == self._name:
            log.debug("dropping a signal for an earlier incarnation of this node")
            return
        self.kernel.to_peer(self._peers.ensure(node), frame)

    # -- Router: messages

    def send(self, to: Pid, msg: Any) -> None:
        """Router: `msg` for the remote pid `to` (`NotSerializable` if it can't go)."""
        peer = self._peers.get(to.node)
        if peer is not None and peer.conn is not None and peer.kind == _TRIOACTORS:
            # The common case first: a connected trioactors peer.
            peer.conn.send_frame(self._codec.frame_addressed(_SEND, to, msg, self._max_frame))
            return
        if (peer := self._erlang_peer(to.node)) is not None:
            if (erlang := self._via_erlang(peer, lambda: self.send(to, msg))) is not None:
                erlang.send(peer, to, msg)
            return
        frame = self._codec.frame_addressed(_SEND, to, msg, self._max_frame)
        peer = self._peers.get(to.node)
        if peer is not None and peer.conn is not None:
            peer.conn.send_frame(frame)
        else:
            self._to_node(to.node, frame)

    def send_named(self, to: RemoteName, msg: Any) -> None:
        """Router: `msg` for the actor registered as `to[0]` on node `to[1]`."""
        peer = self._peers.get(to[1])
        if peer is not None and peer.conn is not None and peer.kind == _TRIOACTORS:
            peer.conn.send_frame(
                self._codec.frame_addressed(_SEND_NAMED, to[0], msg, self._max_frame)
            )
            return
        if (peer := self._erlang_peer(to[1])) is not None:
            if (erlang := self._via_erlang(peer, lambda: self.send_named(to, msg))) is not None:
                erlang.send_named(peer, to[0], msg)
            return
        name, node = to
        frame = self._codec.frame_addressed(_SEND_NAMED, name, msg, self._max_frame)
        peer = self._peers.get(node)
        if peer is not None and peer.conn is not None:
            peer.conn.send_frame(frame)
        else:
            self._to_node(node, frame)

    def reply(self, to: Pid, ref: Ref, value: Any) -> None:
        """Router: the reply to call `ref` of the remote caller `to` (its alias)."""
        if (peer := self._erlang_peer(to.node)) is not None:
            if (erlang := self._via_erlang(peer, lambda: self.reply(to, ref, value))) is not None:
                erlang.reply(peer, to, ref, value)
            return
        body = self._codec.encode([_CALL_REPLY, to, ref, value])
        limit = self.kernel.max_frame_size
        if len(body) > limit:
            raise NotSerializable(
                f"reply of {len(body)} bytes exceeds max_frame_size "
                f"({limit}); reply with less or raise the limit on every node"
            )
        frame = encode_frame(body)
        peer = self._peers.get(to.node)
        if peer is not None and peer.conn is not None:
            peer.conn.send_frame(frame)
        else:
            self._to_node(to.node, frame)

    # -- Router: signals

    def link(self, local: Pid, remote: Pid) -> None:
        """Router: the remote half of a link."""
        if (peer := self._erlang_peer(remote.node)) is not None:
            if (erlang := self._via_erlang(peer, lambda: self.link(local, remote))) is not None:
                erlang.link(peer, local, remote)
            return
        self._to_node(remote.node, self.frame(p.Link(local, remote)))

    def unlink(self, local: Pid, remote: Pid) -> None:
        """Router: remove the remote half of a link."""
        if (peer := self._erlang_peer(remote.node)) is not None:
            if (erlang := self._via_erlang(peer, lambda: self.unlink(local, remote))) is not None:
                erlang.unlink(peer, local, remote)
            return
        self._to_node(remote.node, self.frame(p.Unlink(local, remote)))

    def exit(self, sender: Pid, remote: Pid, reason: Any, *, link: bool) -> None:
        """Router: an exit signal for a remote pid."""
        if (peer := self._erlang_peer(remote.node)) is not None:
            if (
                erlang := self._via_erlang(
                    peer, lambda: self.exit(sender, remote, reason, link=link)
                )
            ) is not None:
                erlang.exit(peer, sender, remote, reason, link=link)
            return
        frame = self._signal_frame(p.ExitSignal(sender, remote, reason, link), reason)
        self._to_node(remote.node, frame)

    def down(self, watcher: Pid, ref: Ref, target: Pid | RemoteName, reason: Any) -> None:
        """Router: a monitored local actor ended; tell the remote watcher."""
        if (peer := self._erlang_peer(watcher.node)) is not None:
            if (
                erlang := self._via_erlang(peer, lambda: self.down(watcher, ref, target, reason))
            ) is not None:
                erlang.down(peer, watcher, ref, target, reason)
            return
        frame = self._signal_frame(p.DownSignal(watcher, ref, target, reason), reason)
        self._to_node(watcher.node, frame)

    def monitor(self, watcher: Pid, ref: Ref, target: Pid | RemoteName) -> None:
        """Router: monitor a remote pid or `(name, node)`."""
        if (peer := self._erlang_peer(_node_of(target))) is not None:
            if (
                erlang := self._via_erlang(peer, lambda: self.monitor(watcher, ref, target))
            ) is not None:
                erlang.monitor(peer, watcher, ref, target)
            return
        if isinstance(target, Pid):
            self._to_node(target.node, self.frame(p.Monitor(watcher, ref, target)))
        else:
            name, node = target
            self._to_node(node, self.frame(p.Monitor(watcher, ref, name)))

    def demonitor(self, watcher: Pid, ref: Ref, target: Pid | RemoteName) -> None:
        """Router: cancel a remote monitor."""
        if (peer := self._erlang_peer(_node_of(target))) is not None:
            if (
                erlang := self._via_erlang(peer, lambda: self.demonitor(watcher, ref, target))
            ) is not None:
                erlang.demonitor(peer, watcher, ref, target)
            return
        if isinstance(target, Pid):
            node: str = target.node
            what: Pid | str = target
        else:
            what, node = target
        peer = self._peers.get(node)
        if peer is not None:
            self.kernel.to_peer(peer, self.frame(p.Demonitor(watcher, ref, what)))

    def monitor_node(self, watcher: Pid, node_name: str) -> None:
        """Router: `NodeDown(node_name, reason)` to `watcher` when that node goes."""
        self.kernel.monitor_node(watcher, node_name)

    def demonitor_node(self, watcher: Pid, node_name: str) -> None:
        """Router: cancel one `monitor_node`."""
        self.kernel.demonitor_node(watcher, node_name)

    def is_self(self, node_name: str) -> bool:
        """Router: True when `node_name` is this node."""
        return node_name == self._name

    def whereis_global(self, name: str) -> Pid | None:
        """Router: the pid registered cluster-wide as `name` (local replica)."""
        services = self.kernel.services
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
        """Router: start a spawnable on `node` linked to `link_to` (supervisors);
        see `trioactors.runtime.router.Router.spawn_remote`."""
        return await self.spawner.spawn_remote(node, name, args, link_to, timeout=timeout)

    # -- ClusterTransport (trioactors.cluster.services)

    @property
    def local_node(self) -> str:
        """ClusterTransport: this node's name."""
        return self._name

    def connected_nodes(self) -> list[str]:
        """ClusterTransport: the trioactors peers with an established connection
        (Erlang nodes take no part in the cluster services)."""
        return [n for n in self._peers.connected() if self._peers.ensure(n).kind != "erlang"]

    def send_to(self, node: str, record: object) -> None:
        """ClusterTransport: queue a cluster record for connected `node` (else dropped)."""
        peer = self._peers.get(node)
        if peer is not None and peer.conn is not None and peer.kind != "erlang":
            peer.conn.send_frame(self.frame(p.ClusterRecord(record)))

    def broadcast(self, record: object) -> None:
        """ClusterTransport: `send_to` every connected node (encoded once)."""
        frame = b""
        for peer in self._peers:
            if peer.conn is not None and peer.kind != "erlang":
                frame = frame or self.frame(p.ClusterRecord(record))
                peer.conn.send_frame(frame)


if TYPE_CHECKING:
    from ..runtime.router import Router
    from .services import ClusterTransport

    def _implements(routing: Routing) -> tuple[Router, ClusterTransport]:
        # mypy proves here that Routing satisfies both protocols.
        return routing, routing
