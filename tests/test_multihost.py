"""Nodes on three hosts: network namespaces made by scripts/netns.sh.

Hosts 10.77.0.2 and 10.77.0.3 each run a `trioactors node` process; this
test process is a fourth host (10.77.0.254, on the bridge) running the EPMD
daemon and a probe node. Across hosts: discovery, remote send, spawn, call
and monitor; a cut cable (host 3 unplugged: packets dropped, no reset) fires
`noconnection` within the tick timeout, and the node is reachable again once
the cable is back. Skipped, with the reason, where namespaces can't be made.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator

import pytest
import trio
from helpers import BRIDGE, netns, netns_hosts, node_process, wait_until

import trioactors as ta

pytestmark = pytest.mark.slow

COOKIE = "multihost-cookie"
TICK = 2.0


@pytest.fixture(scope="module")
def hosts() -> Iterator[None]:
    with netns_hosts():
        yield


def on_host(n: int) -> list[str]:
    return ["ip", "netns", "exec", f"ta-h{n}"]


@pytest.mark.usefixtures("hosts")
async def test_three_hosts_send_spawn_monitor_cut_and_mend() -> None:
    async with trio.open_nursery() as nursery:
        serve = functools.partial(ta.serve_epmd, allow_remote_register=True)
        daemon = await nursery.start(serve, BRIDGE, 0)
        epmd = f"{BRIDGE}:{daemon.port}"
        common = ("--epmd", epmd, "--tick-timeout", str(TICK))
        async with (
            # beta listens on its own address; gamma on every interface, and
            # must still register a routable address (not 127.0.0.1).
            node_process(
                "beta", "--listen", "10.77.0.2:0", *common, wrap=on_host(2), cookie=COOKIE
            ),
            node_process("gamma", "--listen", "0.0.0.0:0", *common, wrap=on_host(3), cookie=COOKIE),
            ta.open_node(
                "probe", listen=f"{BRIDGE}:0", epmd=epmd, cookie=COOKIE, tick_timeout=TICK
            ) as probe,
            probe.actor() as me,
        ):
            registered = {info.name: info for info in await probe.list_nodes()}
            assert registered["beta"].host == "10.77.0.2"
            assert registered["gamma"].host == "10.77.0.3"
            # Discovery connects the probe to both hosts.
            await wait_until(lambda: set(probe.nodes()) == {"beta", "gamma"}, within=20)

            me.send(("echo", "beta"), (me.pid, "across hosts"))
            assert await me.receive(timeout=10) == ("echo", "across hosts")
            assert await probe.call(("counter", "gamma"), 5, timeout=10) == 5
            on_gamma = await probe.spawn_on("gamma", "echo")
            assert on_gamma.node == "gamma"
            me.send(on_gamma, (me.pid, "spawned"))
            assert await me.receive(timeout=10) == ("echo", "spawned")

            ref = me.monitor(on_gamma)
            me.monitor_node("gamma")
            assert netns("cut", "3").returncode == 0
            try:
                # A silent peer is down within the tick timeout (plus the
                # quarter-tick granularity of the check).
                with trio.fail_after(TICK * 3):
                    got = {await me.receive(), await me.receive()}
                assert got == {
                    ta.Down(ref, on_gamma, "noconnection"),
                    ta.NodeDown("gamma", "net_tick_timeout"),
                }
                assert "gamma" not in probe.nodes()
                # beta is unaffected.
                assert await probe.call(("counter", "beta"), 1, timeout=10) == 1
            finally:
                assert netns("mend", "3").returncode == 0
            # The cable is back: gamma is reachable again, same processes.
            assert await probe.connect("gamma") == "gamma"
            assert await probe.call(("counter", "gamma"), 1, timeout=10) == 6
        nursery.cancel_scope.cancel()
