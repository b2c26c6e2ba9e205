"""Nodes in one process over real sockets: messaging, calls, spawn, links, monitors."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import attrs
import pytest
import trio

import trioactors as ta
from trioactors.cluster.node import Node

COOKIE = "test-cookie"


@ta.message("tests.Order")
@attrs.frozen
class Order:
    item: str
    qty: int


class Counter(ta.GenServer):
    async def init(self, start: int = 0, received: trio.Event | None = None) -> None:
        self.n = start
        self.received = received  # set when a request arrives (a call is pending)

    async def handle_call(self, request: Any, caller: ta.Caller) -> Any:
        if request == "crash":
            raise RuntimeError("asked to crash")
        if request == "slow":
            if self.received is not None:
                self.received.set()
            await trio.sleep_forever()
        self.n += request
        return self.n


class Sync(ta.GenServer):
    """Answers every call at once: a round trip to it over the connection
    proves every earlier frame from the caller's node was handled there."""

    async def handle_call(self, request: Any, caller: ta.Caller) -> Any:
        return request


async def synced(n: Node, peer: str) -> None:
    """Wait until `peer` has handled every signal `n` sent it so far (links,
    monitors, demonitors): frames travel in order over one connection and the
    reader handles those signals before later frames, so a call to the Sync
    server there returns only after them."""
    assert await n.call(("sync", peer), "sync", timeout=5) == "sync"


async def echo(ctx: ta.Context) -> None:
    """Replies (tag, payload) to the pid in (pid, payload)."""
    while True:
        sender, payload = await ctx.receive()
        ctx.send(sender, ("echo", payload, ctx.pid))


async def idle(ctx: ta.Context) -> None:
    await trio.sleep_forever()


async def crasher(ctx: ta.Context) -> None:
    await ctx.receive()
    raise ValueError("bye")


@asynccontextmanager
async def node(name: str, **kw: Any) -> AsyncIterator[Node]:
    kw.setdefault("cookie", COOKIE)
    kw.setdefault("epmd", None)
    async with ta.open_node(name, **kw) as n:
        yield n


def addr(n: Node) -> str:
    return f"{n.name}@{n.address[0]}:{n.address[1]}"


@asynccontextmanager
async def pair(**kw: Any) -> AsyncIterator[tuple[Node, Node]]:
    async with node("alpha", **kw) as a, node("beta", **kw) as b:
        await a.connect(addr(b))
        await b.start_server(Sync, name="sync")
        yield a, b


async def test_send_named_send_and_absolute_pids() -> None:
    async with pair() as (a, b):
        b.spawn(echo, name="echo")
        async with a.actor() as me:
            me.send(("echo", "beta"), (me.pid, Order("tea", 2)))
            tag, payload, echo_pid = await me.receive(timeout=5)
            assert (tag, payload) == ("echo", Order("tea", 2))
            # The pid names its node: the same value on both sides.
            assert echo_pid == b.whereis("echo") and echo_pid.node == "beta"
            assert b.is_local(echo_pid) and not a.is_local(echo_pid)
            assert a.node_of(echo_pid) == "beta"
            # The pid received works as a destination from here.
            me.send(echo_pid, (me.pid, [1, (2, 3), {"k": b"v"}]))
            assert (await me.receive(timeout=5))[1] == [1, (2, 3), {"k": b"v"}]
        assert a.nodes() == ["beta"] and b.nodes() == ["alpha"]


async def test_calls_and_casts_across_nodes() -> None:
    async with pair() as (a, b):
        pid = await b.start_server(Counter, 10, name="counter")
        assert pid is not None
        remote = pid  # a pid works from any node
        assert await a.call(("counter", "beta"), 5, timeout=5) == 15
        assert await a.call(remote, 1, timeout=5) == 16
        with pytest.raises(ta.CallTimeout):
            await a.call(remote, "slow", timeout=0.2)
        with pytest.raises(ta.CallFailed) as info:
            await a.call(("nobody", "beta"), 1, timeout=5)
        assert info.value.reason == "noproc"


async def test_not_serializable_raises_at_the_sender() -> None:
    async with pair() as (a, b):
        b.spawn(idle, name="sink")
        with pytest.raises(ta.NotSerializable):
            a.send(("sink", "beta"), object())
        with pytest.raises(ta.NotSerializable):
            a.send(("sink", "beta"), {1, 2})


async def test_remote_spawn_function_and_genserver() -> None:
    async with pair() as (a, b):
        b.register_spawnable("echo", echo)
        b.register_spawnable("counter", Counter)
        pid = await a.spawn_on("beta", "echo")
        assert pid.node == "beta" and b.is_alive(pid)
        async with a.actor() as me:
            me.send(pid, (me.pid, "x"))
            assert (await me.receive(timeout=5))[:2] == ("echo", "x")
        server = await a.spawn_on("beta", "counter", 100)
        assert await a.call(server, 1, timeout=5) == 101
        with pytest.raises(ta.SpawnFailed, match=r"no spawnable named 'nope'.*register_spawnable"):
            await a.spawn_on("beta", "nope")
        with pytest.raises(ta.SpawnFailed, match="failed to start"):
            await a.spawn_on("beta", "counter", "not", "an int", "too many")
        with pytest.raises(ta.SpawnFailed, match="cannot spawn 'echo' on node 'ghost'"):
            await a.spawn_on("ghost", "echo")


async def test_remote_spawn_link_to() -> None:
    async with pair() as (a, b):
        b.register_spawnable("crasher", crasher)
        async with a.actor(trap_exits=True) as me:
            pid = await a.spawn_on("beta", "crasher", link_to=me.pid)
            me.send(pid, "go")
            msg = await me.receive(timeout=5)
            assert isinstance(msg, ta.Exit) and msg.pid == pid
            assert isinstance(msg.reason, ta.Crash) and msg.reason.type == "ValueError"


async def test_links_and_monitors_across_nodes() -> None:
    async with pair() as (a, b):
        victim = b.spawn(crasher)
        remote = victim
        async with a.actor(trap_exits=True) as me:
            me.link(remote)
            ref = me.monitor(remote)
            name_ref = me.monitor(("nobody", "beta"))
            down = await me.receive(timeout=5)
            assert down == ta.Down(name_ref, ("nobody", "beta"), "noproc")
            await synced(a, "beta")  # the link/monitor reached beta first
            me.send(remote, "go")
            got = [await me.receive(timeout=5), await me.receive(timeout=5)]
            exits = [m for m in got if isinstance(m, ta.Exit)]
            downs = [m for m in got if isinstance(m, ta.Down)]
            assert exits[0].pid == remote and exits[0].reason.type == "ValueError"
            assert downs[0].ref == ref and downs[0].reason.type == "ValueError"
        # The other way: a local actor dies, the remote linked one goes too.
        async with b.actor() as watcher:
            target = a.spawn(idle)
            linked = b.spawn(idle)
            remote_target = target
            mon = watcher.monitor(linked)
            async with b.actor() as helper:
                helper.link(remote_target)
                helper.unlink(remote_target)
            b.system.remote_link(linked, remote_target)  # as a remote peer would
            a.system.remote_link(target, linked)
            a.exit(target, "stop")
            assert await watcher.receive(timeout=5) == ta.Down(mon, linked, "stop")


async def test_monitor_by_name_and_demonitor() -> None:
    async with pair() as (a, b):
        svc = b.spawn(crasher, name="svc")
        async with a.actor() as me:
            ref = me.monitor(("svc", "beta"))
            ref2 = me.monitor(("svc", "beta"))
            me.demonitor(ref2)
            await synced(a, "beta")  # both monitors and the demonitor are there
            b.send(svc, "go")
            down = await me.receive(timeout=5)
            assert down.ref == ref and down.pid == ("svc", "beta")
            with pytest.raises(trio.TooSlowError):
                await me.receive(timeout=0.2)


async def test_connection_loss_fires_noconnection_everywhere() -> None:
    async with pair() as (a, b):
        call_received = trio.Event()
        server = await b.start_server(Counter, 0, call_received, name="counter")
        assert server is not None
        remote = server
        a.monitor_nodes(watcher_all := a.spawn(idle))
        async with a.actor(trap_exits=True) as me, a.actor() as nodes_watcher:
            me.link(remote)
            ref = me.monitor(remote)
            me.monitor_node("beta")
            a.monitor_nodes(nodes_watcher.pid)
            await synced(a, "beta")  # the link and monitor are on beta
            failures: list[BaseException] = []

            async def pending_call() -> None:
                try:
                    await a.call(remote, "slow", timeout=10)
                except ta.CallFailed as exc:
                    failures.append(exc)

            async with trio.open_nursery() as n:
                n.start_soon(pending_call)
                with trio.fail_after(5):
                    await call_received.wait()  # the call is pending on the server
                # Cut the wire under both nodes (like a pulled cable).
                b.kernel.peers.get("alpha").conn.abort("test")  # type: ignore[union-attr]
            got = {type(m): m for m in [await me.receive(timeout=5) for _ in range(3)]}
            assert got[ta.Exit] == ta.Exit(remote, "noconnection")
            assert got[ta.Down] == ta.Down(ref, remote, "noconnection")
            assert got[ta.NodeDown].node == "beta"
            assert isinstance(failures[0], ta.CallFailed)
            assert failures[0].reason == ("nodedown", "beta")
            down = await nodes_watcher.receive(timeout=5)
            assert down == ta.NodeDown("beta", "connection_closed")
            # beta's side fired too: the link killed the server there.
            with pytest.raises(ta.CallFailed, match="noproc"):
                await a.call(remote, 0, timeout=5)  # (that call reconnected)
            assert b.whereis("counter") is None
            assert await nodes_watcher.receive(timeout=5) == ta.NodeUp("beta")
        a.demonitor_nodes(watcher_all)


async def test_unreachable_node_answers_noconnection_at_once() -> None:
    async with node("alpha", connect_timeout=2) as a:
        ghost = ta.Pid("ghost", 1, 0, 1)
        a.kernel.peers.ensure("ghost").address = ("127.0.0.1", 1)  # nothing listens there
        async with a.actor(trap_exits=True) as me:
            ref = me.monitor(ghost)
            me.link(ghost)
            me.monitor_node("ghost")
            got = [await me.receive(timeout=5) for _ in range(3)]
            assert ta.Down(ref, ghost, "noconnection") in got
            assert ta.Exit(ghost, "noconnection") in got
            assert ta.NodeDown("ghost", "noconnection") in got
            with pytest.raises(ta.CallFailed) as info:
                await me.call(ghost, 1)
            assert info.value.reason == ("nodedown", "ghost")
        with pytest.raises(ta.ConnectionFailed, match="cannot reach node 'ghost'"):
            await a.connect("ghost@127.0.0.1:1")
        with pytest.raises(ta.ConnectionFailed, match="discovery is off"):
            await a.connect("nowhere")


async def test_wrong_cookie(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "trioactors.cluster")
    async with node("alpha") as a, node("beta", cookie="other") as b:
        b.spawn(idle, name="sink")
        with pytest.raises(ta.AuthenticationFailed, match="wrong cookie"):
            await a.connect(addr(b))
        assert a.nodes() == [] and b.nodes() == []
        assert any("failed the cookie challenge" in r.getMessage() for r in caplog.records)


async def test_names_that_once_collided_are_distinct_nodes() -> None:
    # These two names hash to the same 32-bit number: with node ids in pids
    # they could not be in one cluster. Pids now carry the name itself.
    async with node("n64481") as a, node("n159558") as b:
        assert a.node_id == b.node_id
        await a.connect(addr(b))
        b.spawn(echo, name="echo")
        async with a.actor() as me:
            me.send(("echo", "n159558"), (me.pid, "hi"))
            _, _, echo_pid = await me.receive(timeout=5)
            assert echo_pid.node == "n159558" and b.is_alive(echo_pid)


async def test_simultaneous_connects_make_one_connection() -> None:
    async with node("alpha") as a, node("beta") as b:
        b.kernel.peers.ensure("alpha").address = a.address
        async with trio.open_nursery() as n:
            n.start_soon(a.connect, addr(b))
            n.start_soon(b.connect, addr(a))
        assert a.nodes() == ["beta"] and b.nodes() == ["alpha"]
        b.spawn(echo, name="echo")
        async with a.actor() as me:
            me.send(("echo", "beta"), (me.pid, 1))
            assert (await me.receive(timeout=5))[1] == 1


async def test_old_incarnation_pids_are_not_delivered() -> None:
    async with node("alpha") as a:
        async with node("beta", creation=1) as b:
            b.spawn(idle, name="first")
            old = b.whereis("first")
            assert old is not None
            await a.connect(addr(b))
        async with node("beta", creation=2) as b2:
            reused = b2.spawn(echo)  # the old pid's id, in the new incarnation
            assert reused.id == old.id and reused != old
            await a.connect(addr(b2))
            async with a.actor() as me:
                me.send(old, (me.pid, "stale"))
                me.send(reused, (me.pid, "fresh"))
                # One connection keeps order: had "stale" reached the echo, its
                # answer would come first.
                assert (await me.receive(timeout=5))[1] == "fresh"
                ref = me.monitor(old)
                assert await me.receive(timeout=5) == ta.Down(ref, old, "noproc")


async def test_graceful_leave_tells_peers() -> None:
    async with node("alpha") as a, a.actor(trap_exits=True) as me:
        async with node("beta") as b:
            svc = b.spawn(idle, name="svc")
            await b.start_server(Sync, name="sync")
            await a.connect(addr(b))
            remote = svc
            me.link(remote)
            me.monitor_node("beta")
            await synced(a, "beta")  # the link is on beta
        # beta's actors ended with shutdown (the signal went out before the
        # goodbye), then the connection closed: connection_closed, as Erlang
        # reports a peer's init:stop().
        assert await me.receive(timeout=5) == ta.Exit(remote, "shutdown")
        assert await me.receive(timeout=5) == ta.NodeDown("beta", "connection_closed")
        assert a.nodes() == []


async def test_discovery_through_epmd() -> None:
    async with trio.open_nursery() as n:
        server = await n.start(ta.serve_epmd, "127.0.0.1", 0)
        epmd = f"127.0.0.1:{server.port}"
        async with (
            node("alpha", epmd=epmd, discovery_interval=0.1) as a,
            node("beta", epmd=epmd, discovery_interval=0.1) as b,
        ):
            b.spawn(echo, name="echo")
            # Auto-connect on first send: no connect() call.
            async with a.actor() as me:
                me.send(("echo", "beta"), (me.pid, "via epmd"))
                assert (await me.receive(timeout=5))[1] == "via epmd"
            assert {i.name for i in await a.list_nodes()} == {"alpha", "beta"}
            async with node("gamma", epmd=epmd, discovery_interval=0.1) as c, c.actor() as w:
                c.monitor_nodes(w.pid)
                # Discovery connects gamma to everyone without being asked.
                ups = {(await w.receive(timeout=5)).node for _ in range(2)}
                assert ups == {"alpha", "beta"} and c.nodes() == ["alpha", "beta"]
            with pytest.raises(ta.NameTaken):
                async with node("alpha", epmd=epmd):
                    pass
        assert [i.name for i in server.nodes()] == []
        n.cancel_scope.cancel()


async def test_pid_of_a_never_met_node_is_reached_through_epmd() -> None:
    async with trio.open_nursery() as n:
        server = await n.start(ta.serve_epmd, "127.0.0.1", 0)
        epmd = f"127.0.0.1:{server.port}"
        slow = {"epmd": epmd, "discovery_interval": 1000.0}  # no discovery round
        async with node("alpha", **slow) as a, node("gamma", **slow) as c:
            far = c.spawn(echo)
            assert a.nodes() == [] and a.node_of(far) == "gamma"
            async with a.actor() as me:
                # The pid names its node: alpha asks EPMD where gamma is.
                me.send(far, (me.pid, "found you"))
                assert await me.receive(timeout=5) == ("echo", "found you", far)
            assert a.nodes() == ["gamma"]
            # A node nobody registered: dropped, and links/monitors say so.
            async with a.actor() as me:
                nowhere = ta.Pid("nowhere", 1, 0, 1)
                ref = me.monitor(nowhere)
                assert await me.receive(timeout=5) == ta.Down(ref, nowhere, "noconnection")
        n.cancel_scope.cancel()


async def test_exit_signals_to_remote_pids() -> None:
    async with pair() as (a, b):
        trapper_done = trio.Event()
        trapping = trio.Event()
        got: list[Any] = []

        async def trapper(ctx: ta.Context) -> None:
            ctx.trap_exits = True
            trapping.set()
            got.append(await ctx.receive())
            trapper_done.set()
            await ctx.receive()  # the shutdown signal, trapped too: then end

        t = b.spawn(trapper)
        v = b.spawn(idle)
        await trapping.wait()
        async with a.actor() as me:
            ref = me.monitor(v)
            me.exit(t, "please")  # trapped: arrives as a message
            a.exit(v, "kill")  # untrappable
            assert await me.receive(timeout=5) == ta.Down(ref, v, "killed")
            with trio.fail_after(5):
                await trapper_done.wait()
            assert got == [ta.Exit(me.pid, "please")]


async def test_restarted_peer_replaces_the_stale_connection() -> None:
    async with node("alpha") as a, a.actor() as me:
        async with node("beta", creation=1) as b1:
            old = b1.spawn(idle)
            await b1.start_server(Sync, name="sync")
            await a.connect(addr(b1))
            ref = me.monitor(old)
            await synced(a, "beta")  # the monitor is on the first beta
            # beta "restarts" (new incarnation) before alpha saw the old one go.
            async with node("beta", creation=2) as b2:
                await b2.connect(addr(a))
                assert await me.receive(timeout=5) == ta.Down(ref, old, "noconnection")
                b2.spawn(echo, name="echo")
                me.send(("echo", "beta"), (me.pid, "new"))
                assert (await me.receive(timeout=5))[:2] == ("echo", "new")
                assert a.nodes() == ["beta"]


async def test_message_over_max_frame_size_raises_at_the_sender() -> None:
    async with pair(max_frame_size=1000) as (a, b):
        b.spawn(echo, name="echo")
        with pytest.raises(ta.NotSerializable, match="exceeds max_frame_size"):
            a.send(("echo", "beta"), b"x" * 2000)
        async with a.actor() as me:  # the connection is fine
            me.send(("echo", "beta"), (me.pid, b"x" * 500))
            assert (await me.receive(timeout=5))[1] == b"x" * 500


async def test_disconnect_and_reconnect_on_next_send() -> None:
    async with pair() as (a, b):
        b.spawn(echo, name="echo")
        server = await b.start_server(Counter, 0, name="counter")
        assert server is not None
        async with a.actor() as me:
            ref = me.monitor(server)
            me.monitor_node("beta")
            await synced(a, "beta")  # the monitor is on beta
            assert a.disconnect("beta") and not a.disconnect("beta")
            got = [await me.receive(timeout=5) for _ in range(2)]
            assert ta.NodeDown("beta", "disconnect") in got
            assert ta.Down(ref, server, "noconnection") in got
            me.send(("echo", "beta"), (me.pid, "again"))  # reconnects on demand
            assert (await me.receive(timeout=5))[:2] == ("echo", "again")
            assert a.nodes() == ["beta"]
