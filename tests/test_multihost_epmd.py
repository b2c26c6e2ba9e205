"""Erlang's model across real hosts (network namespaces from scripts/netns.sh):
an EPMD per host on port 4369, nodes with the same short name on two hosts
(``alpha@10.77.0.2`` on a trioactors daemon, ``alpha@10.77.0.3`` on Erlang's
real epmd), reached from a third host that runs no EPMD at all, and from this
process (a fourth host). Skipped, with the
reason, where namespaces can't be made.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import pytest
import trio
from helpers import BRIDGE, ROOT, netns_hosts, node_process

import trioactors as ta

pytestmark = pytest.mark.slow

COOKIE = "multihost-epmd-cookie"
EPMD_PORT = 4369  # each namespace has a port space of its own: Erlang's default


def on_host(n: int) -> list[str]:
    return ["ip", "netns", "exec", f"ta-h{n}"]


@pytest.fixture(scope="module")
def hosts() -> Iterator[None]:
    if shutil.which("epmd") is None:
        pytest.skip("Erlang/OTP's epmd is not installed")
    with netns_hosts():
        yield


async def wait_for_epmd(host: str) -> None:
    # The daemon runs in another namespace: nothing to wait on but its port.
    with trio.fail_after(20):
        while True:
            try:
                async with ta.EpmdClient(host, EPMD_PORT, timeout=1) as client:
                    await client.ping()
                return
            except ta.EpmdError:
                await trio.sleep(0.05)


@asynccontextmanager
async def trioactors_epmd_on(n: int) -> AsyncIterator[None]:
    cmd = [*on_host(n), sys.executable, "-m", "trioactors", "epmd", "--port", str(EPMD_PORT)]
    proc = await trio.lowlevel.open_process(cmd, cwd=str(ROOT), stderr=subprocess.DEVNULL)
    try:
        await wait_for_epmd(f"10.77.0.{n}")
        yield
    finally:
        proc.kill()
        with trio.CancelScope(shield=True):
            await proc.wait()


@asynccontextmanager
async def real_epmd_on(n: int) -> AsyncIterator[None]:
    env = {**os.environ, "ERL_EPMD_PORT": str(EPMD_PORT)}
    await trio.run_process([*on_host(n), "epmd", "-daemon", "-relaxed_command_check"], env=env)
    try:
        await wait_for_epmd(f"10.77.0.{n}")
        yield
    finally:
        with trio.CancelScope(shield=True):
            await trio.run_process([*on_host(n), "epmd", "-kill"], env=env, check=False)


@pytest.mark.usefixtures("hosts")
async def test_same_short_name_on_two_hosts_each_with_its_own_epmd() -> None:
    listen = ("--listen", "0.0.0.0:0")  # registers 127.0.0.1: peers dial the host in the name
    async with (
        trioactors_epmd_on(2),
        real_epmd_on(3),
        node_process("alpha@10.77.0.2", *listen, wrap=on_host(2), cookie=COOKIE),
        node_process("alpha@10.77.0.3", *listen, wrap=on_host(3), cookie=COOKIE),
    ):
        # This process, a fourth host, has no EPMD of its own on 4369 (the
        # probe runs unregistered): full names are asked of their hosts.
        async with (
            ta.open_node(
                "probe", listen=f"{BRIDGE}:0", epmd=f"{BRIDGE}:{EPMD_PORT}", cookie=COOKIE
            ) as probe,
            probe.actor() as me,
        ):
            for target in ("alpha@10.77.0.2", "alpha@10.77.0.3"):
                me.send(("echo", target), (me.pid, target))
                assert await me.receive(timeout=10) == ("echo", target)
            assert sorted(probe.nodes()) == ["alpha@10.77.0.2", "alpha@10.77.0.3"]
        # Host 1 runs no EPMD at all: ping asks each host's EPMD, Erlang's way.
        env = {**os.environ, "TRIOACTORS_COOKIE": COOKIE}
        for target in ("alpha@10.77.0.2", "alpha@10.77.0.3"):
            done = await trio.run_process(
                [*on_host(1), sys.executable, "-m", "trioactors", "ping", target],
                env=env,
                cwd=str(ROOT),
                capture_stdout=True,
                capture_stderr=True,
                check=False,
            )
            out = (done.stdout + done.stderr).decode()
            assert done.returncode == 0 and out.splitlines()[-1] == "pong", out
