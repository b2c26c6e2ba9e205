"""Exit signals take effect at once, and link/1 to a dead pid, as in Erlang/OTP 25.

Checked against real `erl`: after ``exit(self(), foo)`` nothing of the
process runs; a process told to end never takes another message; link/1 to a
dead pid raises ``noproc`` unless the caller traps exits, in which case
``{'EXIT', Pid, noproc}`` arrives.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import trio
import trio.testing

import trioactors as ta


def _receive_kinds() -> list[tuple[str, dict[str, Any]]]:
    matching: Callable[[Any], bool] = lambda m: True  # noqa: E731
    return [
        ("timeout", {"timeout": 60}),
        ("match", {"match": matching}),
        ("match+timeout", {"match": matching, "timeout": 60}),
        ("plain", {}),
    ]


@pytest.mark.parametrize("signal", ["shutdown", "kill"])
@pytest.mark.parametrize(("kind", "kw"), _receive_kinds())
async def test_no_message_after_an_exit_signal_is_handled(
    system: ta.ActorSystem, signal: str, kind: str, kw: dict[str, Any]
) -> None:
    handled: list[Any] = []

    async def target(ctx: ta.Context) -> None:
        while True:
            handled.append(await ctx.receive(**kw))

    pid = system.spawn(target)
    await trio.testing.wait_all_tasks_blocked()
    # "before" is handed to the parked receiver, so it is scheduled (with a
    # message) when the signal comes; "after" is queued behind the signal.
    system.send(pid, "before")
    system.exit(pid, signal)
    system.send(pid, "after")
    assert await system.join(pid) == ("killed" if signal == "kill" else signal)
    assert handled == ["before"]


async def test_saved_messages_are_not_handled_after_an_exit_signal(
    system: ta.ActorSystem,
) -> None:
    handled: list[Any] = []

    async def target(ctx: ta.Context) -> None:
        handled.append(await ctx.receive(match=lambda m: m == "wanted"))
        while True:
            handled.append(await ctx.receive())

    pid = system.spawn(target)
    await trio.testing.wait_all_tasks_blocked()
    system.send(pid, "skipped")
    await trio.testing.wait_all_tasks_blocked()  # "skipped" waits in the save queue
    system.send(pid, "wanted")  # handed to the parked receive
    system.exit(pid, "shutdown")
    assert await system.join(pid) == "shutdown"
    # Once told to end, not even a message saved earlier is handed out.
    assert handled == ["wanted"]


async def test_receive_nowait_takes_nothing_after_an_exit_signal(
    system: ta.ActorSystem,
) -> None:
    took: list[Any] = []

    async def target(ctx: ta.Context) -> None:
        took.append(await ctx.receive())
        try:
            took.append(ctx.receive_nowait())
        except trio.WouldBlock:
            took.append("nothing")
        await trio.sleep_forever()

    pid = system.spawn(target)
    await trio.testing.wait_all_tasks_blocked()
    system.send(pid, "before")
    system.exit(pid, "shutdown")
    system.send(pid, "after")
    assert await system.join(pid) == "shutdown"
    assert took == ["before", "nothing"]


@pytest.mark.parametrize(("reason", "expected"), [("foo", "foo"), ("normal", "normal")])
async def test_exit_self_by_pid_ends_at_once(
    system: ta.ActorSystem, reason: str, expected: str
) -> None:
    ran: list[str] = []

    async def actor(ctx: ta.Context) -> None:
        ctx.exit(ctx.pid, reason)
        ran.append("after exit")
        await trio.lowlevel.checkpoint()
        ran.append("after checkpoint")

    assert await system.join(system.spawn(actor)) == expected
    assert ran == []


async def test_exit_self_by_pid_kill_ends_a_trapping_actor_at_once(
    system: ta.ActorSystem,
) -> None:
    ran: list[str] = []

    async def actor(ctx: ta.Context) -> None:
        ctx.trap_exits = True
        ctx.exit(ctx.pid, "kill")
        ran.append("after exit")

    assert await system.join(system.spawn(actor)) == "killed"
    assert ran == []


async def test_exit_self_by_pid_while_trapping_is_a_message(system: ta.ActorSystem) -> None:
    got: list[Any] = []

    async def actor(ctx: ta.Context) -> None:
        ctx.trap_exits = True
        ctx.exit(ctx.pid, "foo")
        got.append(await ctx.receive(timeout=5))

    assert await system.join(system.spawn(actor)) == "normal"
    assert len(got) == 1 and isinstance(got[0], ta.Exit) and got[0].reason == "foo"


async def test_exit_self_by_pid_in_an_actor_block(system: ta.ActorSystem) -> None:
    ran: list[str] = []
    with pytest.raises(ta.ActorExited) as info:
        async with system.actor() as me:
            me.exit(me.pid, "bye")
            ran.append("after exit")
    assert info.value.reason == "bye"
    assert ran == []


async def _dead_pid(system: ta.ActorSystem) -> ta.Pid:
    async def quick(ctx: ta.Context) -> None:
        pass

    pid = system.spawn(quick)
    await system.join(pid)
    return pid


async def test_link_to_a_dead_pid_raises_noproc_when_not_trapping(
    system: ta.ActorSystem,
) -> None:
    dead = await _dead_pid(system)
    outcome: list[str] = []

    async def linker(ctx: ta.Context) -> None:
        try:
            ctx.link(dead)
        except ta.NoProc:
            outcome.append("noproc")
        await trio.lowlevel.checkpoint()
        outcome.append("still running")

    # Erlang: catch link(Dead) gives {'EXIT', {noproc, _}}, and no exit signal follows.
    assert await system.join(system.spawn(linker)) == "normal"
    assert outcome == ["noproc", "still running"]


async def test_link_to_a_dead_pid_uncaught_crashes_with_noproc(
    system: ta.ActorSystem, crash_log: pytest.LogCaptureFixture
) -> None:
    dead = await _dead_pid(system)

    async def linker(ctx: ta.Context) -> None:
        ctx.link(dead)

    reason = await system.join(system.spawn(linker))
    assert isinstance(reason, ta.Crash) and reason.type == "NoProc"


async def test_link_to_a_dead_pid_while_trapping_delivers_exit(system: ta.ActorSystem) -> None:
    dead = await _dead_pid(system)
    async with system.actor(trap_exits=True) as me:
        me.link(dead)
        assert await me.receive(timeout=5) == ta.Exit(dead, "noproc")
        with pytest.raises(trio.WouldBlock):
            me.receive_nowait()
