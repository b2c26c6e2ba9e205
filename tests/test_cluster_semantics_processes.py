"""Issue 10's failure semantics with a real `trioactors node` process: stopped
by SIGTERM (Erlang's ``init:stop()``) and killed (SIGKILL), as `erl` shows them.

SIGTERM: the node's actors end with ``shutdown`` while the connection is up,
so that reason reaches remote links and monitors; node monitors get
``connection_closed``; later calls fail with ``("nodedown", node)``.
SIGKILL: everything crossing the connection fires with ``noconnection`` and
calls fail with ``("nodedown", node)``.
"""

from __future__ import annotations

import signal

import pytest
import trio
from helpers import node_process
from test_dist_processes import COOKIE

import trioactors as ta

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
async def test_stopped_or_killed_node_process(sig: signal.Signals) -> None:
    async with (
        node_process("beta", "--epmd", "none") as beta,
        ta.open_node("alpha", epmd=None, cookie=COOKIE, connect_timeout=5) as alpha,
        alpha.actor(trap_exits=True) as me,
        alpha.actor() as watcher,
    ):
        alpha.monitor_nodes(watcher.pid)
        await alpha.connect(beta.target)
        assert await watcher.receive(timeout=10) == ta.NodeUp("beta")
        echo = await alpha.spawn_on("beta", "echo", link_to=me.pid)
        assert await alpha.call(("counter", "beta"), 0, timeout=10) == 0
        by_name = me.monitor(("counter", "beta"))
        by_pid = me.monitor(echo)
        me.monitor_node("beta")
        # A round trip after the monitors: they are on beta.
        me.send(("echo", "beta"), (me.pid, "synced"))
        assert await me.receive(timeout=10) == ("echo", "synced")
        beta.proc.send_signal(sig)
        with trio.fail_after(20):
            code = await beta.proc.wait()
        why = "shutdown" if sig == signal.SIGTERM else "noconnection"
        got = [await me.receive(timeout=10) for _ in range(4)]
        assert ta.Exit(echo, why) in got
        assert ta.Down(by_pid, echo, why) in got
        assert ta.Down(by_name, ("counter", "beta"), why) in got
        assert ta.NodeDown("beta", "connection_closed") in got
        assert await watcher.receive(timeout=10) == ta.NodeDown("beta", "connection_closed")
        if sig == signal.SIGTERM:
            assert code == 0
        for dest in (echo, ("counter", "beta")):
            with pytest.raises(ta.CallFailed) as info:
                await me.call(dest, 1, timeout=30)
            assert info.value.reason == ("nodedown", "beta")
