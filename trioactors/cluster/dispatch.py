"""Inbound: the records a trioactors peer sends become calls of the local system.

A dispatcher runs in the connection's reader and only ever does
non-blocking local deliveries. A peer speaks only for its own actors: a
signal on behalf of another node's pid is a protocol error that closes
that connection (and nothing else).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..errors import ProtocolError
from ..wire import records as p
from ..wire.terms import Pid
from .connection import CLOSED

if TYPE_CHECKING:
    from .kernel import NetKernel
    from .peers import Peer

__all__ = ["cbor_dispatcher"]

log = logging.getLogger("trioactors.cluster")


def cbor_dispatcher(kernel: NetKernel, peer: Peer) -> Callable[[bytes], None]:
    """The `on_frame` of a connection to trioactors node `peer`."""
    codec_decode = kernel.codec.decode
    from_value = p.RECORDS.from_value
    send_code = p.RECORDS.code_of(p.Send)
    named_code = p.RECORDS.code_of(p.SendNamed)
    system = kernel.system
    peer_name = peer.name

    def own(pid: Pid) -> Pid:
        if pid.node != peer_name:
            raise ProtocolError(f"node {peer_name!r} sent a signal on behalf of {pid}")
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
        if kind is p.CallReply:
            system.deliver_reply(rec.to, rec.ref, rec.value)
        elif kind is p.Link:
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
            if isinstance(target, Pid):
                own(target)
            elif not (
                type(target) is tuple
                and len(target) == 2
                and type(target[0]) is str
                and target[1] == peer_name
            ):
                raise ProtocolError(f"node {peer_name!r} reported the end of {target!r}")
            system.remote_down(rec.watcher, rec.ref, target, rec.reason)
        elif kind is p.SpawnRequest:
            if kernel.spawner is None:
                raise ProtocolError("spawn request to a node that serves none")
            kernel.spawner.on_request(peer, rec)
        elif kind is p.SpawnReply:
            if kernel.spawner is not None:
                kernel.spawner.on_reply(peer, rec)
        elif kind is p.ClusterRecord:
            if kernel.services is None or not kernel.services.handle(peer_name, rec.record):
                raise ProtocolError(f"unexpected cluster record {type(rec.record).__name__}")
        elif kind is p.Goodbye:
            log.info("node %r is leaving: %s", peer_name, rec.reason)
            if peer.conn is not None:
                # Erlang's nodedown_reason on the passive side of a closed
                # connection (the peer stopped or ran disconnect_node) is
                # connection_closed; only the closing side says disconnect.
                peer.conn.abort(CLOSED)
        else:  # pragma: no cover - RECORDS only yields the kinds above
            raise ProtocolError(f"unexpected record {kind.__name__}")

    return on_frame
