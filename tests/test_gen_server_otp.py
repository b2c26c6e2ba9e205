"""GenServer as OTP 25's gen_server behaves (checked against real `erl`):
init returning ignore, gen_server:stop/3, trapping exits, and when
terminate runs (and when it does not)."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

import trioactors as ta


class Reporter(ta.GenServer):
    """Reports its terminate reason (and stray messages) to `report`."""

    async def init(self, report: ta.Pid, mode: str = "") -> Any:
        self.report, self.mode = report, mode
        if mode == "ignore":
            return ta.IGNORE
        return None

    async def handle_call(self, request: Any, caller: ta.Caller) -> Any:
        return request

    async def handle_info(self, msg: Any) -> None:
        self.ctx.send(self.report, ("info", msg))

    async def terminate(self, reason: Any) -> None:
        self.ctx.send(self.report, ("terminated", self.pid, reason))
        if self.mode == "slow":
            await trio.sleep_forever()


class Trapper(Reporter):
    trap_exits = True


def drain(ctx: ta.Context) -> list[Any]:
    out: list[Any] = []
    while True:
        try:
            out.append(ctx.receive_nowait())
        except trio.WouldBlock:
            return out


# -- init -> ignore


async def test_ignore_starts_nothing(system: ta.ActorSystem) -> None:
    async with system.actor() as me:
        assert await system.start_server(Reporter, me.pid, "ignore", name="r") is None
        assert await me.start_server(Reporter, me.pid, "ignore", link=True) is None
        assert system.processes() == []
        assert system.whereis("r") is None
        # The name is free again at once.
        assert await system.start_server(Reporter, me.pid, name="r") is not None


# -- stop


async def test_stop_runs_terminate_without_trapping(system: ta.ActorSystem) -> None:
    async with system.actor() as me:
        pid = await system.start_server(Reporter, me.pid)
        assert pid is not None
        ref = me.monitor(pid)
        await system.stop(pid)
        assert not system.is_alive(pid)
        assert drain(me) == [("terminated", pid, "normal"), ta.Down(ref, pid, "normal")]
        other = await system.start_server(Reporter, me.pid, name="other")
        await me.stop("other", "bye", timeout=5)
        assert drain(me) == [("terminated", other, "bye")]


async def test_stop_a_server_that_is_not_there(system: ta.ActorSystem) -> None:
    with pytest.raises(ta.NoProc, match="cannot stop 'nobody'"):
        await system.stop("nobody")
    async with system.actor() as me:
        pid = await system.start_server(Reporter, me.pid)
        assert pid is not None
        await system.stop(pid)
        with pytest.raises(ta.NoProc):
            await me.stop(pid)
        with pytest.raises(ta.StopFailed) as info:
            await me.stop(me.pid)
        assert info.value.reason == "calling_self"


async def test_stop_timeout_leaves_the_server_running(
    system: ta.ActorSystem, autojump_clock: Any
) -> None:
    async with system.actor() as me:
        pid = await system.start_server(Reporter, me.pid, "slow")
        assert pid is not None
        with pytest.raises(ta.StopTimeout, match="did not stop within 3") as info:
            await system.stop(pid, timeout=3)
        assert info.value.reason == "timeout"
        # As in OTP the server goes on (here: stuck in its terminate).
        assert system.is_alive(pid)
        assert drain(me) == [("terminated", pid, "normal")]
        system.exit(pid, "kill")
        assert await system.join(pid) == "killed"


# -- trap_exits and terminate


async def test_trap_exits_class_attribute(system: ta.ActorSystem) -> None:
    async with system.actor() as me:
        pid = await system.start_server(Trapper, me.pid)
        assert pid is not None
        system.exit(pid, "shutdown")  # not from its parent: just a message
        assert await me.receive(timeout=5) == ("info", ta.Exit(system.pid, "shutdown"))
        assert system.is_alive(pid)
        await system.stop(pid)


async def test_untrapped_exit_signal_skips_terminate(system: ta.ActorSystem) -> None:
    async with system.actor() as me:
        pid = await system.start_server(Reporter, me.pid)
        assert pid is not None
        ref = me.monitor(pid)
        system.exit(pid, "shutdown")
        # erl: exit(Pid, shutdown) on a gen_server not trapping exits: no terminate.
        assert await me.receive(timeout=5) == ta.Down(ref, pid, "shutdown")
        await trio.testing.wait_all_tasks_blocked()
        assert drain(me) == []


async def test_terminate_child_runs_terminate_only_when_trapping(system: ta.ActorSystem) -> None:
    async with system.actor() as me:
        sup = await system.start_supervisor(
            [
                ta.ChildSpec("t", Trapper, args=(me.pid,)),
                ta.ChildSpec("n", Reporter, args=(me.pid,)),
            ]
        )
        pids = {cid: p for cid, p, _ in system.which_children(sup)}
        await system.terminate_child(sup, "n")
        await system.terminate_child(sup, "t")
        assert drain(me) == [("terminated", pids["t"], "shutdown")]


async def test_killed_supervisor_trapping_child_terminates_killed(
    system: ta.ActorSystem,
) -> None:
    async with system.actor() as me:
        sup = await system.start_supervisor(
            [
                ta.ChildSpec("t", Trapper, args=(me.pid,)),
                ta.ChildSpec("n", Reporter, args=(me.pid,)),
            ]
        )
        pids = {cid: p for cid, p, _ in system.which_children(sup)}
        refs = {me.monitor(p): cid for cid, p in pids.items() if isinstance(p, ta.Pid)}
        system.exit(sup, "kill")
        assert await system.join(sup) == "killed"
        await trio.testing.wait_all_tasks_blocked()
        got = drain(me)
        # erl: the links carry `killed`; the trapping gen_server gets
        # {'EXIT', Sup, killed} from its parent and runs terminate(killed);
        # the other one just dies.
        assert [m for m in got if type(m) is tuple] == [("terminated", pids["t"], "killed")]
        downs = {refs[m.ref]: m.reason for m in got if type(m) is ta.Down}
        assert downs == {"t": "killed", "n": "killed"}
        assert system.processes() == []


async def test_system_shutdown_ends_a_trapping_server_through_terminate(
    autojump_clock: Any,
) -> None:
    seen: list[Any] = []

    async def listener(ctx: ta.Context) -> None:
        ctx.trap_exits = True  # outlives the servers to hear their reports
        await ctx.start_server(Trapper, ctx.pid)
        await ctx.start_server(Reporter, ctx.pid)
        with trio.move_on_after(10):
            while True:
                seen.append(await ctx.receive(match=lambda m: type(m) is tuple))

    # A long shutdown_timeout: a server that went on running would be killed
    # only then, without terminate.
    async with ta.open_actor_system(shutdown_timeout=1000.0) as system:
        system.spawn(listener)
        await trio.testing.wait_all_tasks_blocked()
    # The trapping one ran terminate; the other was ended by the signal.
    assert [(m[0], m[2]) for m in seen] == [("terminated", "shutdown")]
