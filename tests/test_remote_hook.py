"""The distribution hook: two ActorSystems joined by an in-memory Router.

The fake router carries every signal through the real message codec (what
arrives is what a node would decode: pids are absolute, nothing rewrites
them), and proves the RemoteSignals semantics: remote send, links,
monitors, calls, and node_down.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
import trio
import trio.testing
from helpers import FakeRouter, disconnect, joined_systems

import trioactors as ta


@pytest.fixture
async def pair() -> AsyncIterator[tuple[ta.ActorSystem, ta.ActorSystem, FakeRouter, FakeRouter]]:
    async with joined_systems() as systems:
        yield systems


async def echo(ctx: ta.Context) -> None:
    while True:
        frm, msg = await ctx.receive()
        ctx.send(frm, ("echo", msg))


async def idle(ctx: ta.Context) -> None:
    await trio.sleep_forever()


class Kv(ta.GenServer):
    async def init(self) -> None:
        self.data: dict[str, Any] = {}

    async def handle_call(self, request: Any, caller: ta.Caller) -> Any:
        op, *rest = request
        if op == "put":
            self.data[rest[0]] = rest[1]
            return "ok"
        if op == "hang":
            return ta.NO_REPLY
        if op == "crash":
            raise RuntimeError("kv crashed")
        return self.data.get(rest[0])


Pair = tuple[ta.ActorSystem, ta.ActorSystem, FakeRouter, FakeRouter]


async def test_remote_send_by_pid_and_by_name(pair: Pair) -> None:
    a, b, _, _ = pair
    remote = b.spawn(echo, name="echo")
    assert b.is_local(remote) and not a.is_local(remote)
    async with a.actor() as me:
        me.send(remote, (me.pid, 1))
        assert await me.receive(timeout=5) == ("echo", 1)
        me.send(("echo", "b"), (me.pid, 2))
        assert await me.receive(timeout=5) == ("echo", 2)
        me.send(("echo", "a"), (me.pid, 3))  # names this node: local, nobody there
        with pytest.raises(trio.TooSlowError):
            await me.receive(timeout=0.05)
        # A pid received over the wire is the sender's pid, replyable from anywhere.
        me.send(remote, (me.pid, me.pid))
        assert await me.receive(timeout=5) == ("echo", me.pid)


async def test_remote_call(pair: Pair) -> None:
    a, b, _, _ = pair
    pid_b = await b.start_server(Kv, name="kv")
    assert pid_b is not None
    assert await a.call(("kv", "b"), ("put", "k", 1)) == "ok"
    assert await a.call(pid_b, ("get", "k")) == 1
    with pytest.raises(ta.CallFailed) as info:
        await a.call(("kv", "b"), ("crash",))
    assert info.value.reason == ta.Crash("RuntimeError", "kv crashed")
    with pytest.raises(ta.CallFailed, match="noproc"):
        await a.call(("kv", "b"), ("get", "k"))  # gone, and not restarted


async def test_remote_link_fires_on_crash_both_ways(pair: Pair) -> None:
    a, b, _, _ = pair

    async def crasher(ctx: ta.Context) -> None:
        await ctx.receive()
        raise ValueError("remote boom")

    pid_b = b.spawn(crasher)
    remote = pid_b
    async with a.actor(trap_exits=True) as me:
        me.link(remote)
        me.send(remote, "go")
        exit_msg = await me.receive(timeout=5)
        assert exit_msg == ta.Exit(remote, ta.Crash("ValueError", "remote boom"))

    # The other way: an actor on A dies, its link kills the one on B.
    pid_b2 = b.spawn(idle)
    with pytest.raises(ta.ActorExited):
        async with a.actor() as me:
            me.link(pid_b2)
            raise_later = me.pid
            await trio.testing.wait_all_tasks_blocked()
            a.exit(raise_later, "bye")
            await trio.sleep_forever()
    assert await b.join(pid_b2) in ("bye", "noproc")
    assert not b.is_alive(pid_b2)


async def test_remote_link_to_dead_pid_is_noproc(pair: Pair) -> None:
    a, b, _, _ = pair
    pid_b = b.spawn(idle)
    b.exit(pid_b, "kill")
    await b.join(pid_b)
    async with a.actor(trap_exits=True) as me:
        me.link(pid_b)
        assert await me.receive(timeout=5) == ta.Exit(pid_b, "noproc")


async def test_remote_unlink(pair: Pair) -> None:
    a, b, _, _ = pair
    pid_b = b.spawn(idle)
    async with a.actor(trap_exits=True) as me:
        me.link(pid_b)
        me.unlink(pid_b)
        ref = me.monitor(pid_b)
        b.exit(pid_b, "x")
        assert await me.receive(timeout=5) == ta.Down(ref, pid_b, "x")
        with pytest.raises(trio.WouldBlock):
            me.receive_nowait()


async def test_remote_monitor_and_demonitor(pair: Pair) -> None:
    a, b, _, _ = pair
    pid_b = b.spawn(idle, name="svc")
    async with a.actor() as me:
        ref1 = me.monitor(pid_b)
        ref2 = me.monitor(("svc", "b"))
        ref3 = me.monitor(pid_b)
        assert me.demonitor(ref3) is True
        b.exit(pid_b, "stopped")
        got = {await me.receive(timeout=5), await me.receive(timeout=5)}
        assert got == {
            ta.Down(ref1, pid_b, "stopped"),
            ta.Down(ref2, ("svc", "b"), "stopped"),
        }
        with pytest.raises(trio.TooSlowError):
            await me.receive(timeout=0.05)
        ref4 = me.monitor(("svc", "b"))
        assert await me.receive(timeout=5) == ta.Down(ref4, ("svc", "b"), "noproc")


async def test_remote_watchers_are_told_when_a_local_actor_ends(pair: Pair) -> None:
    a, b, _, _ = pair
    pid_a = a.spawn(idle)
    async with b.actor() as me:
        ref = me.monitor(pid_a)
        a.exit(pid_a, "done")
        down = await me.receive(timeout=5)
        assert down == ta.Down(ref, pid_a, "done")


async def test_node_down_fires_links_monitors_and_pending_calls(pair: Pair) -> None:
    a, b, ra, rb = pair
    kv = await b.start_server(Kv)
    assert kv is not None
    other = b.spawn(idle)
    results: dict[str, Any] = {}

    async def pending_call() -> None:
        try:
            await a.call(kv, ("hang",), timeout=None)
        except ta.CallFailed as exc:
            results["call"] = exc.reason

    async with a.actor(trap_exits=True) as me, trio.open_nursery() as n:
        me.link(other)
        ref = me.monitor(kv)
        me.monitor_node("b")
        n.start_soon(pending_call)
        await trio.testing.wait_all_tasks_blocked()
        disconnect(ra, rb)
        got = [await me.receive(timeout=5) for _ in range(3)]
    assert ta.Exit(other, "noconnection") in got
    assert ta.Down(ref, kv, "noconnection") in got
    assert ta.NodeDown("b", "noconnection") in got
    assert results == {"call": ("nodedown", "b")}
    # While disconnected: link and monitor answer noconnection at once.
    async with a.actor(trap_exits=True) as me:
        ref = me.monitor(kv)
        assert me.receive_nowait() == ta.Down(ref, kv, "noconnection")
        me.link(kv)
        assert me.receive_nowait() == ta.Exit(kv, "noconnection")
        me.monitor_node("b")
        assert me.receive_nowait() == ta.NodeDown("b", "noconnection")


async def test_node_down_drops_monitors_held_by_the_lost_node(pair: Pair) -> None:
    a, b, ra, rb = pair
    pid_a = a.spawn(idle)
    async with b.actor() as me:
        me.monitor(pid_a)
        disconnect(ra, rb)
        ra.connected = rb.connected = True  # reconnected: the old monitor is gone
        a.exit(pid_a, "late")
        await trio.testing.wait_all_tasks_blocked()
        got = me.receive_nowait()  # only the noconnection Down from the loss
        assert got.reason == "noconnection"
        with pytest.raises(trio.WouldBlock):
            me.receive_nowait()


async def test_deliver_ignores_stale_and_unknown_targets(
    pair: Pair, caplog: pytest.LogCaptureFixture
) -> None:
    a, _, _, _ = pair
    caplog.set_level(logging.DEBUG, logger="trioactors")
    async with a.actor() as me:
        stale = ta.Pid(me.pid.node, me.pid.id, 0, me.pid.creation + 1)
        a.deliver(stale, "an earlier incarnation's")
        assert any("earlier incarnation" in r.getMessage() for r in caplog.records)
        a.deliver(ta.Pid("a", 99999, 0, me.pid.creation), "nobody")
        a.deliver_named("nobody", "x")
        # The Down signal of a monitor this actor does not hold is dropped...
        a.remote_down(me.pid, ta.Ref("b", 2, (1,)), ta.Pid("b", 1, 0, 2), "x")
        a.deliver(me.pid, "ok")
        assert me.receive_nowait() == "ok"
        with pytest.raises(trio.WouldBlock):
            me.receive_nowait()


async def test_a_users_down_value_is_an_ordinary_message(pair: Pair) -> None:
    a, b, _, _ = pair
    async with b.actor() as peer, a.actor() as me:
        # Signals cross the router as signals, so a `ta.Down` (or `ta.Exit`)
        # that an actor sends as data arrives as the message it is.
        fake = ta.Down(ta.Ref("a", 1, (7,)), me.pid, "made up")
        me.send(peer.pid, fake)
        me.send(peer.pid, ta.Exit(me.pid, "also data"))
        assert await peer.receive(timeout=5) == fake
        assert await peer.receive(timeout=5) == ta.Exit(me.pid, "also data")
