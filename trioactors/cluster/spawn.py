"""Remote spawn: start a registered spawnable on another node and get its pid.

Only names registered with `register_spawnable` can be started: no code,
module or function name received from the network is ever imported. A
request may ask for the new actor to be linked to the requester; the link is
made on the serving node before the new actor can end, and on the requesting
node before any later signal of it is dispatched.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

import attrs
import trio

from ..errors import ConnectionFailed, ProtocolError, SpawnFailed, StartFailed
from ..otp.gen_server import GenServer, _serve
from ..runtime.process import ActorFn, _Started
from ..wire import records as p
from ..wire.terms import Pid, Ref

if TYPE_CHECKING:
    from .kernel import NetKernel
    from .peers import Peer

__all__ = ["RemoteSpawn"]

log = logging.getLogger("trioactors.cluster")


@attrs.define
class _SpawnWait:
    node: str
    link_to: Pid | None
    done: trio.Event = attrs.field(factory=trio.Event)
    pid: Pid | None = None
    error: str = ""


class RemoteSpawn:
    """The spawnables of one node, and its spawn requests in flight."""

    def __init__(self, kernel: NetKernel) -> None:
        self.kernel = kernel
        self.system = kernel.system
        self._spawnables: dict[str, Callable[..., Any]] = {}
        self._waits: dict[Ref, _SpawnWait] = {}
        self._refs = itertools.count(1)

    def register(self, name: str, fn: Callable[..., Any]) -> None:
        """Let peers start `fn` (an actor function or a GenServer class) as `name`."""
        if not callable(fn):
            raise TypeError(f"spawnable {name!r} must be an actor function or a GenServer class")
        self._spawnables[name] = fn

    def names(self) -> list[str]:
        """Names peers may start here."""
        return sorted(self._spawnables)

    # -- requesting

    async def spawn_on(
        self,
        node: str,
        name: str,
        *args: Any,
        link_to: Pid | None = None,
        timeout: float | None = 30.0,  # noqa: ASYNC109 - a budget for the remote side
    ) -> Pid:
        """Start the spawnable `name` on `node`; see `Node.spawn_on`."""
        kernel = self.kernel
        if link_to is not None and not self.system.is_local(link_to):
            raise ValueError(f"link_to must be a pid of this node, not {link_to}")
        if node == kernel.name:
            return await self._spawn_local(name, list(args), link_to, None)
        try:
            node = await kernel.connect(node)
        except ConnectionFailed as exc:
            raise SpawnFailed(f"cannot spawn {name!r} on node {node!r}: {exc}") from exc
        peer = kernel.peers.get(node)
        if peer is not None and peer.kind == "erlang":
            raise SpawnFailed(
                f"cannot spawn {name!r} on node {node!r}: it is an Erlang node, which "
                "starts no trioactors spawnables; call or rpc into it instead"
            )
        ref = Ref.of(kernel.name, kernel.creation, next(self._refs))
        frame = p.RECORDS.frame(kernel.codec, p.SpawnRequest(ref, name, list(args), link_to))
        wait = self._waits[ref] = _SpawnWait(node, link_to)
        try:
            kernel.to_peer(kernel.peers.ensure(node), frame)
            if timeout is None:
                await wait.done.wait()
            else:
                with trio.move_on_after(timeout):
                    await wait.done.wait()
        finally:
            del self._waits[ref]
        if not wait.done.is_set():
            raise SpawnFailed(f"node {node!r} did not answer the spawn of {name!r} in {timeout} s")
        if wait.pid is None:
            raise SpawnFailed(wait.error)
        return wait.pid

    async def spawn_remote(
        self,
        node: str,
        name: str,
        args: tuple[Any, ...],
        link_to: Pid,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - a budget for the remote side
    ) -> Pid:
        """`spawn_on` for supervisors: `ConnectionFailed` when the node cannot
        be reached or goes down before answering, else `SpawnFailed`."""
        target = await self.kernel.connect(node)
        try:
            return await self.spawn_on(target, name, *args, link_to=link_to, timeout=timeout)
        except SpawnFailed as exc:
            if target != self.kernel.name and target not in self.kernel.nodes():
                raise ConnectionFailed(str(exc)) from exc
            raise

    def on_reply(self, peer: Peer, rec: p.SpawnReply) -> None:
        """A peer answered one of our spawn requests."""
        wait = self._waits.get(rec.ref)
        if wait is None or wait.node != peer.name or wait.done.is_set():
            return  # the spawner gave up (timeout); the new actor lives on, like Erlang
        if rec.pid is not None:
            if rec.pid.node != peer.name:
                raise ProtocolError(f"node {peer.name!r} answered a spawn with {rec.pid}")
            wait.pid = rec.pid
            if wait.link_to is not None:
                # Before any later signal of the new actor is dispatched.
                self.system.remote_link(wait.link_to, rec.pid)
        else:
            wait.error = rec.error or f"node {peer.name!r} refused the spawn"
        wait.done.set()

    def node_lost(self, node: str, reason: str) -> None:
        """The connection to `node` is gone: its spawns in flight fail."""
        for wait in self._waits.values():
            if wait.node == node and not wait.done.is_set():
                wait.error = f"node {node!r} went down ({reason}) before answering"
                wait.done.set()

    # -- serving

    def on_request(self, peer: Peer, rec: p.SpawnRequest) -> None:
        """A peer asks this node to start a spawnable."""
        if rec.link_to is not None and rec.link_to.node != peer.name:
            raise ProtocolError(f"node {peer.name!r} asked to link a spawn to {rec.link_to}")
        self.kernel.start_soon(self._serve, peer, rec)

    async def _serve(self, peer: Peer, rec: p.SpawnRequest) -> None:
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
            self.system.remote_exit(rec.link_to, pid, "noconnection", link=True)
        if peer.conn is not None:
            peer.conn.send_frame(
                p.RECORDS.frame(self.kernel.codec, p.SpawnReply(rec.ref, pid, error))
            )

    def _spawn_error(self, name: str) -> str:
        return (
            f"node {self.kernel.name!r} has no spawnable named {name!r}; register it there with "
            f"node.register_spawnable({name!r}, fn) (known: {', '.join(self.names()) or '-'})"
        )

    async def _spawn_local(
        self, name: str, args: list[Any], link_to: Pid | None, peer: Peer | None
    ) -> Pid:
        fn = self._spawnables.get(name)
        if fn is None:
            raise SpawnFailed(self._spawn_error(name))
        if self.kernel.closing or self.system._closing:
            # An actor started now would be cut down with the node at once.
            raise SpawnFailed(f"node {self.kernel.name!r} is shutting down; it starts no {name!r}")
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
        started = _Started()
        ctx = self.system._spawn(_serve, (cls, args), started=started)
        ctx._parent = parent  # read by _serve once init has returned
        await started.event.wait()
        if started.failed:
            raise StartFailed(started.reason)
        return ctx.pid
