"""Introspection (processes, process_info, supervision trees, connection
figures) and rpc to registered functions, locally and across nodes."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.lowlevel
import trio.testing

import trioactors as ta

COOKIE = "introspection-cookie"


async def waiter(ctx: ta.Context) -> None:
    await ctx.receive(match=lambda m: m == "go")


async def test_process_info_of_a_waiting_actor_with_queued_messages() -> None:
    async with ta.open_actor_system() as system, system.actor() as me:
        pid = system.spawn(waiter, name="w")
        ctx_ref = me.monitor(pid)
        me.link(pid)
        for i in range(3):
            system.send(pid, i)  # skipped by its selective receive: they stay queued
        await trio.testing.wait_all_tasks_blocked()
        info = system.process_info(pid)
        assert info is not None
        assert info.pid == pid and info.name == "w"
        assert info.status == "waiting" and info.mailbox == 3 and info.received == 3
        assert info.links == (me.pid,) and info.monitored_by == (me.pid,)
        assert info.parent is None and info.trap_exits is False
        assert system.process_info("w") == info
        mine = system.process_info(me.pid)
        assert mine is not None and mine.monitors == (pid,)
        assert pid in system.processes()
        system.send(pid, "go")
        assert await me.receive(timeout=5) == ta.Down(ctx_ref, pid, "normal")
        assert system.process_info(pid) is None and pid not in system.processes()
        with pytest.raises(ta.NotLocalPid):
            system.process_info(ta.Pid("elsewhere", 1, 0, 1))


class Worker(ta.GenServer):
    async def handle_call(self, request: Any, caller: ta.Caller) -> Any:
        return request


async def test_supervision_trees_nest() -> None:
    async with ta.open_actor_system() as system:
        inner = ta.supervisor([ta.ChildSpec("w2", Worker)], strategy="one_for_one")
        top = await system.start_supervisor(
            [ta.ChildSpec("w1", Worker), ta.ChildSpec("inner", inner)], name="top"
        )
        (tree,) = system.supervision_trees()
        assert tree.id == "top" and tree.pid == top and tree.supervisor
        w1, sub = tree.children
        assert (w1.id, w1.restart, w1.supervisor, w1.children) == ("w1", "permanent", False, ())
        assert sub.id == "inner" and sub.supervisor
        (w2,) = sub.children
        assert w2.id == "w2" and isinstance(w2.pid, ta.Pid) and not w2.supervisor


async def test_rpc_registered_functions_builtins_and_errors() -> None:
    async with (
        ta.open_node("alpha", epmd=None, cookie=COOKIE) as a,
        ta.open_node("beta", epmd=None, cookie=COOKIE) as b,
    ):
        await a.connect(f"beta@{b.address[0]}:{b.address[1]}")

        async def slow_add(x: int, y: int) -> int:
            await trio.lowlevel.checkpoint()
            return x + y

        def boom() -> None:
            raise RuntimeError("nope")

        b.register_rpc("add", slow_add)
        b.register_rpc("boom", boom)
        assert await a.rpc("beta", "add", 2, 3) == 5
        builtins = await a.rpc("alpha", "trioactors.functions")
        assert "trioactors.processes" in builtins and "add" not in builtins
        assert await a.rpc("beta", "trioactors.functions") == sorted([*builtins, "add", "boom"])
        with pytest.raises(ta.RpcFailed, match="no such function") as info:
            await a.rpc("beta", "os.system", "rm -rf /")
        assert info.value.reason == ("undef", "os.system")
        with pytest.raises(ta.RpcFailed) as failed:
            await a.rpc("beta", "boom")
        assert failed.value.reason[0] == "EXIT"
        assert isinstance(failed.value.reason[1], ta.Crash)
        assert "nope" in failed.value.reason[1].message

        summary = await a.rpc("beta", "trioactors.node_info")
        assert summary.name == "beta" and summary.peers == ("alpha",)
        assert summary.processes >= 1 and summary.uptime >= 0
        infos = await a.rpc("beta", "trioactors.processes")
        assert all(isinstance(i, ta.ProcessInfo) and i.pid.node == "beta" for i in infos)
        assert "rex" in {i.name for i in infos}
        (conn,) = await a.rpc("beta", "trioactors.connections")
        assert conn.node == "alpha" and conn.records_in > 0 and conn.bytes_out > 0
        (mine,) = a.connection_stats()
        assert mine.node == "beta" and mine.records_out >= conn.records_in - 1
        assert b.unregister_rpc("add") and not b.unregister_rpc("add")


async def test_rpc_to_an_unreachable_node() -> None:
    async with ta.open_node("alpha", epmd=None, cookie=COOKIE) as a:
        with pytest.raises(ta.CallFailed):
            await a.rpc("nobody@127.0.0.1:1", "trioactors.node_info", timeout=5)
