"""Supervisor: ordered start, reverse stop, strategies, restart types,
intensity, shutdown timeouts, nesting, start failures."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

import trioactors as ta


async def worker(ctx: ta.Context, tag: str, log: list[tuple[str, str]]) -> None:
    """Logs start/stop; exits with whatever reason it is sent ("crash" raises)."""
    log.append(("start", tag))
    try:
        while True:
            msg = await ctx.receive()
            if msg == "crash":
                raise RuntimeError(f"{tag} crashed")
            if isinstance(msg, tuple) and msg[0] == "exit":
                ctx.exit(msg[1])
    finally:
        log.append(("stop", tag))


class Server(ta.GenServer):
    trap_exits = True  # so that a shutdown runs terminate, as in OTP

    async def init(self, tag: str, log: list[tuple[str, str]]) -> None:
        self.tag, self.log = tag, log
        log.append(("start", tag))

    async def handle_call(self, request: Any, caller: ta.Caller) -> Any:
        if request == "crash":
            raise RuntimeError("server crashed")
        return (self.tag, request)

    async def terminate(self, reason: Any) -> None:
        self.log.append(("stop", self.tag))


def spec(tag: str, log: list[tuple[str, str]], **kw: Any) -> ta.ChildSpec:
    return ta.ChildSpec(tag, worker, args=(tag, log), **kw)


def pids(system: ta.ActorSystem, sup: Any) -> dict[Any, Any]:
    return {cid: pid for cid, pid, _ in system.which_children(sup)}


async def crash_and_wait(system: ta.ActorSystem, sup: Any, cid: str, how: Any = "crash") -> None:
    old = pids(system, sup)[cid]
    assert old is not None
    system.send(old, how)
    await system.join(old)
    await trio.testing.wait_all_tasks_blocked()


async def test_ordered_start_which_children_and_reverse_stop() -> None:
    log: list[tuple[str, str]] = []
    async with ta.open_actor_system() as system:
        sup = await system.start_supervisor(
            [spec("a", log), ta.ChildSpec("srv", Server, args=("srv", log)), spec("c", log)],
            name="top",
        )
        assert system.whereis("top") == sup
        children = system.which_children("top")
        assert [(cid, r) for cid, _, r in children] == [
            ("a", "permanent"),
            ("srv", "permanent"),
            ("c", "permanent"),
        ]
        assert all(isinstance(p, ta.Pid) and system.is_alive(p) for _, p, _ in children)
        srv = children[1][1]
        assert isinstance(srv, ta.Pid)
        assert await system.call(srv, "hi") == ("srv", "hi")
        # which_children also answers as a call (for remote callers).
        assert await system.call(sup, "which_children") == children
        await trio.testing.wait_all_tasks_blocked()
        assert log == [("start", "a"), ("start", "srv"), ("start", "c")]
        log.clear()
    assert log == [("stop", "c"), ("stop", "srv"), ("stop", "a")]


async def test_one_for_one(system: ta.ActorSystem) -> None:
    log: list[tuple[str, str]] = []
    sup = await system.start_supervisor([spec("a", log), spec("b", log), spec("c", log)])
    await trio.testing.wait_all_tasks_blocked()
    before = pids(system, sup)
    log.clear()
    await crash_and_wait(system, sup, "b")
    after = pids(system, sup)
    assert after["a"] == before["a"] and after["c"] == before["c"]
    assert after["b"] != before["b"] and system.is_alive(after["b"])
    assert log == [("stop", "b"), ("start", "b")]


async def test_one_for_all_stops_old_copies_before_restarting(system: ta.ActorSystem) -> None:
    log: list[tuple[str, str]] = []
    sup = await system.start_supervisor(
        [spec("a", log), spec("b", log), spec("c", log)], strategy="one_for_all"
    )
    await trio.testing.wait_all_tasks_blocked()
    before = pids(system, sup)
    log.clear()
    await crash_and_wait(system, sup, "b")
    after = pids(system, sup)
    assert all(after[k] != before[k] for k in "abc")
    assert not any(system.is_alive(p) for p in before.values() if p is not None)
    # b died, then the others were stopped in reverse order, then all restarted in order.
    assert log == [
        ("stop", "b"),
        ("stop", "c"),
        ("stop", "a"),
        ("start", "a"),
        ("start", "b"),
        ("start", "c"),
    ]


async def test_rest_for_one(system: ta.ActorSystem) -> None:
    log: list[tuple[str, str]] = []
    sup = await system.start_supervisor(
        [spec("a", log), spec("b", log), spec("c", log), spec("d", log)],
        strategy="rest_for_one",
    )
    await trio.testing.wait_all_tasks_blocked()
    before = pids(system, sup)
    log.clear()
    await crash_and_wait(system, sup, "b")
    after = pids(system, sup)
    assert after["a"] == before["a"]
    assert all(after[k] != before[k] for k in "bcd")
    assert log == [
        ("stop", "b"),
        ("stop", "d"),
        ("stop", "c"),
        ("start", "b"),
        ("start", "c"),
        ("start", "d"),
    ]


async def test_restart_types(system: ta.ActorSystem) -> None:
    log: list[tuple[str, str]] = []
    sup = await system.start_supervisor(
        [
            spec("perm", log),
            spec("trans", log, restart="transient"),
            spec("trans2", log, restart="transient"),
            spec("temp", log, restart="temporary"),
        ],
        max_restarts=10,
    )
    await trio.testing.wait_all_tasks_blocked()
    before = pids(system, sup)
    await crash_and_wait(system, sup, "perm", ("exit", "normal"))
    await crash_and_wait(system, sup, "trans", ("exit", "shutdown"))
    await crash_and_wait(system, sup, "trans2", "crash")
    await crash_and_wait(system, sup, "temp", "crash")
    after = pids(system, sup)
    assert after["perm"] not in (None, before["perm"])  # permanent: even after normal
    assert after["trans"] is None  # transient: not after shutdown/normal
    assert after["trans2"] not in (None, before["trans2"])  # transient: after a crash
    assert "temp" not in after  # temporary: never, and forgotten
    assert system.which_children(sup)[1] == ("trans", None, "transient")


async def test_restart_intensity(system: ta.ActorSystem, autojump_clock: Any) -> None:
    log: list[tuple[str, str]] = []
    sup = await system.start_supervisor(
        [spec("a", log), spec("b", log)], max_restarts=2, max_seconds=10.0
    )
    await trio.testing.wait_all_tasks_blocked()
    async with system.actor() as me:
        ref = me.monitor(sup)
        # Restarts spread wider than the window never add up.
        for _ in range(5):
            await crash_and_wait(system, sup, "a")
            await trio.sleep(6.0)
        assert system.is_alive(sup)
        await trio.sleep(5.0)  # the window is empty again
        log.clear()
        # Three within the window: the third is one too many.
        await crash_and_wait(system, sup, "a")
        await crash_and_wait(system, sup, "b")
        assert system.is_alive(sup)
        await crash_and_wait(system, sup, "a")
        assert await me.receive(timeout=5) == ta.Down(ref, sup, "shutdown")
    # The supervisor stopped its remaining child before giving up.
    assert log[-1] == ("stop", "b")
    assert system.processes() == []


async def test_shutdown_timeout_kills_a_child_that_ignores_shutdown(
    system: ta.ActorSystem, autojump_clock: Any
) -> None:
    stopped: list[Any] = []

    async def stubborn(ctx: ta.Context) -> None:
        ctx.trap_exits = True
        try:
            while True:
                await ctx.receive()  # ignores Exit(sup, "shutdown")
        finally:
            stopped.append(trio.current_time())

    async def polite(ctx: ta.Context) -> None:
        try:
            await trio.sleep_forever()
        finally:
            stopped.append("polite")

    sup = await system.start_supervisor(
        [ta.ChildSpec("polite", polite), ta.ChildSpec("stubborn", stubborn, shutdown=3.0)]
    )
    await trio.testing.wait_all_tasks_blocked()
    stubborn_pid = pids(system, sup)["stubborn"]
    async with system.actor() as me:
        ref = me.monitor(stubborn_pid)
        t0 = trio.current_time()
        system.exit(sup, "shutdown")
        down = await me.receive(timeout=10)
        assert down == ta.Down(ref, stubborn_pid, "killed")
        assert trio.current_time() - t0 == pytest.approx(3.0)
        assert await system.join(sup) in ("shutdown", "noproc")
    assert stopped == [pytest.approx(t0 + 3.0), "polite"]


async def test_brutal_kill_and_infinity(system: ta.ActorSystem, autojump_clock: Any) -> None:
    async def slow_stop(ctx: ta.Context) -> None:
        try:
            await trio.sleep_forever()
        finally:
            with trio.CancelScope(shield=True):
                await trio.sleep(100)

    async def stubborn(ctx: ta.Context) -> None:
        ctx.trap_exits = True
        while True:
            await ctx.receive()

    sup = await system.start_supervisor(
        [
            ta.ChildSpec("patient", slow_stop, shutdown="infinity"),
            ta.ChildSpec("brutal", stubborn, shutdown="brutal_kill"),
        ]
    )
    await trio.testing.wait_all_tasks_blocked()
    children = pids(system, sup)
    async with system.actor() as me:
        refs = {me.monitor(p): cid for cid, p in children.items()}
        t0 = trio.current_time()
        system.exit(sup, "shutdown")
        first = await me.receive(timeout=1000)
        second = await me.receive(timeout=1000)
    # "brutal" is killed at once (trapping exits does not protect from kill)...
    assert (refs[first.ref], first.reason) == ("brutal", "killed")
    # ...and "patient" is allowed its 100 s of cleanup.
    assert (refs[second.ref], second.reason) == ("patient", "shutdown")
    assert trio.current_time() - t0 == pytest.approx(100.0)


async def test_crash_during_shutdown(system: ta.ActorSystem) -> None:
    log: list[tuple[str, str]] = []

    class BadStop(ta.GenServer):
        async def terminate(self, reason: Any) -> None:
            raise RuntimeError("cannot stop cleanly")

    sup = await system.start_supervisor(
        [spec("a", log), ta.ChildSpec("bad", BadStop), spec("c", log)]
    )
    await trio.testing.wait_all_tasks_blocked()
    system.exit(sup, "shutdown")
    assert await system.join(sup) == "shutdown"
    assert log[-2:] == [("stop", "c"), ("stop", "a")]
    assert system.processes() == []


async def test_nested_supervisors(system: ta.ActorSystem) -> None:
    log: list[tuple[str, str]] = []
    inner = ta.supervisor([spec("x", log), spec("y", log)], strategy="one_for_all", max_restarts=1)
    top = await system.start_supervisor(
        [spec("a", log), ta.ChildSpec("inner", inner, name="inner"), spec("b", log)],
        name="top",
    )
    await trio.testing.wait_all_tasks_blocked()
    assert log == [("start", "a"), ("start", "x"), ("start", "y"), ("start", "b")]
    inner_pid = system.whereis("inner")
    assert pids(system, top)["inner"] == inner_pid
    # A crash inside is handled inside.
    log.clear()
    await crash_and_wait(system, "inner", "x")
    assert system.whereis("inner") == inner_pid
    assert log == [("stop", "x"), ("stop", "y"), ("start", "x"), ("start", "y")]
    # Too many: the inner supervisor gives up and the top one restarts it.
    log.clear()
    await crash_and_wait(system, "inner", "y")
    new_inner = system.whereis("inner")
    assert new_inner is not None and new_inner != inner_pid
    assert pids(system, top)["inner"] == new_inner
    assert log[-2:] == [("start", "x"), ("start", "y")]
    # Stopping the top stops everything, innermost last-started first.
    log.clear()
    system.exit(top, "shutdown")
    await system.join(top)
    assert log == [("stop", "b"), ("stop", "y"), ("stop", "x"), ("stop", "a")]


async def test_failed_child_start_fails_the_supervisor(system: ta.ActorSystem) -> None:
    log: list[tuple[str, str]] = []

    class Broken(ta.GenServer):
        async def init(self) -> None:
            raise LookupError("missing")

    with pytest.raises(ta.StartFailed) as info:
        await system.start_supervisor(
            [spec("a", log), ta.ChildSpec("broken", Broken), spec("c", log)], name="s"
        )
    reason = info.value.reason
    assert reason[0] == "failed_to_start_child" and reason[1] == "broken"
    assert reason[2] == ta.Crash("LookupError", "missing")
    await trio.testing.wait_all_tasks_blocked()
    assert log == [("start", "a"), ("stop", "a")]
    assert system.whereis("s") is None and system.processes() == []


async def test_named_child_is_reregistered_after_restart(system: ta.ActorSystem) -> None:
    log: list[tuple[str, str]] = []
    await system.start_supervisor([ta.ChildSpec("srv", Server, args=("srv", log), name="srv")])
    old = system.whereis("srv")
    with pytest.raises(ta.CallFailed):
        await system.call("srv", "crash")
    await trio.testing.wait_all_tasks_blocked()
    new = system.whereis("srv")
    assert new is not None and new != old
    assert await system.call("srv", 1) == ("srv", 1)


async def test_killed_supervisor_leaves_no_children(system: ta.ActorSystem) -> None:
    log: list[tuple[str, str]] = []
    sup = await system.start_supervisor([spec("a", log), spec("b", log)])
    await trio.testing.wait_all_tasks_blocked()
    system.exit(sup, "kill")
    assert await system.join(sup) == "killed"
    await trio.testing.wait_all_tasks_blocked()
    assert system.processes() == []


async def test_child_spec_validation() -> None:
    with pytest.raises(ValueError, match="restart"):
        ta.ChildSpec("a", worker, restart="sometimes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="shutdown"):
        ta.ChildSpec("a", worker, shutdown=-1)
    with pytest.raises(TypeError, match="GenServer"):
        ta.ChildSpec("a", int)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="duplicate"):
        ta.supervisor([ta.ChildSpec("a", worker), ta.ChildSpec("a", worker)])
    with pytest.raises(ValueError, match="strategy"):
        ta.supervisor([], strategy="all_for_one")  # type: ignore[arg-type]
    assert ta.ChildSpec("a", worker).shutdown_policy == 5.0
    assert ta.ChildSpec("s", ta.supervisor([])).shutdown_policy == "infinity"
    assert ta.ChildSpec("a", worker, args=[1, 2]).args == (1, 2)


async def test_which_children_of_a_non_supervisor(system: ta.ActorSystem) -> None:
    async with system.actor() as me:
        with pytest.raises(ta.NoProc):
            system.which_children(me.pid)
    with pytest.raises(ta.NoProc):
        system.which_children("nobody")
