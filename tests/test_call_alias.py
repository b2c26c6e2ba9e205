"""Calls use aliases, like OTP 25's gen:call.

The reply goes to the waiting call, never through the caller's mailbox: a
reply that comes after `ta.CallTimeout` is dropped (for local and remote
callers), and waiting for the reply never looks at the unrelated messages
queued in the mailbox.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
import trio.testing

import trioactors as ta
from trioactors.cluster.node import Node


class Late(ta.GenServer):
    """Holds every call until told to answer; then tells `notify` it did."""

    async def init(self) -> None:
        self.pending: list[ta.Caller] = []

    async def handle_call(self, request: Any, caller: ta.Caller) -> Any:
        if request == "ping":
            return "pong"
        self.pending.append(caller)
        return ta.NO_REPLY

    async def handle_cast(self, request: Any) -> None:
        notify = request
        for caller in self.pending:
            self.reply(caller, "late")
        self.pending.clear()
        self.ctx.send(notify, "replied")


class Slow(ta.GenServer):
    """Answers by returning from handle_call, but only once `go` is set."""

    async def init(self, go: trio.Event) -> None:
        self.go = go

    async def handle_call(self, request: Any, caller: ta.Caller) -> Any:
        if request == "slow":
            await self.go.wait()
        return request


async def test_a_late_reply_is_dropped(
    system: ta.ActorSystem, autojump_clock: trio.testing.MockClock
) -> None:
    server = await system.start_server(Late)
    assert server is not None
    async with system.actor() as me:
        with pytest.raises(ta.CallTimeout):
            await me.call(server, "hold", timeout=1)
        me.cast(server, me.pid)
        # The late reply was sent before "replied": had it been queued, it
        # would come first.
        assert await me.receive(timeout=5) == "replied"
        with pytest.raises(trio.WouldBlock):
            me.receive_nowait()


async def test_a_late_return_from_handle_call_is_dropped(
    system: ta.ActorSystem, autojump_clock: trio.testing.MockClock
) -> None:
    go = trio.Event()
    server = await system.start_server(Slow, go)
    assert server is not None
    async with system.actor() as me:
        with pytest.raises(ta.CallTimeout):
            await me.call(server, "slow", timeout=1)
        go.set()
        # Served after the slow call: its reply has been sent by then.
        assert await me.call(server, "next") == "next"
        assert me.pending() == 0


async def test_the_reply_wait_does_not_look_at_queued_messages(
    system: ta.ActorSystem,
) -> None:
    looked = 0

    class Probe:
        """Counts how often a receive compares it with something."""

        def __eq__(self, other: object) -> bool:
            nonlocal looked
            looked += 1
            return False

        __hash__ = object.__hash__

    probes = [(Probe(), i) for i in range(20_000)]
    server = await system.start_server(Late)
    assert server is not None
    async with system.actor() as me:
        for msg in probes:
            me.send(me.pid, msg)
        assert await me.call(server, "ping") == "pong"
        assert looked == 0
        # The queue is untouched and in order.
        assert me.pending() == len(probes)
        assert [me.receive_nowait() for _ in range(3)] == probes[:3]


async def test_a_hand_written_reply_to_the_pid_still_answers(system: ta.ActorSystem) -> None:
    async def raw_server(ctx: ta.Context) -> None:
        while True:
            _tag, (frm, ref), request = await ctx.receive()
            ctx.send(frm, (ref, ("raw", request)))

    pid = system.spawn(raw_server)
    async with system.actor() as me:
        me.send(me.pid, "unrelated")
        assert await me.call(pid, 1) == ("raw", 1)
        assert me.receive_nowait() == "unrelated"


async def test_a_server_that_replies_then_ends_leaves_no_down(system: ta.ActorSystem) -> None:
    class OneShot(ta.GenServer):
        async def handle_call(self, request: Any, caller: ta.Caller) -> Any:
            self.reply(caller, request)
            self.stop("done")

    server = await system.start_server(OneShot)

    assert server is not None
    reasons: list[Any] = []

    async def join() -> None:
        reasons.append(await system.join(server))

    async with system.actor() as me, trio.open_nursery() as nursery:
        nursery.start_soon(join)
        await trio.testing.wait_all_tasks_blocked()
        assert await me.call(server, 7) == 7
    assert reasons == ["done"]
    # The monitor fired as the server ended; its Down was not left queued.
    with pytest.raises(trio.WouldBlock):
        me.receive_nowait()


# -- remote callers


@asynccontextmanager
async def _pair() -> AsyncIterator[tuple[Node, Node]]:
    async with (
        ta.open_node("alpha", cookie="c", epmd=None) as a,
        ta.open_node("beta", cookie="c", epmd=None) as b,
    ):
        await a.connect(f"{b.name}@{b.address[0]}:{b.address[1]}")
        yield a, b


async def test_a_late_reply_to_a_remote_caller_is_dropped() -> None:
    async with _pair() as (a, b):
        server = await b.start_server(Late, name="late")
        assert server is not None
        async with a.actor() as me:
            assert await me.call(server, "ping", timeout=5) == "pong"
            with pytest.raises(ta.CallTimeout):
                await me.call(("late", "beta"), "hold", timeout=0.2)
            me.cast(server, me.pid)
            # One connection, in order: the late reply was handled before "replied".
            assert await me.receive(timeout=5) == "replied"
            with pytest.raises(trio.WouldBlock):
                me.receive_nowait()


async def test_a_remote_reply_reaches_a_caller_with_a_full_mailbox() -> None:
    async with _pair() as (a, b):
        server = await b.start_server(Late)
        assert server is not None
        async with a.actor() as me:
            for i in range(100):
                me.send(me.pid, i)
            assert await me.call(server, "ping", timeout=5) == "pong"
            assert [me.receive_nowait() for _ in range(100)] == list(range(100))
