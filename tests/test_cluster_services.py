"""Global names and process groups between real nodes over loopback sockets."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.lowlevel
from helpers import node_process, wait_until

import trioactors as ta

COOKIE = "cluster-services-test"
ROOT = Path(__file__).resolve().parent.parent


async def echo(ctx: Any) -> None:
    """Answers `("ping", from)` with `("pong", its pid)`; ends on "stop"."""
    while True:
        msg = await ctx.receive()
        if msg == "stop":
            return
        if isinstance(msg, tuple) and msg[0] == "ping":
            ctx.send(msg[1], ("pong", ctx.pid))


class Cluster:
    """Nodes running in one trio program, each stoppable on its own."""

    def __init__(self, nursery: trio.Nursery) -> None:
        self._nursery = nursery
        self.nodes: dict[str, ta.Node] = {}
        self._stops: dict[str, tuple[trio.Event, trio.Event]] = {}

    async def start(self, name: str) -> ta.Node:
        stop, done = trio.Event(), trio.Event()

        async def run(*, task_status: trio.TaskStatus[ta.Node]) -> None:
            try:
                async with ta.open_node(name, epmd=None, cookie=COOKIE) as node:
                    task_status.started(node)
                    await stop.wait()
            finally:
                done.set()

        node: ta.Node = await self._nursery.start(run)
        self.nodes[name] = node
        self._stops[name] = (stop, done)
        return node

    async def connect(self, a: str, b: str) -> None:
        host, port = self.nodes[b].address
        await self.nodes[a].connect(f"{b}@{host}:{port}")
        await wait_until(lambda: a in self.nodes[b].nodes())

    async def connect_all(self) -> None:
        names = sorted(self.nodes)
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                await self.connect(a, b)

    async def stop(self, name: str) -> None:
        stop, done = self._stops.pop(name)
        del self.nodes[name]
        stop.set()
        await done.wait()


@asynccontextmanager
async def cluster(*names: str) -> AsyncIterator[Cluster]:
    async with trio.open_nursery() as nursery:
        c = Cluster(nursery)
        for name in names:
            await c.start(name)
        await c.connect_all()
        yield c
        for name in list(c.nodes):
            await c.stop(name)


async def test_global_names_across_three_nodes() -> None:
    async with cluster("alpha", "beta", "gamma") as c:
        alpha, beta, gamma = c.nodes["alpha"], c.nodes["beta"], c.nodes["gamma"]
        pid = alpha.spawn(echo)
        assert await alpha.register_global("svc", pid) is True
        await wait_until(lambda: gamma.whereis_global("svc") is not None)
        remote = gamma.whereis_global("svc")
        assert remote == pid
        async with gamma.actor() as me:
            me.send(("global", "svc"), ("ping", me.pid))
            assert await me.receive(timeout=5) == ("pong", remote)
        assert await beta.register_global("svc", beta.spawn(echo)) is False

        # Beta and gamma race for one name: exactly one wins, everyone agrees.
        pb, pg = beta.spawn(echo), gamma.spawn(echo)
        results: dict[str, bool] = {}

        async def claim(node: ta.Node, p: ta.Pid) -> None:
            results[node.name] = await node.register_global("race", p)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(claim, beta, pb)
            nursery.start_soon(claim, gamma, pg)
        assert sorted(results.values()) == [False, True], results
        winner = c.nodes["beta" if results["beta"] else "gamma"]
        await wait_until(
            lambda: (
                all(
                    n.node_of(p) == winner.name
                    for n in c.nodes.values()
                    if (p := n.whereis_global("race")) is not None
                )
                and all(n.whereis_global("race") is not None for n in c.nodes.values())
            )
        )

        # The holder's node goes away: its name goes with it, everywhere.
        await c.stop("alpha")
        await wait_until(
            lambda: beta.whereis_global("svc") is None and gamma.whereis_global("svc") is None
        )
        assert beta.registered_globals() == ["race"]


async def test_partitioned_registrations_resolve_when_nodes_meet() -> None:
    async with cluster("alpha", "beta") as c:
        gamma = await c.start("gamma")
        beta = c.nodes["beta"]
        pb, pg = beta.spawn(echo), gamma.spawn(echo)
        # Gamma is not connected yet: both sides get the name.
        assert await beta.register_global("svc", pb) is True
        assert await gamma.register_global("svc", pg) is True
        async with gamma.actor() as me:
            ref = me.monitor(pg)
            await c.connect("gamma", "alpha")
            await c.connect("gamma", "beta")
            down = await me.receive(timeout=10)
        # "beta" sorts first: its registration stays, gamma's actor is exited.
        assert down == ta.Down(ref, pg, "killed")
        await wait_until(
            lambda: all(
                n.node_of(n.whereis_global("svc") or pg) == "beta" for n in c.nodes.values()
            )
        )
        assert beta.is_alive(pb)


async def test_partition_by_disconnect_heals_with_one_holder() -> None:
    async with cluster("alpha", "beta", "gamma") as c:
        alpha, beta, gamma = c.nodes["alpha"], c.nodes["beta"], c.nodes["gamma"]
        pa = alpha.spawn(echo)
        assert await alpha.register_global("svc", pa) is True
        await wait_until(lambda: beta.whereis_global("svc") is not None)
        # Cut beta off: it forgets alpha's name and takes it for itself.
        alpha.disconnect("beta")
        gamma.disconnect("beta")
        await wait_until(lambda: beta.nodes() == [] and beta.whereis_global("svc") is None)
        pb = beta.spawn(echo)
        assert await beta.register_global("svc", pb) is True
        async with beta.actor() as me:
            ref = me.monitor(pb)
            # Heal: "alpha" sorts first, so its actor keeps the name everywhere.
            await c.connect("beta", "alpha")
            await c.connect("beta", "gamma")
            down = await me.receive(timeout=10)
        assert down == ta.Down(ref, pb, "killed")
        await wait_until(
            lambda: all(
                n.node_of(n.whereis_global("svc") or pb) == "alpha" for n in c.nodes.values()
            )
        )
        assert alpha.whereis_global("svc") == pa


async def test_process_groups_across_three_nodes() -> None:
    async with cluster("alpha", "beta", "gamma") as c:
        alpha, beta, gamma = c.nodes["alpha"], c.nodes["beta"], c.nodes["gamma"]
        async with gamma.actor() as watcher:
            ref = gamma.monitor_group("workers", watcher.pid)
            pids = {n: node.spawn(echo) for n, node in c.nodes.items()}
            for n, node in c.nodes.items():
                node.join_group("workers", pids[n])
            alpha.join_group("workers", pids["alpha"])
            await wait_until(
                lambda: all(len(n.group_members("workers")) == 4 for n in c.nodes.values())
            )
            joined = [await watcher.receive(timeout=5) for _ in range(4)]
            assert all(isinstance(m, ta.GroupJoin) and m.ref == ref for m in joined)
            assert sorted(p for m in joined for p in m.pids) == sorted(
                gamma.group_members("workers")
            )
            assert beta.local_group_members("workers") == [pids["beta"]]
            # Leaving is counted; an ending member leaves; a node going away
            # takes its members along.
            assert alpha.leave_group("workers", pids["alpha"]) is True
            beta.send(pids["beta"], "stop")
            await wait_until(lambda: len(gamma.group_members("workers")) == 2)
            await c.stop("alpha")
            await wait_until(lambda: gamma.group_members("workers") == [pids["gamma"]])
            left = [await watcher.receive(timeout=5) for _ in range(3)]
            assert all(isinstance(m, ta.GroupLeave) for m in left)
            assert beta.group_members("workers") == [pids["gamma"]]


@pytest.mark.slow
async def test_sigkilled_holder_frees_its_name_everywhere() -> None:
    async with (
        node_process("beta", "--epmd", "none", cookie=COOKIE) as beta_node,
        cluster("alpha", "gamma") as c,
    ):
        beta_target, beta = beta_node.target, beta_node.proc
        alpha, gamma = c.nodes["alpha"], c.nodes["gamma"]
        for node in (alpha, gamma):
            await node.connect(beta_target)
        # The name of an actor on beta, registered from alpha: beta holds it.
        pid = await alpha.spawn_on("beta", "echo")
        assert await alpha.register_global("svc", pid) is True
        await wait_until(lambda: gamma.whereis_global("svc") is not None)
        async with gamma.actor() as me:
            target = gamma.whereis_global("svc")
            assert target is not None and gamma.node_of(target) == "beta"
            gamma.send(target, (me.pid, "hi"))
            assert await me.receive(timeout=10) == ("echo", "hi")
        # SIGKILL: no goodbye, no unregister; the lost connection frees the name.
        beta.kill()
        await wait_until(
            lambda: alpha.whereis_global("svc") is None and gamma.whereis_global("svc") is None
        )
        # ...and the survivors can take it.
        assert await gamma.register_global("svc", gamma.spawn(echo)) is True
        await wait_until(lambda: alpha.whereis_global("svc") is not None)
