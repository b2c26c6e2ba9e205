"""Supervision across nodes: `ChildSpec(..., nodes=[...])` between three
in-process nodes over real loopback sockets."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio

import trioactors as ta

COOKIE = "remote-supervision-test"


async def worker(ctx: ta.Context, tag: str, report_to: ta.Pid) -> None:
    """Tells `report_to` it is up; crashes on "crash"."""
    ctx.send(report_to, ("up", tag, ctx.pid))
    while True:
        msg = await ctx.receive()
        if msg == "crash":
            raise RuntimeError(f"{tag} asked to crash")


async def stubborn(ctx: ta.Context, report_to: ta.Pid) -> None:
    """Traps exits and ignores them: only `kill` ends it."""
    ctx.trap_exits = True
    ctx.send(report_to, ("up", "stubborn", ctx.pid))
    while True:
        await ctx.receive()


class Store(ta.GenServer):
    """A remote GenServer child."""

    async def init(self, report_to: ta.Pid) -> None:
        self.items: list[Any] = []
        self.ctx.send(report_to, ("up", "store", self.pid))

    async def handle_call(self, request: Any, caller: ta.Caller) -> Any:
        if request == "crash":
            raise RuntimeError("store asked to crash")
        self.items.append(request)
        return len(self.items)


class Trapper(ta.GenServer):
    """Traps exits; reports its terminate."""

    async def init(self, report_to: ta.Pid) -> None:
        self.ctx.trap_exits = True
        self.report_to = report_to
        self.ctx.send(report_to, ("up", "trapper", self.pid))

    async def terminate(self, reason: Any) -> None:
        self.ctx.send(self.report_to, ("terminated", self.pid, reason))


class Flash(ta.GenServer):
    """Starts fine and crashes at once after init."""

    async def init(self) -> None:
        self.ctx.send(self.pid, "die")

    async def handle_info(self, msg: Any) -> None:
        raise RuntimeError("gone right after init")


def _register(node: ta.Node) -> None:
    node.register_spawnable("worker", worker)
    node.register_spawnable("stubborn", stubborn)
    node.register_spawnable("store", Store)
    node.register_spawnable("flash", Flash)
    node.register_spawnable("trapper", Trapper)


class Nodes:
    """Nodes in this program, each stoppable (and restartable) on its own."""

    def __init__(self, nursery: trio.Nursery) -> None:
        self._nursery = nursery
        self.nodes: dict[str, ta.Node] = {}
        self.ports: dict[str, int] = {}
        self._stops: dict[str, tuple[trio.Event, trio.Event]] = {}

    def __getitem__(self, name: str) -> ta.Node:
        return self.nodes[name]

    async def start(self, name: str) -> ta.Node:
        stop, done = trio.Event(), trio.Event()
        # A restarted node gets its old port back, so peers find it again.
        listen = f"127.0.0.1:{self.ports.get(name, 0)}"

        async def run(*, task_status: trio.TaskStatus[ta.Node]) -> None:
            try:
                async with ta.open_node(
                    name, listen=listen, epmd=None, cookie=COOKIE, shutdown_timeout=2.0
                ) as node:
                    _register(node)
                    task_status.started(node)
                    await stop.wait()
            finally:
                done.set()

        node: ta.Node = await self._nursery.start(run)
        self.nodes[name] = node
        self.ports[name] = node.address[1]
        self._stops[name] = (stop, done)
        for other in self.nodes.values():
            if other is not node:
                await other.connect(f"{name}@127.0.0.1:{node.address[1]}")
        return node

    async def stop(self, name: str) -> None:
        stop, done = self._stops.pop(name)
        del self.nodes[name]
        stop.set()
        await done.wait()


@asynccontextmanager
async def three_nodes() -> AsyncIterator[Nodes]:
    async with trio.open_nursery() as nursery:
        c = Nodes(nursery)
        for name in ("alpha", "beta", "gamma"):
            await c.start(name)
        yield c
        # The supervisors' node first: no restarts while the others leave.
        for name in list(c.nodes):
            await c.stop(name)


async def up(me: ta.Context, tag: str) -> ta.Pid:
    """The pid of the next child that reports it started."""
    msg = await me.receive(timeout=10, match=lambda m: type(m) is tuple and m[:2] == ("up", tag))
    pid: ta.Pid = msg[2]
    return pid


async def settled(node: ta.Node, sup: ta.Pid) -> list[tuple[Any, ta.Pid | None, str]]:
    """which_children once the supervisor is done with what it was doing (a
    child reports "up" before its supervisor has seen the spawn's answer)."""
    children: list[tuple[Any, ta.Pid | None, str]] = await node.call(
        sup, "which_children", timeout=10
    )
    return children


def where(node: ta.Node, pid: ta.Pid | None) -> str | None:
    assert pid is not None
    return node.node_of(pid)


def remote(
    cid: str, start: str, args: tuple[Any, ...], nodes: list[str], **kw: Any
) -> ta.ChildSpec:
    return ta.ChildSpec(cid, start, args=args, nodes=nodes, **kw)


async def test_crashed_remote_child_restarts_on_its_node_and_which_children() -> None:
    async with three_nodes() as c, c["alpha"].actor() as me:
        alpha = c["alpha"]
        sup = await alpha.start_supervisor(
            [
                remote("w", "worker", ("w", me.pid), ["beta", "gamma"]),
                remote("store", "store", (me.pid,), ["gamma"], restart="transient"),
                ta.ChildSpec("local", worker, args=("local", me.pid)),
            ],
            name="sup",
        )
        w, store = await up(me, "w"), await up(me, "store")
        await up(me, "local")
        children = alpha.which_children("sup")
        assert [(cid, r) for cid, _, r in children] == [
            ("w", "permanent"),
            ("store", "transient"),
            ("local", "permanent"),
        ]
        assert children[0][1] == w and where(alpha, w) == "beta"
        assert children[1][1] == store and where(alpha, store) == "gamma"
        local = children[2][1]
        assert isinstance(local, ta.Pid) and where(alpha, local) == "alpha"
        # The pid works like any other: a call to the remote GenServer child.
        assert await alpha.call(store, "x", timeout=5) == 1
        assert await alpha.call(sup, "which_children", timeout=5) == children

        alpha.send(w, "crash")
        w2 = await up(me, "w")
        assert w2 != w and where(alpha, w2) == "beta"
        assert (await settled(alpha, sup))[0][1] == w2
        assert c["beta"].is_alive(w2) and not c["beta"].is_alive(w)

        with pytest.raises(ta.CallFailed):
            await alpha.call(store, "crash", timeout=5)
        store2 = await up(me, "store")
        assert where(alpha, store2) == "gamma" and await alpha.call(store2, "y", timeout=5) == 1
        # Only the crashed children were restarted (one_for_one).
        assert [p for _, p, _ in (await settled(alpha, sup))][::2] == [w2, children[2][1]]


async def test_node_leaving_moves_the_child_and_a_recovered_node_is_preferred() -> None:
    async with three_nodes() as c, c["alpha"].actor() as me:
        alpha = c["alpha"]
        sup = await alpha.start_supervisor(
            [remote("w", "worker", ("w", me.pid), ["beta", "gamma"])], max_restarts=5
        )
        w = await up(me, "w")
        assert where(alpha, w) == "beta"
        # beta leaves gracefully: its actors end with shutdown, the link
        # carries that to the supervisor, and beta (shutting down) refuses
        # the restart, so the child comes up on gamma.
        await c.stop("beta")
        w2 = await up(me, "w")
        assert where(alpha, w2) == "gamma"
        assert (await settled(alpha, sup))[0][1] == w2
        # beta is back: the next restart prefers it again.
        await c.start("beta")
        alpha.send(w2, "crash")
        w3 = await up(me, "w")
        assert where(alpha, w3) == "beta"
        assert (await settled(alpha, sup))[0][1] == w3
        assert alpha.is_alive(sup)


async def test_lost_connection_is_noconnection_and_leaves_no_orphan() -> None:
    async with three_nodes() as c, c["alpha"].actor() as me:
        alpha, beta = c["alpha"], c["beta"]
        sup = await alpha.start_supervisor(
            [remote("w", "worker", ("w", me.pid), ["beta", "gamma"], restart="transient")]
        )
        w = await up(me, "w")
        ref = me.monitor(w)
        async with beta.actor() as on_beta:
            beta_ref = on_beta.monitor(w)
            # Cut the connection without a goodbye: both sides see noconnection.
            peer = alpha.kernel.peers.get("beta")
            assert peer is not None
            conn = peer.conn
            assert conn is not None
            conn.abort("connection_closed")
            down = await me.receive(timeout=10, match=lambda m: type(m) is ta.Down)
            assert down == ta.Down(ref, w, "noconnection")
            # The old child died with the link on beta's side: no orphan.
            assert await on_beta.receive(timeout=10) == ta.Down(beta_ref, w, "noconnection")
        # transient: noconnection is abnormal, so it is restarted, on beta
        # (reachable again, first choice) ...
        w2 = await up(me, "w")
        assert where(alpha, w2) == "beta" and (await settled(alpha, sup))[0][1] == w2
        assert beta.is_alive(w2)


async def test_restart_intensity_counts_remote_restarts() -> None:
    async with three_nodes() as c, c["alpha"].actor() as me:
        alpha = c["alpha"]
        sup = await alpha.start_supervisor(
            [
                remote("w", "worker", ("w", me.pid), ["beta", "gamma"]),
                remote("other", "worker", ("other", me.pid), ["gamma"]),
            ],
            max_restarts=2,
            max_seconds=60,
        )
        w = await up(me, "w")
        other = await up(me, "other")
        watch = me.monitor(sup)
        watch_other = me.monitor(other)
        for _ in range(2):
            alpha.send(w, "crash")
            w = await up(me, "w")
        alpha.send(w, "crash")
        # The third crash in the window is one too many: the supervisor stops
        # its remote children and ends with shutdown.
        got = {await me.receive(timeout=10, match=lambda m: type(m) is ta.Down) for _ in range(2)}
        assert got == {ta.Down(watch, sup, "shutdown"), ta.Down(watch_other, other, "shutdown")}


async def test_no_reachable_candidate_is_a_failed_start() -> None:
    async with three_nodes() as c, c["alpha"].actor() as me:
        alpha = c["alpha"]
        # At start: the supervisor does not start.
        with pytest.raises(ta.StartFailed) as info:
            await alpha.start_supervisor(
                [remote("w", "worker", ("w", me.pid), ["nowhere@127.0.0.1:1", "nobody"])]
            )
        reason = info.value.reason
        assert reason[:2] == ("failed_to_start_child", "w") and reason[2][0] == "spawn_failed"
        assert "nowhere" in reason[2][1] and "nobody" in reason[2][1]
        # Reachable nodes without the spawnable are skipped as well.
        with pytest.raises(ta.StartFailed, match="no spawnable named 'nope'"):
            await alpha.start_supervisor([remote("w", "nope", (), ["gamma", "beta"])])
        # An unreachable first choice is skipped.
        sup = await alpha.start_supervisor(
            [remote("w", "worker", ("w", me.pid), ["nowhere@127.0.0.1:1", "gamma"])]
        )
        assert where(alpha, await up(me, "w")) == "gamma"
        alpha.exit(sup, "shutdown")
        assert await alpha.join(sup) == "shutdown"
        # Later: beta (its only candidate) leaves, every restart fails, and
        # the failed restarts use up the intensity.
        sup = await alpha.start_supervisor(
            [remote("w", "worker", ("w", me.pid), ["beta"])], max_restarts=3
        )
        await up(me, "w")
        watch = me.monitor(sup)
        await c.stop("beta")
        assert await me.receive(timeout=20, match=lambda m: type(m) is ta.Down) == ta.Down(
            watch, sup, "shutdown"
        )


async def test_supervisor_shutdown_stops_remote_children() -> None:
    async with three_nodes() as c, c["alpha"].actor() as me:
        alpha = c["alpha"]
        sup = await alpha.start_supervisor(
            [
                remote("w", "worker", ("w", me.pid), ["beta"]),
                remote("s", "stubborn", (me.pid,), ["gamma"], shutdown=0.3),
                remote("g", "store", (me.pid,), ["beta"]),
            ]
        )
        w, s, g = await up(me, "w"), await up(me, "stubborn"), await up(me, "store")
        refs = {me.monitor(pid): pid for pid in (w, s, g)}
        alpha.exit(sup, "shutdown")
        assert await alpha.join(sup) == "shutdown"
        downs = [await me.receive(timeout=10, match=lambda m: type(m) is ta.Down) for _ in refs]
        # Reverse start order; the one ignoring shutdown is killed after 0.3 s.
        assert [(d.pid, d.reason) for d in downs] == [
            (g, "shutdown"),
            (s, "killed"),
            (w, "shutdown"),
        ]
        assert not c["beta"].is_alive(w) and not c["gamma"].is_alive(s)


async def test_leaving_supervisor_node_stops_remote_children() -> None:
    async with three_nodes() as c:
        alpha, beta = c["alpha"], c["beta"]
        async with beta.actor() as watcher:
            report_to = watcher.pid
            await alpha.start_supervisor([remote("w", "worker", ("w", report_to), ["beta"])])
            w = await up(watcher, "w")
            ref = watcher.monitor(w)
            await c.stop("alpha")
            # Stopped by the supervisor (shutdown), before alpha said goodbye.
            assert await watcher.receive(timeout=10) == ta.Down(ref, w, "shutdown")


async def test_crash_right_after_start_is_never_missed() -> None:
    async with three_nodes() as c, c["alpha"].actor(trap_exits=True) as me:
        router = c["alpha"].system.router
        assert router is not None
        for _ in range(5):
            try:
                pid = await router.spawn_remote("beta", "flash", (), me.pid)
            except ta.SpawnFailed:
                continue  # it ended before the link: reported as a failed start
            exit_msg = await me.receive(timeout=5, match=lambda m: type(m) is ta.Exit)
            assert exit_msg.pid == pid and isinstance(exit_msg.reason, ta.Crash)
        # Under a supervisor: a failed start or crashes up to the intensity,
        # never a supervisor waiting on a dead child.
        try:
            sup = await c["alpha"].start_supervisor(
                [remote("f", "flash", (), ["beta"])], max_restarts=2
            )
        except ta.StartFailed as exc:
            assert "ended right after its init" in str(exc)
        else:
            assert await c["alpha"].join(sup) == "shutdown"


async def test_child_spec_with_nodes_validation() -> None:
    assert ta.ChildSpec("w", "worker", nodes="beta").nodes == ("beta",)
    assert ta.ChildSpec("w", "worker", nodes=["b", "c"]).shutdown_policy == 5.0
    with pytest.raises(TypeError, match="register_spawnable"):
        ta.ChildSpec("w", worker, nodes=["beta"])
    with pytest.raises(TypeError, match="nodes="):
        ta.ChildSpec("w", "worker")
    with pytest.raises(ValueError, match="nodes"):
        ta.ChildSpec("w", "worker", nodes=[])
    for bad in ["beta@", "@host", "beta@h:99999", "be ta", "h:5000"]:
        with pytest.raises(ValueError, match="nodes: "):
            ta.ChildSpec("w", "worker", nodes=["gamma", bad])
    assert ta.ChildSpec("w", "worker", nodes=["beta@h2"]).nodes == ("beta@h2",)
    assert ta.ChildSpec("w", "worker", nodes=["b@[::1]:4370"]).nodes == ("b@[::1]:4370",)
    with pytest.raises(ValueError, match="register_global"):
        ta.ChildSpec("w", "worker", nodes="beta", name="w")
    async with ta.open_actor_system() as system:
        with pytest.raises(ta.StartFailed, match="not a node"):
            await system.start_supervisor([ta.ChildSpec("w", "worker", nodes="beta")])


async def test_one_for_all_restarts_remote_and_local_children_together() -> None:
    async with three_nodes() as c, c["alpha"].actor() as me:
        alpha = c["alpha"]
        sup = await alpha.start_supervisor(
            [
                remote("r1", "worker", ("r1", me.pid), ["beta"]),
                ta.ChildSpec("local", worker, args=("local", me.pid)),
                remote("r2", "store", (me.pid,), ["gamma"]),
            ],
            strategy="one_for_all",
        )
        r1, local, r2 = await up(me, "r1"), await up(me, "local"), await up(me, "store")
        refs = {me.monitor(pid): pid for pid in (r1, r2)}
        alpha.send(local, "crash")
        # The others are stopped (reverse order) and everything starts again in order.
        downs = [await me.receive(timeout=10, match=lambda m: type(m) is ta.Down) for _ in refs]
        assert [(d.pid, d.reason) for d in downs] == [(r2, "shutdown"), (r1, "shutdown")]
        new = [await up(me, "r1"), await up(me, "local"), await up(me, "store")]
        assert [p for _, p, _ in await settled(alpha, sup)] == new
        assert [where(alpha, p) for p in new] == ["beta", "alpha", "gamma"]


async def test_own_node_as_a_candidate(caplog: pytest.LogCaptureFixture) -> None:
    async with three_nodes() as c, c["alpha"].actor() as me:
        alpha = c["alpha"]
        sup = await alpha.start_supervisor(
            [remote("w", "worker", ("w", me.pid), ["beta", "alpha"])]
        )
        assert where(alpha, await up(me, "w")) == "beta"
        await c.stop("beta")
        w = await up(me, "w")
        assert alpha.is_local(w) and (await settled(alpha, sup))[0][1] == w
        alpha.send(w, "crash")
        w2 = await up(me, "w")
        assert alpha.is_local(w2) and w2 != w
        await c.stop("alpha")  # the supervisor stops it; no restart on the way out
        assert not any(
            "restart" in r.getMessage() for r in caplog.records if r.levelname == "ERROR"
        )


async def test_trapping_remote_server_ends_through_terminate_when_stopped() -> None:
    async with three_nodes() as c, c["alpha"].actor() as me:
        alpha = c["alpha"]
        # Long shutdown: were the stop signal not seen as its parent's, the
        # server would ignore it and the test would time out.
        sup = await alpha.start_supervisor(
            [remote("t", "trapper", (me.pid,), ["beta"], shutdown=60.0)]
        )
        t = await up(me, "trapper")
        ref, sup_ref = me.monitor(t), me.monitor(sup)
        alpha.exit(sup, "shutdown")
        assert await me.receive(timeout=10) == ("terminated", t, "shutdown")
        assert await me.receive(timeout=10) == ta.Down(ref, t, "shutdown")
        assert await me.receive(timeout=10) == ta.Down(sup_ref, sup, "shutdown")
