"""The local runtime: spawn, send/receive, exit signals, links, monitors,
registry, timers, system.actor(), shutdown."""

from __future__ import annotations

import functools
import logging
import operator
from typing import Any

import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

import trioactors as ta


def crashes(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "trioactors" and "crashed" in r.getMessage()]


async def echo(ctx: ta.Context) -> None:
    while True:
        frm, msg = await ctx.receive()
        ctx.send(frm, msg)


async def idle(ctx: ta.Context) -> None:
    await trio.sleep_forever()


async def collect(ctx: ta.Context, n: int, out: list[Any]) -> None:
    for _ in range(n):
        out.append(await ctx.receive())


# ------------------------------------------------------------------ spawn, send, receive


async def test_pid_shape_and_echo(system: ta.ActorSystem) -> None:
    pid = system.spawn(echo)
    assert system.is_local(pid) and pid.node == "nonode@nohost" and pid.serial == 0
    assert pid.creation == system.creation
    assert str(pid) == f"<nonode@nohost.{pid.id}.0>"
    assert system.is_alive(pid)
    async with system.actor() as me:
        me.send(pid, (me.pid, "hi"))
        assert await me.receive(timeout=5) == "hi"
    assert pid in system.processes()


async def test_pids_are_absolute_and_differ_between_systems() -> None:
    async with ta.open_actor_system(creation=7) as a, ta.open_actor_system() as b:
        pa = [a.spawn(idle) for _ in range(3)]
        pb = b.spawn(idle)
        assert len(set(pa)) == 3 and all(p.creation == 7 for p in pa)
        # Two local systems of one program never make the same pid.
        assert b.creation != a.creation and pb not in pa
        assert a.is_local(pa[0]) and not b.is_local(pa[0]) and not a.is_local(pb)
        # The same id of another creation is not this system's actor.
        assert not a.is_alive(ta.Pid(pa[0].node, pa[0].id, 0, 8))
        assert not b.is_alive(pa[0])


async def test_message_for_other_incarnation_is_dropped() -> None:
    async with ta.open_actor_system(creation=3) as system, system.actor() as me:
        stale = ta.Pid(me.pid.node, me.pid.id, 0, 2)
        system.send(stale, "lost")
        system.send(me.pid, "kept")
        assert await me.receive(timeout=5) == "kept"
        with pytest.raises(trio.WouldBlock):
            me.receive_nowait()


async def test_send_to_dead_pid_or_unknown_name_never_raises(system: ta.ActorSystem) -> None:
    pid = system.spawn(idle)
    system.exit(pid, "kill")
    assert await system.join(pid) == "killed"
    assert await system.join(pid) == "noproc"
    system.send(pid, "x")
    system.send("nobody", "x")
    system.send(("nobody", "nonode"), "x")
    with pytest.raises(TypeError, match="destination"):
        system.send(42, "x")  # type: ignore[arg-type]


async def test_messages_arrive_in_order(system: ta.ActorSystem) -> None:
    out: list[Any] = []
    pid = system.spawn(collect, 1000, out)
    for i in range(1000):
        system.send(pid, i)
    assert await system.join(pid) == "normal"
    assert out == list(range(1000))


async def test_receive_timeout(system: ta.ActorSystem, autojump_clock: Any) -> None:
    async with system.actor() as me:
        t0 = trio.current_time()
        with pytest.raises(trio.TooSlowError):
            await me.receive(timeout=3.0)
        assert trio.current_time() - t0 == pytest.approx(3.0)
        with pytest.raises(trio.TooSlowError):
            await me.receive(timeout=1.0, match=lambda m: m == "never")
        # A queued message is returned even with a zero timeout.
        me.send(me.pid, "now")
        assert await me.receive(timeout=0) == "now"


async def test_selective_receive_keeps_order(system: ta.ActorSystem) -> None:
    async with system.actor() as me:
        for m in [1, "a", 2, "b", 3]:
            me.send(me.pid, m)
        assert await me.receive(match=lambda m: isinstance(m, str)) == "a"
        assert await me.receive(match=lambda m: m == 3) == 3
        assert [await me.receive() for _ in range(3)] == [1, 2, "b"]

        async def later() -> None:
            await trio.testing.wait_all_tasks_blocked()
            me.send(me.pid, "skip")
            me.send(me.pid, "want")

        async with trio.open_nursery() as n:
            n.start_soon(later)
            assert await me.receive(match=lambda m: m == "want") == "want"
        assert me.receive_nowait() == "skip"
        assert me.pending() == 0


async def test_receive_nowait(system: ta.ActorSystem) -> None:
    async with system.actor() as me:
        with pytest.raises(trio.WouldBlock):
            me.receive_nowait()
        me.send(me.pid, 1)
        me.send(me.pid, 2)
        with pytest.raises(trio.WouldBlock):
            me.receive_nowait(match=lambda m: m == 3)
        assert me.receive_nowait(match=lambda m: m == 2) == 2
        assert me.receive_nowait() == 1


async def test_two_tasks_receiving_on_one_mailbox_is_refused(system: ta.ActorSystem) -> None:
    async with system.actor() as me, trio.open_nursery() as n:
        n.start_soon(me.receive)
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(trio.BusyResourceError):
            await me.receive()
        n.cancel_scope.cancel()


async def test_busy_actor_does_not_starve_others(system: ta.ActorSystem) -> None:
    events: list[str] = []
    done = trio.Event()

    async def busy(ctx: ta.Context, n: int) -> None:
        for _ in range(n):
            await ctx.receive()
            events.append("busy")
        done.set()

    async def other() -> None:
        while not done.is_set():
            events.append("other")
            await trio.lowlevel.checkpoint()

    pid = system.spawn(busy, 5000)
    for i in range(5000):
        system.send(pid, i)
    async with trio.open_nursery() as n:
        n.start_soon(other)
        await system.join(pid)
    first, last = events.index("busy"), len(events) - 1 - events[::-1].index("busy")
    # The other task ran many times while the busy actor drained its queue.
    assert events[first:last].count("other") >= 10


# ------------------------------------------------------------------ exits and crashes


async def test_normal_exit_and_join(system: ta.ActorSystem) -> None:
    async def done(ctx: ta.Context) -> None:
        return None

    assert await system.join(system.spawn(done)) == "normal"


async def test_crash_is_reason_logged_once_and_contained(
    system: ta.ActorSystem, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="trioactors")

    async def bad(ctx: ta.Context) -> None:
        raise ValueError("bad input")

    reason = await system.join(system.spawn(bad))
    assert isinstance(reason, ta.Crash)
    assert reason == ta.Crash("ValueError", "bad input")
    assert "Traceback" in reason.traceback and "bad input" in reason.traceback
    assert str(reason) == "ValueError: bad input"
    assert len(crashes(caplog)) == 1


async def test_crash_in_actor_nursery_is_a_crash(system: ta.ActorSystem) -> None:
    async def bad(ctx: ta.Context) -> None:
        async def child() -> None:
            raise KeyError("k")

        async with trio.open_nursery() as n:
            n.start_soon(child)

    reason = await system.join(system.spawn(bad))
    assert isinstance(reason, ta.Crash) and reason.type == "ExceptionGroup"
    assert "KeyError" in reason.traceback


async def test_exit_with_custom_reason(system: ta.ActorSystem) -> None:
    async def quit_(ctx: ta.Context) -> None:
        try:
            ctx.exit({"why": "done"})
        except Exception:  # pragma: no cover - ctx.exit must not be catchable as Exception
            pytest.fail("exit was caught by except Exception")

    assert await system.join(system.spawn(quit_)) == {"why": "done"}


async def test_exit_signal_semantics(system: ta.ActorSystem) -> None:
    # "normal" is ignored by a non-trapping actor.
    pid = system.spawn(idle)
    system.exit(pid, "normal")
    await trio.testing.wait_all_tasks_blocked()
    assert system.is_alive(pid)
    # any other reason ends it with that reason.
    system.exit(pid, "shutdown")
    assert await system.join(pid) == "shutdown"

    pid = system.spawn(idle)
    async with system.actor() as me:
        ref = me.monitor(pid)
        system.exit(pid, ("custom", 1))
        assert await me.receive(timeout=5) == ta.Down(ref, pid, ("custom", 1))


async def test_trapped_exits_arrive_as_messages_but_kill_cannot_be_trapped(
    system: ta.ActorSystem,
) -> None:
    got: list[Any] = []

    async def trapper(ctx: ta.Context) -> None:
        ctx.trap_exits = True
        while True:
            got.append(await ctx.receive())

    pid = system.spawn(trapper)
    await trio.testing.wait_all_tasks_blocked()
    system.exit(pid, "shutdown")
    system.exit(pid, "normal")
    await trio.testing.wait_all_tasks_blocked()
    assert got == [ta.Exit(system.pid, "shutdown"), ta.Exit(system.pid, "normal")]
    assert system.is_alive(pid)
    async with system.actor() as me:
        ref = me.monitor(pid)
        me.exit(pid, "kill")
        assert await me.receive(timeout=5) == ta.Down(ref, pid, "killed")


async def test_kill_stops_a_busy_actor_before_its_next_message(system: ta.ActorSystem) -> None:
    seen: list[int] = []

    async def busy(ctx: ta.Context) -> None:
        while True:
            msg = await ctx.receive()
            seen.append(msg)
            if msg == 10:
                ctx.system.exit(ctx.pid, "kill")

    pid = system.spawn(busy)
    for i in range(100):
        system.send(pid, i)
    assert await system.join(pid) == "killed"
    assert seen == list(range(11))


async def test_exit_self_normal_ends_actor(system: ta.ActorSystem) -> None:
    async def quitter(ctx: ta.Context) -> None:
        ctx.exit(ctx.pid, "normal")
        await trio.sleep_forever()

    pid = system.spawn(quitter)
    async with system.actor() as me:
        ref = me.monitor(pid)
        assert (await me.receive(timeout=5)).reason in ("normal", "noproc")
        me.demonitor(ref)
    assert not system.is_alive(pid)


# ------------------------------------------------------------------ links


async def test_link_propagates_crash_but_not_normal_exit(system: ta.ActorSystem) -> None:
    async def parent(ctx: ta.Context, crash: bool) -> None:
        async def child(c: ta.Context) -> None:
            if crash:
                raise RuntimeError("child failed")

        ctx.spawn(child, link=True)
        await trio.sleep_forever()

    p1 = system.spawn(parent, True)
    reason = await system.join(p1)
    assert reason == ta.Crash("RuntimeError", "child failed")

    p2 = system.spawn(parent, False)
    await trio.testing.wait_all_tasks_blocked()
    assert system.is_alive(p2)


async def test_trapping_link_gets_exit_message(system: ta.ActorSystem) -> None:
    async with system.actor(trap_exits=True) as me:

        async def child(c: ta.Context) -> None:
            c.exit("boom")

        pid = me.spawn(child, link=True)
        assert await me.receive(timeout=5) == ta.Exit(pid, "boom")
        # normal exits of linked actors arrive too when trapping
        pid2 = me.spawn(idle, link=True)
        system.exit(pid2, "kill")
        assert await me.receive(timeout=5) == ta.Exit(pid2, "killed")


async def test_unlink_prevents_exit_signal(system: ta.ActorSystem) -> None:
    async with system.actor(trap_exits=True) as me:
        pid = system.spawn(idle)
        me.link(pid)
        me.unlink(pid)
        me.unlink(pid)  # twice is fine
        system.exit(pid, "kill")
        ref = me.monitor(pid)
        assert await me.receive(timeout=5) == ta.Down(ref, pid, "killed")
        with pytest.raises(trio.WouldBlock):
            me.receive_nowait()


async def test_link_to_dead_pid_gives_noproc(system: ta.ActorSystem) -> None:
    pid = system.spawn(idle)
    system.exit(pid, "kill")
    await system.join(pid)
    async with system.actor(trap_exits=True) as me:
        me.link(pid)
        assert await me.receive(timeout=5) == ta.Exit(pid, "noproc")
        me.link(me.pid)  # linking to oneself is a no-op
    async with system.actor() as me2:
        # Not trapping: link/1 raises noproc, as in Erlang (tests/test_signals.py).
        with pytest.raises(ta.NoProc):
            me2.link(pid)


async def test_actor_block_is_ended_by_a_linked_crash(system: ta.ActorSystem) -> None:
    async def crasher(ctx: ta.Context) -> None:
        await ctx.receive()
        raise RuntimeError("x")

    with pytest.raises(ta.ActorExited) as info:
        async with system.actor() as me:
            pid = me.spawn(crasher, link=True)
            me.send(pid, "go")
            await trio.sleep_forever()
    assert isinstance(info.value.reason, ta.Crash)


async def test_actor_block_exception_reaches_links_as_crash(system: ta.ActorSystem) -> None:
    async def watcher(ctx: ta.Context, pid: ta.Pid, out: list[Any]) -> None:
        ctx.trap_exits = True
        ctx.link(pid)
        ctx.send(pid, "linked")
        out.append(await ctx.receive())

    out: list[Any] = []
    with pytest.raises(KeyError):
        async with system.actor(name="main") as me:
            w = system.spawn(watcher, me.pid, out)
            await me.receive()
            raise KeyError("oops")
    await system.join(w)
    assert out[0].pid == me.pid and out[0].reason.type == "KeyError"
    assert system.whereis("main") is None


# ------------------------------------------------------------------ monitors


async def test_monitor_down_reasons(system: ta.ActorSystem) -> None:
    async def stopper(ctx: ta.Context) -> None:
        reason = await ctx.receive()
        if reason == "crash":
            raise OSError("io")
        ctx.exit(reason)

    async with system.actor() as me:
        for reason in ["normal", "shutdown", "crash"]:
            pid = system.spawn(stopper)
            ref = me.monitor(pid)
            system.send(pid, reason)
            down = await me.receive(timeout=5)
            assert down.ref == ref and down.pid == pid
            if reason == "crash":
                assert down.reason == ta.Crash("OSError", "io")
            else:
                assert down.reason == reason


async def test_monitor_dead_pid_or_name_gives_noproc_at_once(system: ta.ActorSystem) -> None:
    async with system.actor() as me:
        pid = system.spawn(idle)
        system.exit(pid, "kill")
        await system.join(pid)
        ref = me.monitor(pid)
        assert me.receive_nowait() == ta.Down(ref, pid, "noproc")
        ref = me.monitor("ghost")
        # A name is reported as (name, node), as Erlang's {Name, Node}.
        assert me.receive_nowait() == ta.Down(ref, ("ghost", system.node_name), "noproc")


async def test_monitor_by_name_and_demonitor(system: ta.ActorSystem) -> None:
    async with system.actor() as me:
        pid = system.spawn(idle, name="svc")
        ref = me.monitor("svc")
        ref2 = me.monitor(pid)
        assert ref != ref2
        assert me.demonitor(ref2) is True
        assert me.demonitor(ref2) is False
        system.exit(pid, "bye")
        assert await me.receive(timeout=5) == ta.Down(ref, ("svc", system.node_name), "bye")
        with pytest.raises(trio.WouldBlock):
            me.receive_nowait()


async def test_demonitor_flush_removes_delivered_down(system: ta.ActorSystem) -> None:
    async with system.actor() as me:
        pid = system.spawn(idle)
        ref = me.monitor(pid)
        system.exit(pid, "kill")
        await trio.testing.wait_all_tasks_blocked()
        me.send(me.pid, "other")
        assert me.demonitor(ref, flush=True) is False
        assert me.receive_nowait() == "other"
        with pytest.raises(trio.WouldBlock):
            me.receive_nowait()


async def test_join_of_dead_pid_is_noproc(system: ta.ActorSystem) -> None:
    never = ta.Pid(system.node_name, 999, 0, system.creation)
    assert await system.join(never) == "noproc"


# ------------------------------------------------------------------ registry


async def test_registry(system: ta.ActorSystem) -> None:
    pid = system.spawn(echo, name="echo")
    assert system.whereis("echo") == pid
    assert system.registered() == ["echo"]
    with pytest.raises(ta.NameTaken):
        system.spawn(idle, name="echo")
    other = system.spawn(idle)
    with pytest.raises(ta.NameTaken):
        system.register("echo", other)
    with pytest.raises(ta.NameTaken):
        system.register("echo2", pid)  # one name per process
    async with system.actor() as me:
        me.send("echo", (me.pid, 1))
        me.send(("echo", "nonode@nohost"), (me.pid, 2))  # without a router: local
        assert [await me.receive(timeout=5) for _ in range(2)] == [1, 2]
        me.register("me")
        assert system.whereis("me") == me.pid
    assert system.whereis("me") is None  # gone with its actor
    assert system.unregister("echo") is True
    assert system.unregister("echo") is False
    system.register("echo", other)
    system.exit(other, "kill")
    await system.join(other)
    assert system.whereis("echo") is None
    with pytest.raises(ta.NoProc):
        system.register("late", other)


async def test_name_is_free_again_after_the_actor_ends(system: ta.ActorSystem) -> None:
    pid = system.spawn(idle, name="x")
    system.exit(pid, "kill")
    await system.join(pid)
    assert system.spawn(idle, name="x") != pid


# ------------------------------------------------------------------ timers


async def test_send_after_and_cancel_timer(system: ta.ActorSystem, autojump_clock: Any) -> None:
    async with system.actor() as me:
        t0 = trio.current_time()
        system.send_after(2.0, me.pid, "late")
        t1 = me.send_after(1.0, me.pid, "early")
        t2 = system.send_after(1.5, me.pid, "cancelled")
        assert system.cancel_timer(t2) is True
        assert system.cancel_timer(t2) is False
        assert await me.receive() == "early"
        assert trio.current_time() - t0 == pytest.approx(1.0)
        assert system.cancel_timer(t1) is False  # already fired
        assert await me.receive() == "late"
        assert trio.current_time() - t0 == pytest.approx(2.0)
        with pytest.raises(trio.TooSlowError):
            await me.receive(timeout=5)


# ------------------------------------------------------------------ shutdown


async def test_leaving_the_system_stops_every_actor_and_runs_cleanup() -> None:
    cleaned: list[str] = []

    async def worker(ctx: ta.Context, tag: str) -> None:
        try:
            await trio.sleep_forever()
        finally:
            cleaned.append(tag)

    async with ta.open_actor_system() as system:
        for tag in "abc":
            system.spawn(worker, tag)
        await trio.testing.wait_all_tasks_blocked()
    assert sorted(cleaned) == ["a", "b", "c"]
    with pytest.raises(ta.SystemClosed):
        system.spawn(idle)


async def test_trapping_actor_that_ignores_shutdown_is_killed(autojump_clock: Any) -> None:
    async def stubborn(ctx: ta.Context) -> None:
        ctx.trap_exits = True
        while True:
            await ctx.receive()

    t0 = trio.current_time()
    async with ta.open_actor_system(shutdown_timeout=4.0) as system:
        pid = system.spawn(stubborn)
        await trio.testing.wait_all_tasks_blocked()
        t0 = trio.current_time()
    assert trio.current_time() - t0 == pytest.approx(4.0)
    assert not system.is_alive(pid)


async def test_user_exception_is_reraised_unchanged_after_shutdown() -> None:
    stopped = trio.Event()

    async def worker(ctx: ta.Context) -> None:
        try:
            await trio.sleep_forever()
        finally:
            stopped.set()

    with pytest.raises(ZeroDivisionError):
        async with ta.open_actor_system() as system:
            system.spawn(worker)
            await trio.testing.wait_all_tasks_blocked()
            1 / 0  # noqa: B018
    assert stopped.is_set()


async def test_outer_cancellation_shuts_down_cleanly() -> None:
    stopped = trio.Event()

    async def worker(ctx: ta.Context) -> None:
        try:
            await trio.sleep_forever()
        finally:
            stopped.set()

    with trio.move_on_after(0.5) as scope:
        async with ta.open_actor_system() as system:
            system.spawn(worker)
            await trio.sleep_forever()
    assert scope.cancelled_caught and stopped.is_set()


async def test_monitor_node_without_router_is_nodedown_at_once(system: ta.ActorSystem) -> None:
    async with system.actor() as me:
        me.monitor_node("beta")
        assert me.receive_nowait() == ta.NodeDown("beta", "noconnection")
        remote = ta.Pid("beta", 5, 0, 1)
        ref = me.monitor(remote)
        assert me.receive_nowait() == ta.Down(ref, remote, "noconnection")
        me.send(remote, "dropped")  # never raises
        with pytest.raises(ta.ActorExited) as info:
            async with system.actor() as other:
                other.link(remote)
                await trio.sleep_forever()
        assert info.value.reason == "noconnection"


async def test_error_in_cleanup_while_stopping_is_reported(
    system: ta.ActorSystem, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="trioactors")

    async def messy(ctx: ta.Context) -> None:
        try:
            await trio.sleep_forever()
        finally:
            raise OSError("cleanup failed")

    pid = system.spawn(messy)
    await trio.testing.wait_all_tasks_blocked()
    system.exit(pid, "shutdown")
    assert await system.join(pid) == ta.Crash("OSError", "cleanup failed")
    assert len(crashes(caplog)) == 1
    # A kill stays a kill whatever the cleanup does.
    pid = system.spawn(messy)
    await trio.testing.wait_all_tasks_blocked()
    system.exit(pid, "kill")
    assert await system.join(pid) == "killed"


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(min_value=0, max_value=5), max_size=30),
    st.lists(st.integers(min_value=0, max_value=5), max_size=10),
)
def test_selective_receive_matches_a_model(msgs: list[int], wanted: list[int]) -> None:
    """Each receive(match=) takes the oldest matching message; the rest keep
    their order (checked against a list model)."""

    async def scenario() -> None:
        async with ta.open_actor_system() as system, system.actor() as me:
            model = list(msgs)
            for m in msgs:
                me.send(me.pid, m)
            for w in wanted:
                if w in model:
                    model.remove(w)
                    assert await me.receive(match=functools.partial(operator.eq, w)) == w
                else:
                    with pytest.raises(trio.WouldBlock):
                        me.receive_nowait(match=functools.partial(operator.eq, w))
            assert [me.receive_nowait() for _ in range(len(model))] == model
            assert me.pending() == 0

    trio.run(scenario)


async def test_spawn_from_an_actor_with_name_and_parent(system: ta.ActorSystem) -> None:
    got: list[Any] = []

    async def child(ctx: ta.Context) -> None:
        got.append(ctx.parent)

    async with system.actor() as me:
        pid = me.spawn(child, name="kid")
        assert system.whereis("kid") == pid
        await system.join(pid)
        assert got == [me.pid]
        assert system.whereis("kid") is None


async def test_timers_and_spawn_refused_after_shutdown() -> None:
    async with ta.open_actor_system() as system:
        pass
    with pytest.raises(ta.SystemClosed):
        system.send_after(1, "x", "y")
    with pytest.raises(ta.SystemClosed):
        await system.start_server(ta.GenServer)
