"""GenServer: start/init, call/cast/info, deferred replies, failures, terminate."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import trio
import trio.testing

import trioactors as ta


class Counter(ta.GenServer):
    async def init(self, start: int = 0) -> None:
        self.n = start
        self.infos: list[Any] = []

    async def handle_call(self, request: Any, caller: ta.Caller) -> Any:
        if request == "get":
            return self.n
        if request == "crash":
            raise RuntimeError("asked to crash")
        if request == "stop":
            self.reply(caller, "stopping")
            self.stop("asked")
        if request == "infos":
            return list(self.infos)
        if request == "hang":
            return ta.NO_REPLY
        self.n += request
        return self.n

    async def handle_cast(self, request: Any) -> None:
        if request == "reset":
            self.n = 0

    async def handle_info(self, msg: Any) -> None:
        self.infos.append(msg)


class Recorder(ta.GenServer):
    """Reports its terminate reason to `pid`."""

    async def init(self, pid: ta.Pid, fail_terminate: bool = False) -> None:
        self.report = pid
        self.fail_terminate = fail_terminate

    async def handle_call(self, request: Any, caller: ta.Caller) -> Any:
        if request == "crash":
            raise ValueError("handle_call failed")
        return request

    async def terminate(self, reason: Any) -> None:
        self.ctx.send(self.report, ("terminated", reason))
        if self.fail_terminate:
            raise OSError("terminate failed")


async def test_start_call_cast_info(system: ta.ActorSystem) -> None:
    pid = await system.start_server(Counter, 10, name="counter")
    assert pid is not None
    assert system.whereis("counter") == pid
    assert await system.call("counter", 5, timeout=1.0) == 15
    assert await system.call(pid, 1) == 16
    system.cast(pid, "reset")
    assert await system.call(pid, "get") == 0
    system.send(pid, "plain")
    system.send(pid, ("$gen_call", "malformed", 1))  # not a real call: an info
    system.send_after(0, pid, "timer")
    async with system.actor() as me:
        me.cast("counter", "reset")
        assert await me.call("counter", 2) == 2
        await trio.testing.wait_all_tasks_blocked()
        infos = await me.call(pid, "infos")
    assert infos == ["plain", ("$gen_call", "malformed", 1), "timer"]


async def test_init_failure_is_start_failed(
    system: ta.ActorSystem, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="trioactors")

    class Bad(ta.GenServer):
        async def init(self) -> None:
            raise ConnectionError("db down")

    with pytest.raises(ta.StartFailed) as info:
        await system.start_server(Bad, name="bad")
    assert info.value.reason == ta.Crash("ConnectionError", "db down")
    assert system.whereis("bad") is None
    assert len([r for r in caplog.records if "crashed" in r.getMessage()]) == 1

    class Quits(ta.GenServer):
        async def init(self) -> None:
            self.stop("no_config")

    with pytest.raises(ta.StartFailed) as info:
        await system.start_server(Quits)
    assert info.value.reason == "no_config"


async def test_start_server_with_taken_name(system: ta.ActorSystem) -> None:
    await system.start_server(Counter, name="c")
    with pytest.raises(ta.NameTaken):
        await system.start_server(Counter, name="c")


async def test_crash_during_call_fails_the_call_and_runs_terminate(
    system: ta.ActorSystem,
) -> None:
    async with system.actor() as me:
        pid = await system.start_server(Recorder, me.pid)
        assert pid is not None
        with pytest.raises(ta.CallFailed) as info:
            await system.call(pid, "crash")
        assert info.value.reason == ta.Crash("ValueError", "handle_call failed")
        assert await me.receive(timeout=5) == ("terminated", info.value.reason)
        assert not system.is_alive(pid)


async def test_call_to_dead_server_fails_at_once(
    system: ta.ActorSystem, autojump_clock: Any
) -> None:
    t0 = trio.current_time()
    with pytest.raises(ta.CallFailed) as info:
        await system.call(ta.Pid(system.node_name, 12345, 0, system.creation), "x", timeout=60)
    assert info.value.reason == "noproc"
    with pytest.raises(ta.CallFailed, match="noproc"):
        await system.call("nobody", "x", timeout=60)
    assert trio.current_time() == t0


async def test_call_timeout_and_late_reply(system: ta.ActorSystem, autojump_clock: Any) -> None:
    pid = await system.start_server(Counter)
    assert pid is not None
    t0 = trio.current_time()
    with pytest.raises(ta.CallTimeout):
        await system.call(pid, "hang", timeout=2.0)
    assert trio.current_time() - t0 == pytest.approx(2.0)
    # The server is still fine and answers the next call.
    assert await system.call(pid, 1) == 1


async def test_server_dying_during_call_fails_it(system: ta.ActorSystem) -> None:
    pid = await system.start_server(Counter)
    assert pid is not None

    async def killer() -> None:
        await trio.testing.wait_all_tasks_blocked()
        system.exit(pid, "maintenance")

    async with trio.open_nursery() as n:
        n.start_soon(killer)
        with pytest.raises(ta.CallFailed) as info:
            await system.call(pid, "hang", timeout=None)
    assert info.value.reason == "maintenance"


async def test_stop_after_reply(system: ta.ActorSystem) -> None:
    pid = await system.start_server(Counter)
    assert pid is not None
    assert await system.call(pid, "stop") == "stopping"
    assert await system.join(pid) in ("asked", "noproc")


async def test_deferred_reply(system: ta.ActorSystem) -> None:
    class Deferred(ta.GenServer):
        async def init(self) -> None:
            self.waiting: list[ta.Caller] = []

        async def handle_call(self, request: Any, caller: ta.Caller) -> Any:
            if request == "wait":
                self.waiting.append(caller)
                return ta.NO_REPLY
            for c in self.waiting:
                self.reply(c, ("released", request))
            return len(self.waiting)

    pid = await system.start_server(Deferred)
    assert pid is not None
    results: list[Any] = []

    async def waiter() -> None:
        results.append(await system.call(pid, "wait"))

    async with trio.open_nursery() as n:
        n.start_soon(waiter)
        n.start_soon(waiter)
        await trio.testing.wait_all_tasks_blocked()
        assert await system.call(pid, "go") == 2
    assert results == [("released", "go"), ("released", "go")]


class TrappingRecorder(Recorder):
    trap_exits = True


async def test_terminate_on_system_shutdown() -> None:
    seen: list[Any] = []

    async def listener(ctx: ta.Context) -> None:
        ctx.trap_exits = True  # outlives the server's shutdown to hear its report
        await ctx.start_server(TrappingRecorder, ctx.pid)
        seen.append(await ctx.receive(match=lambda m: type(m) is tuple))

    async with ta.open_actor_system() as system:
        system.spawn(listener)
        await trio.testing.wait_all_tasks_blocked()
    assert seen == [("terminated", "shutdown")]


async def test_crash_in_terminate_becomes_the_exit_reason(system: ta.ActorSystem) -> None:
    async with system.actor() as me:
        pid = await system.start_server(Recorder, me.pid, True)
        assert pid is not None
        ref = me.monitor(pid)
        with pytest.raises(ta.StopFailed) as info:
            await system.stop(pid, "shutdown")
        assert info.value.reason == ta.Crash("OSError", "terminate failed")
        assert await me.receive(timeout=5) == ("terminated", "shutdown")
        down = await me.receive(timeout=5)
        assert down.ref == ref and down.reason == ta.Crash("OSError", "terminate failed")


async def test_killed_server_skips_terminate(system: ta.ActorSystem) -> None:
    async with system.actor() as me:
        pid = await system.start_server(Recorder, me.pid)
        assert pid is not None
        ref = me.monitor(pid)
        system.exit(pid, "kill")
        assert await me.receive(timeout=5) == ta.Down(ref, pid, "killed")
        with pytest.raises(trio.WouldBlock):
            me.receive_nowait()


async def test_kill_interrupts_a_hanging_terminate(system: ta.ActorSystem) -> None:
    class Slow(ta.GenServer):
        trap_exits = True

        async def terminate(self, reason: Any) -> None:
            await trio.sleep_forever()

    async with system.actor(trap_exits=True) as me:
        pid = await me.start_server(Slow, link=True)
        assert pid is not None
        ref = me.monitor(pid)
        me.exit(pid, "shutdown")  # from its parent: terminate runs
        await trio.testing.wait_all_tasks_blocked()
        assert system.is_alive(pid)
        system.exit(pid, "kill")
        assert await me.receive(timeout=5) == ta.Exit(pid, "killed")
        assert await me.receive(timeout=5) == ta.Down(ref, pid, "killed")


async def test_default_callbacks(system: ta.ActorSystem, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="trioactors")

    class Bare(ta.GenServer):
        pass

    pid = await system.start_server(Bare)
    assert pid is not None
    system.send(pid, "stray")
    with pytest.raises(ta.CallFailed) as info:
        await system.call(pid, "anything")
    assert info.value.reason.type == "NotImplementedError"
    assert any("ignored unexpected message 'stray'" in r.getMessage() for r in caplog.records)


async def test_trapping_server_ends_when_parent_says_so(system: ta.ActorSystem) -> None:
    class Trapper(ta.GenServer):
        async def init(self, report: ta.Pid) -> None:
            self.ctx.trap_exits = True
            self.report = report

        async def handle_info(self, msg: Any) -> None:
            self.ctx.send(self.report, ("info", msg))

        async def terminate(self, reason: Any) -> None:
            self.ctx.send(self.report, ("terminated", reason))

    async with system.actor(trap_exits=True) as me:
        pid = await me.start_server(Trapper, me.pid, link=True)
        assert pid is not None
        other = system.spawn(idle_actor)
        system.exit(pid, "not_from_parent")
        assert await me.receive(timeout=5) == ("info", ta.Exit(system.pid, "not_from_parent"))
        me.exit(pid, "shutdown")
        assert await me.receive(timeout=5) == ("terminated", "shutdown")
        assert await me.receive(timeout=5) == ta.Exit(pid, "shutdown")
        system.exit(other, "kill")


async def idle_actor(ctx: ta.Context) -> None:
    await trio.sleep_forever()


async def test_many_concurrent_callers(system: ta.ActorSystem) -> None:
    pid = await system.start_server(Counter)
    assert pid is not None

    async def caller() -> None:
        for _ in range(50):
            await system.call(pid, 1)

    async with trio.open_nursery() as n:
        for _ in range(20):
            n.start_soon(caller)
    assert await system.call(pid, "get") == 1000


async def test_calling_oneself_fails_at_once(system: ta.ActorSystem) -> None:
    class Selfish(ta.GenServer):
        async def handle_call(self, request: Any, caller: ta.Caller) -> Any:
            try:
                return await self.ctx.call(self.pid if request == "pid" else "me", "again")
            except ta.CallFailed as exc:
                return exc.reason

    await system.start_server(Selfish, name="me")
    assert await system.call("me", "pid") == "calling_self"
    assert await system.call("me", "name") == "calling_self"
