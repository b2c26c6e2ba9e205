"""Dynamic supervisors (OTP's simple_one_for_one, Elixir's DynamicSupervisor),
checked against OTP 25: children from one template with extra arguments,
terminate_child by pid, counts, max_children, parallel shutdown."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

import trioactors as ta


class Conn(ta.GenServer):
    """One "connection": reports its start args; ignores when asked to."""

    async def init(self, report: ta.Pid, *args: Any) -> Any:
        if args == ("ignore",):
            return ta.IGNORE
        if args == ("fail",):
            raise ConnectionError("refused")
        self.args = args
        self.ctx.send(report, ("started", self.pid, args))
        return None

    async def handle_call(self, request: Any, caller: ta.Caller) -> Any:
        return self.args


class SlowStop(ta.GenServer):
    """Takes `delay` seconds in terminate (it traps exits, so it is given one)."""

    trap_exits = True

    async def init(self, report: ta.Pid, delay: float) -> None:
        self.report, self.delay = report, delay

    async def terminate(self, reason: Any) -> None:
        self.ctx.send(self.report, ("stopping", self.pid, trio.current_time()))
        await trio.sleep(self.delay)


async def test_start_child_appends_extra_args(system: ta.ActorSystem) -> None:
    async with system.actor() as me:
        template = ta.ChildSpec("conn", Conn, args=(me.pid, "base"))
        sup = await system.start_dynamic_supervisor(template, name="conns")
        assert system.which_children(sup) == []
        a = await system.start_child("conns", "x", 1)
        b = await me.start_child(sup, "y")
        assert a is not None and b is not None
        assert await system.call(a, "args") == ("base", "x", 1)
        assert await system.call(b, "args") == ("base", "y")
        # OTP: id undefined, in the order they were added.
        assert system.which_children(sup) == [(None, a, "permanent"), (None, b, "permanent")]
        assert system.count_children(sup) == ta.ChildCounts(1, 2, 0, 2)


async def test_template_can_be_a_bare_start(system: ta.ActorSystem) -> None:
    async with system.actor() as me:
        sup = await system.start_dynamic_supervisor(Conn)
        pid = await system.start_child(sup, me.pid, "z")
        assert pid is not None and await system.call(pid, "args") == ("z",)


async def test_ignore_and_failure_add_no_child(system: ta.ActorSystem) -> None:
    async with system.actor() as me:
        sup = await system.start_dynamic_supervisor(ta.ChildSpec("c", Conn, args=(me.pid,)))
        assert await system.start_child(sup, "ignore") is None
        with pytest.raises(ta.StartFailed) as info:
            await system.start_child(sup, "fail")
        assert info.value.reason == ta.Crash("ConnectionError", "refused")
        assert system.which_children(sup) == []
        assert system.is_alive(sup)


async def test_terminate_child_by_pid(system: ta.ActorSystem) -> None:
    async with system.actor() as me:
        sup = await system.start_dynamic_supervisor(ta.ChildSpec("c", Conn, args=(me.pid,)))
        a = await system.start_child(sup, 1)
        b = await system.start_child(sup, 2)
        assert a is not None and b is not None
        await system.terminate_child(sup, a)
        assert not system.is_alive(a)
        # A dynamic child is forgotten once stopped, whatever its restart type.
        assert system.which_children(sup) == [(None, b, "permanent")]
        await system.terminate_child(sup, a)  # dead: ok, as in OTP
        with pytest.raises(ta.ChildNotFound):
            await system.terminate_child(sup, me.pid)  # alive but not a child
        # Ids mean nothing to a dynamic supervisor: OTP's simple_one_for_one error.
        for call in (system.terminate_child, system.restart_child, system.delete_child):
            with pytest.raises(ta.SupervisorError) as info:
                await call(sup, "c")
            assert info.value.reason == "simple_one_for_one"
            assert "terminate_child(sup, pid)" in str(info.value)


async def test_restart_one_for_one_with_the_same_args(system: ta.ActorSystem) -> None:
    async with system.actor() as me:
        template = ta.ChildSpec("c", Conn, args=(me.pid,), restart="transient")
        sup = await system.start_dynamic_supervisor(template, max_restarts=5)
        a = await system.start_child(sup, "a")
        b = await system.start_child(sup, "b")
        assert a is not None and b is not None
        drain(me)
        system.exit(a, "crash")
        started = await me.receive(timeout=5)
        assert started[0] == "started" and started[2] == ("a",)
        new_a = started[1]
        await trio.testing.wait_all_tasks_blocked()
        assert set(system.which_children(sup)) == {
            (None, b, "transient"),
            (None, new_a, "transient"),
        }
        # transient: a normal end is not restarted, and the child is dropped.
        system.exit(b, "shutdown")
        assert await system.join(b) == "shutdown"
        await trio.testing.wait_all_tasks_blocked()
        assert system.which_children(sup) == [(None, new_a, "transient")]


async def test_max_children(system: ta.ActorSystem) -> None:
    async with system.actor() as me:
        sup = await system.start_dynamic_supervisor(
            ta.ChildSpec("c", Conn, args=(me.pid,)), max_children=2
        )
        a = await system.start_child(sup, 1)
        await system.start_child(sup, 2)
        with pytest.raises(ta.MaxChildren, match="max_children=2") as info:
            await system.start_child(sup, 3)
        assert info.value.limit == 2
        assert a is not None
        await system.terminate_child(sup, a)
        assert await system.start_child(sup, 3) is not None


async def test_children_stop_in_parallel(system: ta.ActorSystem, autojump_clock: Any) -> None:
    async with system.actor() as me:
        sup = await system.start_dynamic_supervisor(
            ta.ChildSpec("slow", SlowStop, args=(me.pid,), shutdown=100.0)
        )
        children = [await system.start_child(sup, 10.0) for _ in range(3)]
        t0 = trio.current_time()
        system.exit(sup, "shutdown")
        assert await system.join(sup) == "shutdown"
        # Every child was told at once: all had begun stopping before any had
        # ended, and the whole shutdown took one child's time, not three.
        stops = [await me.receive(timeout=1) for _ in children]
        assert sorted(pid for _, pid, _ in stops) == sorted(children)  # type: ignore[type-var]
        assert all(at == t0 for _, _, at in stops)
        assert trio.current_time() - t0 == pytest.approx(10.0)
        assert system.processes() == []


async def test_parallel_shutdown_kills_after_the_timeout(
    system: ta.ActorSystem, autojump_clock: Any
) -> None:
    async with system.actor() as me:
        sup = await system.start_dynamic_supervisor(
            ta.ChildSpec("slow", SlowStop, args=(me.pid,), shutdown=5.0)
        )
        children = [await system.start_child(sup, 1000.0) for _ in range(3)]
        refs = {me.monitor(p): p for p in children if p is not None}
        t0 = trio.current_time()
        system.exit(sup, "shutdown")
        assert await system.join(sup) == "shutdown"
        assert trio.current_time() - t0 == pytest.approx(5.0)
        downs = [m for m in drain(me) if isinstance(m, ta.Down)]
        assert {d.ref for d in downs} == set(refs) and {d.reason for d in downs} == {"killed"}


async def test_nested_dynamic_supervisor(system: ta.ActorSystem) -> None:
    async with system.actor() as me:
        pool = ta.dynamic_supervisor(ta.ChildSpec("c", Conn, args=(me.pid,)))
        top = await system.start_supervisor([ta.ChildSpec("pool", pool, name="pool")])
        assert system.count_children(top) == ta.ChildCounts(1, 1, 1, 0)
        pid = await system.start_child("pool", "q")
        assert pid is not None and await system.call(pid, "args") == ("q",)


def test_dynamic_spec_validation() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        ta.supervisor([], strategy="simple_one_for_one")
    with pytest.raises(ValueError, match="name="):
        ta.dynamic_supervisor(ta.ChildSpec("c", Conn, name="conn"))
    with pytest.raises(ValueError, match="max_children"):
        ta.dynamic_supervisor(Conn, max_children=-1)
    with pytest.raises(ValueError, match="max_children"):
        ta.SupervisorSpec((), max_children=3)
    assert ta.dynamic_supervisor(Conn).dynamic


async def test_static_start_child_wants_a_child_spec(system: ta.ActorSystem) -> None:
    sup = await system.start_supervisor([])
    with pytest.raises(TypeError, match="ChildSpec"):
        await system.start_child(sup, "x", 1)


def drain(ctx: ta.Context) -> list[Any]:
    out: list[Any] = []
    while True:
        try:
            out.append(ctx.receive_nowait())
        except trio.WouldBlock:
            return out
