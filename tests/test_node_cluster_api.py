"""The Node's cluster-service API between real nodes: the ("global", name)
destination for send, call and monitor; registered_globals; local group
members, which_groups and monitor_group notifications across nodes."""

from __future__ import annotations

from typing import Any

import trio
from helpers import wait_until
from test_cluster_services import cluster, echo

import trioactors as ta


class Counter(ta.GenServer):
    async def init(self) -> None:
        self.n = 0

    async def handle_call(self, request: Any, caller: ta.Caller) -> Any:
        self.n += request
        return self.n


async def test_global_destination_send_call_monitor() -> None:
    async with cluster("alpha", "beta") as c:
        alpha, beta = c.nodes["alpha"], c.nodes["beta"]
        server = await alpha.start_server(Counter)
        assert server is not None
        assert await alpha.register_global("counter", server)
        pinger = alpha.spawn(echo)
        assert await alpha.register_global("echo", pinger)
        await wait_until(lambda: beta.registered_globals() == ["counter", "echo"])
        assert alpha.registered_globals() == ["counter", "echo"]

        async with beta.actor() as me:
            # send and call through the cluster-wide name, from another node
            me.send(("global", "echo"), ("ping", me.pid))
            _, answer = await me.receive(timeout=5)
            assert answer == pinger
            assert await me.call(("global", "counter"), 2, timeout=5) == 2
            assert await beta.call(("global", "counter"), 3, timeout=5) == 5

            # a monitor through the name watches the pid holding it
            ref = me.monitor(("global", "echo"))
            # over the same connection as the monitor, so it arrives after it
            me.send(("global", "echo"), "stop")
            down = await me.receive(timeout=5, match=lambda m: isinstance(m, ta.Down))
            assert (down.ref, down.reason) == (ref, "normal"), down
            await wait_until(lambda: beta.whereis_global("echo") is None)

            # an unregistered name: dropped on send, noproc for monitor and call
            me.send(("global", "echo"), "lost")
            ref = me.monitor(("global", "nobody"))
            down = await me.receive(timeout=5)
            assert down == ta.Down(ref, ("global", "nobody"), "noproc")
            try:
                await me.call(("global", "nobody"), 1, timeout=5)
            except ta.CallFailed as exc:
                assert exc.reason == "noproc"
            else:
                raise AssertionError("a call to an unregistered global name must fail")


async def test_global_destination_without_a_node() -> None:
    async with ta.open_actor_system() as system, system.actor() as me:
        me.send(("global", "x"), "dropped")
        ref = me.monitor(("global", "x"))
        assert await me.receive(timeout=1) == ta.Down(ref, ("global", "x"), "noproc")


async def test_group_api_on_node() -> None:
    async with cluster("alpha", "beta") as c:
        alpha, beta = c.nodes["alpha"], c.nodes["beta"]
        async with alpha.actor() as watcher:
            ref = alpha.monitor_group("g", watcher.pid)
            worker = beta.spawn(echo)
            beta.join_group("g", worker)
            beta.join_group("g", worker)  # counted
            for _ in range(2):  # one notification per join
                joined = await watcher.receive(timeout=5)
                assert isinstance(joined, ta.GroupJoin) and joined.ref == ref
                assert [p.id for p in joined.pids] == [worker.id]
            await wait_until(lambda: len(alpha.group_members("g")) == 2)
            assert alpha.local_group_members("g") == []
            assert beta.local_group_members("g") == [worker, worker]
            assert alpha.which_groups() == beta.which_groups() == ["g"]
            try:
                alpha.join_group("g", alpha.group_members("g")[0])
            except ta.NotLocalPid:
                pass
            else:
                raise AssertionError("joining another node's pid must be refused")

            beta.send(worker, "stop")
            left = await watcher.receive(timeout=5, match=lambda m: isinstance(m, ta.GroupLeave))
            assert left.ref == ref and len(left.pids) == 2  # both joins go with it
            await wait_until(lambda: alpha.group_members("g") == [])
            assert alpha.which_groups() == []
            assert alpha.demonitor_group(ref) is True
            assert alpha.demonitor_group(ref) is False
            other = beta.spawn(echo)
            beta.join_group("g", other)
            await wait_until(lambda: len(alpha.group_members("g")) == 1)
            with trio.move_on_after(0.2):
                msg = await watcher.receive()
                raise AssertionError(f"no notification after demonitor_group, got {msg!r}")
