"""Erlang's per-host EPMD model beside the central daemon: a node named
``alpha@host`` registers ``alpha`` with its own host's EPMD and is reached by
asking that EPMD (PORT_PLEASE2 on a real epmd), so the same short name runs on
two hosts at once.

Two "hosts" on one machine: 127.0.0.1 and 127.0.0.2 (both loopback on Linux),
each with an EPMD on the same port, as every host of an Erlang cluster uses
one ``ERL_EPMD_PORT``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
import trio
from helpers import ROOT, node_process, wait_node_up

import trioactors as ta
from trioactors.cluster.discovery import registered_name
from trioactors.cluster.node import Node
from trioactors.wire import epmd_erlang as erl

COOKIE = "per-host-epmd-test"
H1, H2 = "127.0.0.1", "127.0.0.2"


def _second_loopback() -> bool:
    try:
        with socket.socket() as s:
            s.bind((H2, 0))
    except OSError:
        return False
    return True


needs_two_hosts = pytest.mark.skipif(
    not _second_loopback(), reason="127.0.0.2 is not a loopback address here"
)
needs_epmd = pytest.mark.skipif(
    shutil.which("epmd") is None, reason="Erlang/OTP's epmd is not installed"
)


def _own_routable_address() -> str | None:
    # A UDP "connect" sends nothing; it only picks the source address.
    for probe in ("10.255.255.255", "192.0.2.1", "198.51.100.1"):
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.connect((probe, 9))
                host = str(s.getsockname()[0])
        except OSError:
            continue
        if not host.startswith("127.") and host != "0.0.0.0":
            return host
    return None


def port_free_on_both() -> int:
    """A port free on H1 and on H2 (and ::1, where a real epmd binds too)."""
    for _ in range(100):
        with socket.socket() as a:
            a.bind((H1, 0))
            port = int(a.getsockname()[1])
            try:
                with socket.socket() as b, socket.socket(socket.AF_INET6) as c:
                    b.bind((H2, port))
                    c.bind(("::1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no port free on both loopback addresses")


@pytest.fixture
def shared_port() -> int:
    return port_free_on_both()


@pytest.fixture
def real_epmd_on_h1(shared_port: int) -> Iterator[int]:
    """A real ``epmd -daemon`` on H1 (and ::1) at `shared_port`, killed after."""
    env = {**os.environ, "ERL_EPMD_PORT": str(shared_port)}
    subprocess.run(
        ["epmd", "-address", H1, "-daemon", "-relaxed_command_check"], env=env, check=True
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection((H1, shared_port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("real epmd did not start") from None
                time.sleep(0.02)
        yield shared_port
    finally:
        subprocess.run(["epmd", "-kill"], env=env, capture_output=True)


async def echo(ctx: ta.Context) -> None:
    """Answers ``(sender, payload)`` with ``("echo", this node, payload)``."""
    while True:
        sender, payload = await ctx.receive()
        ctx.send(sender, ("echo", ctx.pid.node, payload))


async def ask_echo(node: Node, target: str) -> object:
    async with node.actor() as me:
        node.send(("echo", target), (me.pid, "hi"))
        with trio.fail_after(20):
            return await me.receive()


def test_which_name_a_node_registers() -> None:
    # Its own host's EPMD: the short name, as an Erlang node registers.
    assert registered_name("alpha@h2", "127.0.0.1", "10.0.0.2") == "alpha"
    assert registered_name("alpha@h2", "h2", "10.0.0.2") == "alpha"
    assert registered_name("alpha@h2", "10.0.0.2", "10.0.0.2") == "alpha"
    # A daemon elsewhere (a central one): the full name, unique there.
    assert registered_name("alpha@h2", "10.0.0.9", "10.0.0.2") == "alpha@h2"
    assert registered_name("alpha", "10.0.0.9", "10.0.0.2") == "alpha"


async def test_full_node_names_are_accepted_and_checked() -> None:
    async with ta.open_node("alpha@127.0.0.1", epmd=None, cookie=COOKIE) as node:
        assert node.name == "alpha@127.0.0.1"
        assert node.spawn(echo).node == "alpha@127.0.0.1"
    for bad in ("alpha@h2:5000", "h2:5000", "al pha@h2", "@h2", "alpha@"):
        with pytest.raises(ValueError, match="a node name is"):
            async with ta.open_node(bad, epmd=None, cookie=COOKIE):
                pass


@needs_two_hosts
async def test_same_short_name_on_two_hosts_each_with_its_own_epmd(
    nursery: trio.Nursery, shared_port: int
) -> None:
    port = shared_port
    epmd1: ta.EpmdServer = await nursery.start(ta.serve_epmd, H1, port)
    epmd2: ta.EpmdServer = await nursery.start(ta.serve_epmd, H2, port)
    async with (
        ta.open_node("alpha@127.0.0.1", listen=f"{H1}:0", epmd=f"{H1}:{port}", cookie=COOKIE) as a1,
        ta.open_node("alpha@127.0.0.2", listen=f"{H2}:0", epmd=f"{H2}:{port}", cookie=COOKIE) as a2,
        # Knows only H1's daemon: alpha@127.0.0.2 is found by asking H2's.
        ta.open_node(
            "client", epmd=f"{H1}:{port}", cookie=COOKIE, discovery_interval=1000.0
        ) as client,
    ):
        a1.spawn(echo, name="echo")
        a2.spawn(echo, name="echo")
        for server, node in ((epmd1, "alpha@127.0.0.1"), (epmd2, "alpha@127.0.0.2")):
            info = server.lookup("alpha")
            assert info is not None and info.node_name == node
        for target in ("alpha@127.0.0.2", "alpha@127.0.0.1"):
            assert await ask_echo(client, target) == ("echo", target, "hi")
        assert client.nodes() == ["alpha@127.0.0.1", "alpha@127.0.0.2"]
        # connect() takes the full name too, and a node not on that host is not found.
        assert await client.connect("alpha@127.0.0.2") == "alpha@127.0.0.2"
        with pytest.raises(ta.ConnectionFailed, match="not registered"):
            await client.connect("beta@127.0.0.2")
    epmd1.shutdown()
    epmd2.shutdown()


async def test_full_names_in_a_central_daemon(nursery: trio.Nursery) -> None:
    # One daemon for both "hosts", at an address that is neither's: each
    # registers its full name there, and both live side by side.
    address = _own_routable_address()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address for a central daemon")
    central: ta.EpmdServer = await nursery.start(ta.serve_epmd, address, 0)
    epmd = f"{address}:{central.port}"
    async with (
        ta.open_node("alpha@h1.example", listen=f"{H1}:0", epmd=epmd, cookie=COOKIE) as a1,
        ta.open_node("alpha@h3.example", listen=f"{H1}:0", epmd=epmd, cookie=COOKIE) as a3,
        ta.open_node("client", epmd=epmd, cookie=COOKIE, discovery_interval=1000.0) as client,
    ):
        a1.spawn(echo, name="echo")
        a3.spawn(echo, name="echo")
        assert {n.name for n in central.nodes()} == {
            "alpha@h1.example",
            "alpha@h3.example",
            "client",
        }
        for target in ("alpha@h1.example", "alpha@h3.example"):
            assert await ask_echo(client, target) == ("echo", target, "hi")
    central.shutdown()


@needs_two_hosts
@needs_epmd
@pytest.mark.erlang
async def test_per_host_lookup_and_discovery_through_a_real_epmd(
    nursery: trio.Nursery, real_epmd_on_h1: int
) -> None:
    port = real_epmd_on_h1
    ours: ta.EpmdServer = await nursery.start(ta.serve_epmd, H2, port)
    real = f"{H1}:{port}"
    async with (
        # Registered with the real epmd (ALIVE2), found with PORT_PLEASE2.
        ta.open_node("alpha@127.0.0.1", epmd=real, cookie=COOKIE, discovery_interval=0.1) as a1,
        ta.open_node("alpha@127.0.0.2", listen=f"{H2}:0", epmd=f"{H2}:{port}", cookie=COOKIE) as a2,
        ta.open_node("client", epmd=f"{H2}:{port}", cookie=COOKIE, discovery_interval=1000.0) as c,
    ):
        a1.spawn(echo, name="echo")
        a2.spawn(echo, name="echo")
        listing = await trio.run_process(
            ["epmd", "-names"],
            env={**os.environ, "ERL_EPMD_PORT": str(port)},
            capture_stdout=True,
        )
        names = listing.stdout.decode()
        assert f"name alpha at port {a1.address[1]}" in names, names  # Erlang's view
        for target in ("alpha@127.0.0.1", "alpha@127.0.0.2"):
            assert await ask_echo(c, target) == ("echo", target, "hi")
        # A second node of the real epmd finds alpha@127.0.0.1 by NAMES + PORT_PLEASE2.
        async with ta.open_node(
            "beta@127.0.0.1", epmd=real, cookie=COOKIE, discovery_interval=0.1
        ) as beta:
            await wait_node_up(beta, "alpha@127.0.0.1")
            assert await ask_echo(beta, "alpha@127.0.0.1") == ("echo", "alpha@127.0.0.1", "hi")
    ours.shutdown()


@needs_two_hosts
@pytest.mark.slow
async def test_cli_node_and_ping_with_full_names(nursery: trio.Nursery, shared_port: int) -> None:
    port = shared_port
    await nursery.start(ta.serve_epmd, H1, port)
    host2: ta.EpmdServer = await nursery.start(ta.serve_epmd, H2, port)
    args = ("--listen", f"{H2}:0", "--epmd", f"{H2}:{port}")
    async with node_process("alpha@127.0.0.2", *args, cookie=COOKIE) as child:
        info = host2.lookup("alpha")
        assert info is not None and info.node_name == "alpha@127.0.0.2"
        env = {**os.environ, "TRIOACTORS_COOKIE": COOKIE}

        async def ping(target: str) -> tuple[int, str]:
            cmd = [sys.executable, "-m", "trioactors", "ping", target, "--epmd", f"{H1}:{port}"]
            done = await trio.run_process(
                cmd, env=env, cwd=str(ROOT), capture_stdout=True, capture_stderr=True, check=False
            )
            return done.returncode, (done.stdout + done.stderr).decode()

        # H1's daemon does not know it: the ping asks H2's EPMD.
        code, out = await ping("alpha@127.0.0.2")
        assert (code, out.splitlines()[-1]) == (0, "pong"), out
        code, out = await ping("alpha@127.0.0.1")
        assert code == 1 and "not registered" in out, out
        assert child.proc.returncode is None


def test_alive2_marker_carries_the_full_name() -> None:
    extra = erl.trioactors_extra(2, "alpha@h2")
    assert extra == b"trioactors/2 alpha@h2"
    assert erl.parse_trioactors_extra(extra) == 2
    assert erl.parse_trioactors_node(extra) == "alpha@h2"
    assert erl.parse_trioactors_node(b"trioactors/2") is None
    too_long = "a@" + "h" * erl.MAXSYMLEN
    assert erl.trioactors_extra(2, too_long) == b"trioactors/2"  # left out
    for bad in (b"trioactors/2 ", b"trioactors/2 a b", b"trioactors/2 \xff"):
        assert erl.parse_trioactors_extra(bad) is None


@needs_two_hosts
async def test_full_name_found_on_its_host_while_own_epmd_is_down(
    nursery: trio.Nursery, shared_port: int
) -> None:
    port = shared_port
    await nursery.start(ta.serve_epmd, H2, port)  # nothing on H1:port
    async with (
        ta.open_node("alpha@127.0.0.2", listen=f"{H2}:0", epmd=f"{H2}:{port}", cookie=COOKIE) as a2,
        ta.open_node("client", epmd=f"{H1}:{port}", cookie=COOKIE) as client,
    ):
        a2.spawn(echo, name="echo")
        assert await ask_echo(client, "alpha@127.0.0.2") == ("echo", "alpha@127.0.0.2", "hi")
