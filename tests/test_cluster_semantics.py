"""Cluster-facing semantics checked against real Erlang/OTP 25 nodes (issue 10).

What `erl` shows, and these tests hold trioactors to:

- A peer that stops (``init:stop()``): its processes that end as it stops
  reach remote links and monitors with their own reason (``shutdown``); what
  is still linked or monitored when the connection closes fires with
  ``noconnection``; node monitors see ``connection_closed``. The node that
  calls ``disconnect_node`` sees ``disconnect``, its peer ``connection_closed``.
- ``gen_server:call`` to a pid or ``{Name, Node}`` of a lost or unknown node
  exits with ``{nodedown, Node}``.
- ``monitor(process, Name)`` and ``monitor(process, {Name, Node})`` report
  ``{Name, Node}`` in the ``'DOWN'``, locally too.
- ``global``: the default resolver kills the loser (``killed``), a resolver
  of one's own only unregisters it; ``re_register_name`` moves a name and
  leaves the old holder running.
- ``gen_server:multi_call`` / ``abcast``: ``{Replies, BadNodes}`` in the
  order of the nodes given.
"""

from __future__ import annotations

from typing import Any

import pytest
import trio
from helpers import wait_until
from test_cluster_services import cluster, echo
from test_dist_node import Sync, addr, idle, node, synced

import trioactors as ta
from trioactors.wire.terms import Pid


class Store(ta.GenServer):
    """Keeps the casts it got; a call answers (node, request), or never for "hang"."""

    async def init(self) -> None:
        self.casts: list[Any] = []

    async def handle_call(self, request: Any, caller: ta.Caller) -> Any:
        if request == "hang":
            return ta.NO_REPLY
        if request == "casts":
            return self.casts
        return (self.ctx.pid.node, request)

    async def handle_cast(self, request: Any) -> None:
        self.casts.append(request)


# -- 1. a peer that stops gracefully


async def test_peer_leaving_gives_real_reasons_then_connection_closed() -> None:
    async with (
        node("alpha") as a,
        a.actor(trap_exits=True) as me,
        a.actor() as watcher,
    ):
        a.monitor_nodes(watcher.pid)
        async with node("beta") as b:
            svc = b.spawn(idle, name="svc")
            await b.start_server(Sync, name="sync")
            await a.connect(addr(b))
            assert await watcher.receive(timeout=5) == ta.NodeUp("beta")
            me.link(svc)
            by_pid = me.monitor(svc)
            by_name = me.monitor(("svc", "beta"))
            me.monitor_node("beta")
            await synced(a, "beta")  # the link and monitors are on beta
        # beta's actors ended with shutdown while the connection was up, so
        # that is what reached alpha (Erlang: an application's processes
        # stopped by init:stop()); then the connection closed.
        got = [await me.receive(timeout=5) for _ in range(4)]
        assert got[:3] == [
            ta.Exit(svc, "shutdown"),
            ta.Down(by_pid, svc, "shutdown"),
            ta.Down(by_name, ("svc", "beta"), "shutdown"),
        ]
        assert got[3] == ta.NodeDown("beta", "connection_closed")
        assert await watcher.receive(timeout=5) == ta.NodeDown("beta", "connection_closed")


async def test_disconnect_is_disconnect_here_and_connection_closed_there() -> None:
    async with (
        node("alpha") as a,
        node("beta") as b,
        a.actor() as wa,
        b.actor() as wb,
    ):
        a.monitor_nodes(wa.pid)
        b.monitor_nodes(wb.pid)
        await a.connect(addr(b))
        assert await wa.receive(timeout=5) == ta.NodeUp("beta")
        assert await wb.receive(timeout=5) == ta.NodeUp("alpha")
        assert a.disconnect("beta")
        assert await wa.receive(timeout=5) == ta.NodeDown("beta", "disconnect")
        assert await wb.receive(timeout=5) == ta.NodeDown("alpha", "connection_closed")


# -- 2. calls to a lost or unknown node


async def test_calls_to_a_lost_node_fail_with_nodedown() -> None:
    async with node("alpha", connect_timeout=5) as a:
        async with node("beta") as b:
            server = await b.start_server(Store, name="store")
            assert server is not None
            await a.connect(addr(b))
            assert await a.call(server, 1, timeout=5) == ("beta", 1)
        # beta is gone (nothing listens at its address any more).
        async with a.actor() as me:
            for dest in (server, ("store", "beta")):
                with pytest.raises(ta.CallFailed) as info:
                    await me.call(dest, 2, timeout=30)
                assert info.value.reason == ("nodedown", "beta")
                assert "node 'beta' is down or unreachable" in str(info.value)
        # A node never heard of: no address, no discovery.
        with pytest.raises(ta.CallFailed) as info:
            await a.call(("store", "ghost"), 3, timeout=30)
        assert info.value.reason == ("nodedown", "ghost")


async def test_pending_call_fails_with_nodedown_when_the_connection_drops() -> None:
    async with node("alpha") as a, node("beta") as b:
        server = await b.start_server(Store, name="store")
        assert server is not None
        await b.start_server(Sync, name="sync")
        await a.connect(addr(b))
        failures: list[ta.CallFailed] = []

        async def pending(task_status: trio.TaskStatus[None]) -> None:
            task_status.started()  # the request is queued before the first checkpoint
            try:
                await a.call(server, "hang", timeout=30)
            except ta.CallFailed as exc:
                failures.append(exc)

        async with trio.open_nursery() as n:
            await n.start(pending)
            await synced(a, "beta")  # the request (and its monitor) reached beta
            peer = b.kernel.peers.get("alpha")
            assert peer is not None and peer.conn is not None
            peer.conn.abort("test")  # a pulled cable
        assert [f.reason for f in failures] == [("nodedown", "beta")]


# -- 3. monitors by name report (name, node)


async def test_name_monitors_report_name_and_node() -> None:
    async with node("alpha") as a, node("beta") as b, a.actor() as me:
        await b.start_server(Sync, name="sync")
        await a.connect(addr(b))
        local = a.spawn(idle, name="here")
        ref = me.monitor("here")
        a.exit(local, "bye")
        assert await me.receive(timeout=5) == ta.Down(ref, ("here", "alpha"), "bye")
        ref = me.monitor("nobody")
        assert await me.receive(timeout=5) == ta.Down(ref, ("nobody", "alpha"), "noproc")
        # (name, this node) stays as given.
        a.spawn(idle, name="here2")
        ref = me.monitor(("here2", "alpha"))
        a.exit(a.whereis("here2"), "bye")  # type: ignore[arg-type]
        assert await me.receive(timeout=5) == ta.Down(ref, ("here2", "alpha"), "bye")
        # ("global", name) watches the holder: the Down names the pid.
        holder = a.spawn(idle)
        assert await a.register_global("g", holder)
        ref = me.monitor(("global", "g"))
        a.exit(holder, "bye")
        assert await me.receive(timeout=5) == ta.Down(ref, holder, "bye")
        # A remote name, ended and lost with its connection.
        b.spawn(idle, name="there")
        ref = me.monitor(("there", "beta"))
        await synced(a, "beta")
        b.exit(b.whereis("there"), "bye")  # type: ignore[arg-type]
        assert await me.receive(timeout=5) == ta.Down(ref, ("there", "beta"), "bye")
        b.spawn(idle, name="there")
        ref = me.monitor(("there", "beta"))
        await synced(a, "beta")
        assert a.disconnect("beta")
        assert await me.receive(timeout=5) == ta.Down(ref, ("there", "beta"), "noconnection")


# -- 4. global name conflicts and re_register_global


def _keep_second(name: str, pid1: Pid, pid2: Pid) -> Pid:
    return pid2


@pytest.mark.parametrize("custom", [False, True])
async def test_global_conflict_default_kills_custom_only_unregisters(custom: bool) -> None:
    async with cluster("alpha") as c:
        alpha = c.nodes["alpha"]
        beta = await c.start("beta")  # not connected: a partition
        pa, pb = alpha.spawn(echo), beta.spawn(echo)
        resolve = _keep_second if custom else None
        assert await alpha.register_global("svc", pa, resolve=resolve)
        assert await beta.register_global("svc", pb)
        async with alpha.actor() as wa, beta.actor() as wb:
            ra, rb = wa.monitor(pa), wb.monitor(pb)
            await c.connect("alpha", "beta")
            if custom:
                # _keep_second: beta's stays; alpha's is only unregistered.
                await wait_until(
                    lambda: alpha.whereis_global("svc") == pb == beta.whereis_global("svc")
                )
                assert alpha.is_alive(pa)
            else:
                # "alpha" sorts first: beta's pid is killed, as by
                # global:random_exit_name's exit(Pid, kill).
                assert await wb.receive(timeout=10) == ta.Down(rb, pb, "killed")
                assert alpha.whereis_global("svc") == pa
                await wait_until(lambda: beta.whereis_global("svc") == pa)
            with pytest.raises(trio.TooSlowError):
                await wa.receive(timeout=0.2)  # alpha's pid lives on either way
            wa.demonitor(ra)


async def test_re_register_global_moves_the_name() -> None:
    async with cluster("alpha", "beta") as c:
        alpha, beta = c.nodes["alpha"], c.nodes["beta"]
        old = beta.spawn(echo)
        assert await beta.register_global("svc", old)
        await wait_until(lambda: alpha.whereis_global("svc") == old)
        # Taken by beta's pid: register refuses, re_register moves it.
        new = alpha.spawn(echo)
        assert await alpha.register_global("svc", new) is False
        assert await alpha.re_register_global("svc", new) is True
        assert alpha.whereis_global("svc") == new
        await wait_until(lambda: beta.whereis_global("svc") == new)
        assert beta.is_alive(old)  # the old holder keeps running
        # A remote pid: done by its own node.
        assert await alpha.re_register_global("svc", old) is True
        await wait_until(lambda: alpha.whereis_global("svc") == old == beta.whereis_global("svc"))
        assert alpha.is_alive(new)
        # A name nobody holds yet.
        assert await alpha.re_register_global("fresh", new) is True
        await wait_until(lambda: beta.whereis_global("fresh") == new)
        # A dead pid: the name ends up unregistered.
        dead = alpha.spawn(echo)
        alpha.send(dead, "stop")
        await alpha.join(dead)
        assert await alpha.re_register_global("svc", dead) is True
        await wait_until(
            lambda: alpha.whereis_global("svc") is None and beta.whereis_global("svc") is None
        )
        # A pid of a node not connected.
        assert await alpha.re_register_global("svc", Pid("ghost", 1, 0, 1)) is False
        # The name works as a destination after the move.
        assert await alpha.re_register_global("svc", new) is True
        async with beta.actor() as me:
            await wait_until(lambda: beta.whereis_global("svc") == new)
            me.send(("global", "svc"), ("ping", me.pid))
            assert await me.receive(timeout=5) == ("pong", new)


# -- 5. multi_call and abcast


async def test_multi_call_and_abcast() -> None:
    async with cluster("alpha", "beta", "gamma") as c:
        alpha, beta, gamma = c.nodes["alpha"], c.nodes["beta"], c.nodes["gamma"]
        for n in (alpha, beta):
            await n.start_server(Store, name="store")
        # gamma has no "store"; ghost is no node at all.
        replies, bad = await alpha.multi_call(
            ["beta", "ghost", "alpha", "gamma", "beta"], "store", "hi", timeout=10
        )
        assert replies == [("beta", ("beta", "hi")), ("alpha", ("alpha", "hi")),
                           ("beta", ("beta", "hi"))]  # fmt: skip
        assert bad == ["ghost", "gamma"]
        # None: this node and every connected one.
        replies, bad = await gamma.multi_call(None, "store", "x", timeout=10)
        assert sorted(replies) == [("alpha", ("alpha", "x")), ("beta", ("beta", "x"))]
        assert bad == ["gamma"]
        # A server that does not answer in time is a bad node; the others
        # still answer.
        await gamma.start_server(Store, name="store")
        replies, bad = await alpha.multi_call(["alpha", "gamma"], "store", "hang", timeout=0.3)
        assert (replies, bad) == ([], ["alpha", "gamma"])
        replies, bad = await alpha.multi_call([], "store", "x")
        assert (replies, bad) == ([], [])
        with pytest.raises(ta.NotSerializable):
            await alpha.multi_call(["beta"], "store", object(), timeout=10)
        with pytest.raises(TypeError, match="list of node names"):
            await alpha.multi_call("beta", "store", "x")

        alpha.abcast(["alpha", "beta", "ghost"], "store", "c1")
        alpha.abcast(None, "store", "c2")
        for name in ("alpha", "beta"):
            assert await alpha.call(("store", name), "casts", timeout=10) == ["c1", "c2"]
        assert await alpha.call(("store", "gamma"), "casts", timeout=10) == ["c2"]
