"""An in-memory cluster for testing the cluster services without sockets.

Each `FakeNode` is a real `ActorSystem` with its own node name, plus a
`ClusterServices`. Records and messages between nodes go through each side's
`MessageCodec` (encoded by the sender's, decoded by the receiver's), exactly
as over a real connection, so every record must really be serialisable.
Each direction of each link is an ordered queue pumped by its own task, with
random yields in between so that records of different senders interleave
differently from run to run. Links
can be cut and restored (a partition and its healing) and nodes stopped.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio
import trio.testing

from trioactors.cluster.globals import Resolver
from trioactors.cluster.services import ClusterServices
from trioactors.errors import SpawnFailed
from trioactors.otp.system import ActorSystem, open_actor_system
from trioactors.wire.cbor import MessageCodec
from trioactors.wire.terms import Pid, Ref


class FakeTransport:
    """`ClusterTransport` of one fake node."""

    def __init__(self, net: FakeNet, name: str) -> None:
        self._net = net
        self._name = name

    @property
    def local_node(self) -> str:
        return self._name

    def connected_nodes(self) -> list[str]:
        return self._net.peers_of(self._name)

    def send_to(self, node: str, record: object) -> None:
        self._net.post(self._name, node, ("record", record))

    def broadcast(self, record: object) -> None:
        for node in self.connected_nodes():
            self.send_to(node, record)


class NetRouter:
    """A fake node's Router: carries actor messages to the pids of other fake
    nodes (sends only; links and monitors stay local, remote spawn fails).
    For two systems joined signal for signal, see `helpers.FakeRouter`."""

    def __init__(self, net: FakeNet, name: str) -> None:
        self._net = net
        self._name = name

    def send(self, to: Pid, msg: Any) -> None:
        if to.node in self._net.nodes:
            self._net.post(self._name, to.node, ("send", (to, msg)))

    def send_named(self, to: tuple[str, str], msg: Any) -> None:
        self._net.post(self._name, to[1], ("send_named", (to[0], msg)))

    def reply(self, to: Pid, ref: Ref, value: Any) -> None:
        if to.node in self._net.nodes:
            self._net.post(self._name, to.node, ("reply", (to, ref, value)))

    def link(self, local: Pid, remote: Pid) -> None:
        pass

    def unlink(self, local: Pid, remote: Pid) -> None:
        pass

    def exit(self, sender: Pid, remote: Pid, reason: Any, *, link: bool) -> None:
        pass

    def down(self, watcher: Pid, ref: Ref, target: Pid | tuple[str, str], reason: Any) -> None:
        pass

    def monitor(self, watcher: Pid, ref: Ref, target: Pid | tuple[str, str]) -> None:
        pass

    def demonitor(self, watcher: Pid, ref: Ref, target: Pid | tuple[str, str]) -> None:
        pass

    def monitor_node(self, watcher: Pid, node_name: str) -> None:
        pass

    def demonitor_node(self, watcher: Pid, node_name: str) -> None:
        pass

    def is_self(self, node_name: str) -> bool:
        return node_name == self._name

    def whereis_global(self, name: str) -> Pid | None:
        node = self._net.nodes.get(self._name)
        return None if node is None else node.services.globals.whereis_global(name)

    async def spawn_remote(
        self,
        node: str,
        name: str,
        args: tuple[Any, ...],
        link_to: Pid,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - the Router protocol's signature
    ) -> Pid:
        raise SpawnFailed(f"the fake network cannot spawn {name!r} on {node!r}")


class FakeNode:
    """One node of a `FakeNet`: an ActorSystem and its cluster services."""

    def __init__(self, net: FakeNet, name: str, resolve: Resolver | None) -> None:
        self.net = net
        self.name = name
        self.codec = MessageCodec()
        self.transport = FakeTransport(net, name)
        self._resolve = resolve
        self._stop = trio.Event()
        self._stopped = trio.Event()
        self.system: ActorSystem
        self.services: ClusterServices

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            async with open_actor_system(node_name=self.name) as system:
                self.system = system
                system.set_router(NetRouter(self.net, self.name))
                self.services = ClusterServices(system, self.transport, resolve=self._resolve)
                async with trio.open_nursery() as nursery:
                    await nursery.start(self.services.run)
                    task_status.started()
                    await self._stop.wait()
                    nursery.cancel_scope.cancel()
        finally:
            self._stopped.set()

    @property
    def globals(self) -> Any:
        return self.services.globals

    @property
    def groups(self) -> Any:
        return self.services.groups

    async def stop(self) -> None:
        """The node goes down: every link to it breaks, its system ends."""
        for peer in self.net.peers_of(self.name):
            self.net.cut(self.name, peer)
        del self.net.nodes[self.name]
        self._stop.set()
        await self._stopped.wait()


class FakeNet:
    """Fake nodes joined by ordered, cuttable in-memory links."""

    def __init__(self, nursery: trio.Nursery, seed: int) -> None:
        self._nursery = nursery
        self.rng = random.Random(seed)
        self.nodes: dict[str, FakeNode] = {}
        self._links: dict[frozenset[str], int] = {}  # up links -> epoch
        self._epochs = 0
        self._queues: dict[tuple[str, str], trio.MemorySendChannel[Any]] = {}

    async def add(self, name: str, *, resolve: Resolver | None = None) -> FakeNode:
        node = FakeNode(self, name, resolve)
        await self._nursery.start(node.run)
        self.nodes[name] = node
        return node

    def peers_of(self, name: str) -> list[str]:
        return sorted(n for link in self._links for n in link if name in link and n != name)

    def connect(self, a: str, b: str) -> None:
        """Bring the link a-b up; both nodes are told, a first."""
        link = frozenset((a, b))
        assert link not in self._links
        self._epochs += 1
        self._links[link] = self._epochs
        for src, dst in ((a, b), (b, a)):
            if (src, dst) not in self._queues:
                send, recv = trio.open_memory_channel[Any](float("inf"))
                self._queues[(src, dst)] = send
                self._nursery.start_soon(self._pump, src, dst, recv)
        self.nodes[a].services.peer_up(b)
        self.nodes[b].services.peer_up(a)

    def connect_all(self) -> None:
        names = sorted(self.nodes)
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                if frozenset((a, b)) not in self._links:
                    self.connect(a, b)

    def cut(self, a: str, b: str) -> None:
        """Break the link a-b: records in flight are lost, both sides are told."""
        del self._links[frozenset((a, b))]
        for x, y in ((a, b), (b, a)):
            node = self.nodes.get(x)
            if node is not None:
                node.services.peer_down(y)

    def partition(self, side: set[str]) -> None:
        """Cut every link between `side` and the rest."""
        for a in side:
            for b in self.peers_of(a):
                if b not in side:
                    self.cut(a, b)

    def post(self, src: str, dst: str, item: tuple[str, Any]) -> None:
        epoch = self._links.get(frozenset((src, dst)))
        if epoch is None:
            return  # like a send to a node that is gone: dropped
        kind, payload = item
        data = self.nodes[src].codec.encode(payload)
        self._queues[(src, dst)].send_nowait((epoch, kind, data))

    async def _pump(self, src: str, dst: str, recv: trio.MemoryReceiveChannel[Any]) -> None:
        async for epoch, kind, data in recv:
            for _ in range(self.rng.randrange(3)):
                await trio.lowlevel.checkpoint()
            if self._links.get(frozenset((src, dst))) != epoch:
                continue  # sent over a link that has since broken
            node = self.nodes[dst]
            payload = node.codec.decode(data)
            if kind == "record":
                handled = node.services.handle(src, payload)
                assert handled, payload
            elif kind == "send":
                node.system.deliver(*payload)
            elif kind == "reply":
                node.system.deliver_reply(*payload)
            else:
                node.system.deliver_named(*payload)

    async def settle(self) -> None:
        """Wait until every record in flight has been handled."""
        while True:
            await trio.testing.wait_all_tasks_blocked(0.01)
            if all(q.statistics().current_buffer_used == 0 for q in self._queues.values()):
                return


@asynccontextmanager
async def fake_cluster(
    names: list[str], *, seed: int = 0, connect: bool = True
) -> AsyncIterator[FakeNet]:
    """A FakeNet with a node per name (all connected unless `connect=False`)."""
    async with trio.open_nursery() as nursery:
        net = FakeNet(nursery, seed)
        for name in names:
            await net.add(name)
        if connect:
            net.connect_all()
        yield net
        for node in list(net.nodes.values()):
            await node.stop()
        nursery.cancel_scope.cancel()
