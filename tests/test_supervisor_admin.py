"""Supervisor admin API, checked against OTP 25's supervisor module:
start_child, terminate_child, restart_child, delete_child, count_children,
ignoring children, and the restarting state of a child whose restart fails."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

import trioactors as ta


async def idle(ctx: ta.Context, tag: str, log: list[tuple[str, str]]) -> None:
    log.append(("start", tag))
    try:
        await trio.sleep_forever()
    finally:
        log.append(("stop", tag))


class Ignorer(ta.GenServer):
    async def init(self) -> Any:
        return ta.IGNORE


class Flaky(ta.GenServer):
    """Fails to start while ``gate["fail"]``; reports each failed attempt."""

    async def init(self, gate: dict[str, Any]) -> None:
        if gate["fail"]:
            self.ctx.send(gate["report"], "init failed")
            raise RuntimeError("not now")


def spec(tag: str, log: list[tuple[str, str]], **kw: Any) -> ta.ChildSpec:
    return ta.ChildSpec(tag, idle, args=(tag, log), **kw)


def ids(system: ta.ActorSystem, sup: ta.Pid) -> list[Any]:
    return [cid for cid, _, _ in system.which_children(sup)]


def pid_of(system: ta.ActorSystem, sup: ta.Pid, cid: Any) -> Any:
    return {c: p for c, p, _ in system.which_children(sup)}[cid]


async def test_start_child_appends_and_stops_first(system: ta.ActorSystem) -> None:
    log: list[tuple[str, str]] = []
    sup = await system.start_supervisor([spec("a", log)])
    pid = await system.start_child(sup, spec("b", log))
    assert isinstance(pid, ta.Pid) and system.is_alive(pid)
    assert ids(system, sup) == ["a", "b"] and pid_of(system, sup, "b") == pid
    # Same id, running: OTP's {error, {already_started, Pid}}.
    with pytest.raises(ta.ChildAlreadyStarted) as started:
        await system.start_child(sup, spec("b", log))
    assert started.value.pid == pid and started.value.reason == "already_started"
    log.clear()
    system.exit(sup, "shutdown")
    await system.join(sup)
    assert log == [("stop", "b"), ("stop", "a")]


async def test_terminate_restart_delete(system: ta.ActorSystem) -> None:
    log: list[tuple[str, str]] = []
    sup = await system.start_supervisor([spec("a", log), spec("b", log)])
    old = pid_of(system, sup, "a")
    await system.terminate_child(sup, "a")
    assert not system.is_alive(old)
    assert system.which_children(sup)[0] == ("a", None, "permanent")  # kept, not running
    await system.terminate_child(sup, "a")  # not running: fine, as in OTP
    with pytest.raises(ta.ChildNotFound, match="which_children"):
        await system.terminate_child(sup, "zz")
    # Not running: already_present for start_child, delete/restart allowed.
    with pytest.raises(ta.ChildAlreadyPresent, match="restart_child"):
        await system.start_child(sup, spec("a", log))
    new = await system.restart_child(sup, "a")
    assert new is not None and new != old and pid_of(system, sup, "a") == new
    with pytest.raises(ta.ChildRunning, match="terminate_child"):
        await system.restart_child(sup, "a")
    with pytest.raises(ta.ChildRunning):
        await system.delete_child(sup, "a")
    with pytest.raises(ta.ChildNotFound):
        await system.restart_child(sup, "zz")
    with pytest.raises(ta.ChildNotFound):
        await system.delete_child(sup, "zz")
    await system.terminate_child(sup, "b")
    await system.delete_child(sup, "b")
    assert ids(system, sup) == ["a"]
    # The id is free again.
    assert await system.start_child(sup, spec("b", log)) is not None


async def test_temporary_child_is_forgotten_when_terminated(system: ta.ActorSystem) -> None:
    log: list[tuple[str, str]] = []
    sup = await system.start_supervisor([])
    await system.start_child(sup, spec("t", log, restart="temporary"))
    await system.terminate_child(sup, "t")
    assert system.which_children(sup) == []


async def test_failed_start_child_keeps_no_spec(system: ta.ActorSystem) -> None:
    class Broken(ta.GenServer):
        async def init(self) -> None:
            raise LookupError("no config")

    sup = await system.start_supervisor([])
    with pytest.raises(ta.StartFailed) as info:
        await system.start_child(sup, ta.ChildSpec("x", Broken))
    assert info.value.reason == ta.Crash("LookupError", "no config")
    assert "child 'x'" in str(info.value)
    assert system.which_children(sup) == []
    assert system.is_alive(sup)


async def test_ignoring_child(system: ta.ActorSystem) -> None:
    sup = await system.start_supervisor([ta.ChildSpec("boot", Ignorer)])
    # OTP: the child is listed with pid undefined.
    assert system.which_children(sup) == [("boot", None, "permanent")]
    assert await system.start_child(sup, ta.ChildSpec("e", Ignorer)) is None
    assert system.which_children(sup)[1] == ("e", None, "permanent")
    # A temporary child that ignores is not kept.
    assert await system.start_child(sup, ta.ChildSpec("f", Ignorer, restart="temporary")) is None
    assert ids(system, sup) == ["boot", "e"]
    # restart_child can try again (and gets ignore again).
    assert await system.restart_child(sup, "e") is None
    assert system.count_children(sup) == ta.ChildCounts(specs=2, active=0, supervisors=0, workers=2)
    assert system.processes() == [sup]


async def test_count_children(system: ta.ActorSystem) -> None:
    log: list[tuple[str, str]] = []
    inner = ta.supervisor([spec("x", log)])
    sup = await system.start_supervisor(
        [spec("a", log), ta.ChildSpec("inner", inner), spec("b", log)]
    )
    assert system.count_children(sup) == ta.ChildCounts(4 - 1, 3, 1, 2)
    await system.terminate_child(sup, "b")
    counts = system.count_children(sup)
    assert (counts.specs, counts.active, counts.supervisors, counts.workers) == (3, 2, 1, 2)
    # Also as a call, for a supervisor on another node.
    assert await system.call(sup, "count_children") == counts


async def test_admin_from_a_context(system: ta.ActorSystem) -> None:
    log: list[tuple[str, str]] = []
    sup = await system.start_supervisor([], name="sup")
    async with system.actor() as me:
        pid = await me.start_child("sup", spec("a", log))
        assert me.which_children("sup") == [("a", pid, "permanent")]
        await me.terminate_child("sup", "a")
        assert me.count_children(sup).active == 0
        assert await me.restart_child("sup", "a") is not None
        await me.terminate_child("sup", "a")
        await me.delete_child("sup", "a")
        assert me.which_children(sup) == []


async def test_admin_of_a_non_supervisor(system: ta.ActorSystem) -> None:
    log: list[tuple[str, str]] = []
    async with system.actor() as me:
        with pytest.raises(ta.NoProc, match="not a supervisor"):
            await system.start_child(me.pid, spec("a", log))
        with pytest.raises(ta.NoProc):
            system.count_children(me.pid)
    with pytest.raises(ta.NoProc, match="not alive"):
        await system.terminate_child("nobody", "a")


async def test_failed_restart_leaves_the_child_restarting(system: ta.ActorSystem) -> None:
    async with system.actor() as me:
        gate: dict[str, Any] = {"fail": False, "report": me.pid}
        sup = await system.start_supervisor(
            [ta.ChildSpec("f", Flaky, args=(gate,))], max_restarts=1000, max_seconds=3600
        )
        old = pid_of(system, sup, "f")
        gate["fail"] = True
        system.exit(old, "boom")
        # The second attempt runs only once the first failure is recorded.
        assert [await me.receive(timeout=5) for _ in range(2)] == ["init failed"] * 2
        # Between two attempts the supervisor serves requests (OTP's try_again).
        assert system.which_children(sup) == [("f", ta.RESTARTING, "permanent")]
        with pytest.raises(ta.ChildRestarting):
            await system.restart_child(sup, "f")
        with pytest.raises(ta.ChildRestarting):
            await system.delete_child(sup, "f")
        assert system.count_children(sup).active == 0
        gate["fail"] = False
        await trio.testing.wait_all_tasks_blocked()  # the retries keep it busy until then
        new = pid_of(system, sup, "f")
        assert isinstance(new, ta.Pid) and system.is_alive(new)


async def test_terminate_child_stops_the_retries(system: ta.ActorSystem) -> None:
    async with system.actor() as me:
        gate: dict[str, Any] = {"fail": False, "report": me.pid}
        sup = await system.start_supervisor(
            [ta.ChildSpec("f", Flaky, args=(gate,))], max_restarts=1000, max_seconds=3600
        )
        gate["fail"] = True
        system.exit(pid_of(system, sup, "f"), "boom")
        # The second attempt runs only once the first failure is recorded.
        assert [await me.receive(timeout=5) for _ in range(2)] == ["init failed"] * 2
        await system.terminate_child(sup, "f")
        assert system.which_children(sup) == [("f", None, "permanent")]
        drain(me)
        await trio.testing.wait_all_tasks_blocked()  # a retry would keep it busy
        with pytest.raises(trio.WouldBlock):
            me.receive_nowait()  # no attempt after terminate_child
        assert system.which_children(sup) == [("f", None, "permanent")]


def drain(ctx: ta.Context) -> None:
    while True:
        try:
            ctx.receive_nowait()
        except trio.WouldBlock:
            return
