"""Our EPMD against the real thing: Erlang/OTP's `erl` and `epmd`.

These need Debian's erlang-nox (`make test` installs it when it can); without
`erl` and `epmd` on PATH they skip. Real epmd instances run on free ports,
never on 4369.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator

import pytest
import trio
from helpers import packet

import trioactors as ta

pytestmark = [
    pytest.mark.erlang,
    pytest.mark.skipif(
        shutil.which("erl") is None or shutil.which("epmd") is None,
        reason="Erlang/OTP (erl, epmd) is not installed: apt-get install erlang-nox "
        "(scripts/install-test-tools.sh does it in `make test`)",
    ),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def alive2(name: bytes, port: int, *, high: int = 6, extra: bytes = b"") -> bytes:
    body = (
        struct.pack(">BHBBHHH", 120, port, 77, 0, high, 5, len(name))
        + name
        + struct.pack(">H", len(extra))
        + extra
    )
    return packet(body)


def epmd_env(port: int) -> dict[str, str]:
    return dict(os.environ, ERL_EPMD_PORT=str(port))


def start_real_epmd(port: int, *, relaxed: bool = True) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        ["epmd", "-port", str(port)] + (["-relaxed_command_check"] if relaxed else []),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc
        except OSError:
            time.sleep(0.02)
    proc.kill()
    raise RuntimeError("real epmd did not start")


@pytest.fixture
def real_epmd() -> Iterator[int]:
    port = free_port()
    proc = start_real_epmd(port)
    try:
        yield port
    finally:
        proc.kill()
        proc.wait()


@pytest.fixture
async def ours(nursery: trio.Nursery) -> AsyncIterator[ta.EpmdServer]:
    srv: ta.EpmdServer = await nursery.start(
        lambda task_status: ta.serve_epmd(
            "127.0.0.1", 0, relaxed_command_check=True, task_status=task_status
        )
    )
    yield srv
    srv.shutdown()


async def exchange(port: int, data: bytes, *, want: int = 0) -> bytes:
    """Send a request; the answer until close (or its first `want` bytes)."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    out = b""
    async with stream:
        try:
            await stream.send_all(data)
            with trio.fail_after(5):
                while chunk := await stream.receive_some(65536):
                    out += chunk
                    if want and len(out) >= want:
                        break
        except trio.BrokenResourceError:
            pass
    return out


async def wait_names(server: ta.EpmdServer, present: bool, name: str, seconds: float) -> None:
    with trio.fail_after(seconds):
        while (server.lookup(name) is not None) != present:
            await server.wait_changed()


# --------------------------------------------------------------------------- erl and epmd -> us


async def test_real_erl_registers_with_our_daemon_and_disappears(
    ours: ta.EpmdServer,
) -> None:
    proc = await trio.lowlevel.open_process(
        ["erl", "-sname", "trioerl", "-start_epmd", "false", "-noshell"],
        env=epmd_env(ours.port),
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
    )
    try:
        await wait_names(ours, True, "trioerl", 30)
        info = ours.lookup("trioerl")
        assert info is not None and info.kind == "erlang"
        assert info.erlang is not None and info.erlang.node_type == 77
        assert info.erlang.highest_version == 6 and info.creation is not None
        async with ta.EpmdClient("127.0.0.1", ours.port) as client:
            assert await client.lookup("trioerl") == info
    finally:
        proc.kill()
        await proc.wait()
    await wait_names(ours, False, "trioerl", 10)


async def test_real_erlang_client_code_reads_our_answers(ours: ta.EpmdServer) -> None:
    async with ta.EpmdClient("127.0.0.1", ours.port) as client:
        await client.register("alpha", "127.0.0.1", 5000)
        stream = await trio.open_tcp_stream("127.0.0.1", ours.port)
        async with stream:
            await stream.send_all(alive2(b"beam", 6000, extra=b"\x00\xffx"))
            assert (await stream.receive_some(6))[:2] == b"v\x00"
            script = (
                'io:format("~p~n~p~n~p~n", [erl_epmd:port_please("alpha", "127.0.0.1"), '
                'net_adm:names("127.0.0.1"), erl_epmd:port_please("nobody", "127.0.0.1")]), '
                "halt()."
            )
            result = await trio.run_process(
                ["erl", "-noshell", "-start_epmd", "false", "-eval", script],
                env=epmd_env(ours.port),
                capture_stdout=True,
            )
            lines = result.stdout.decode().split("\n")
            assert lines[0] == "{port,5000,6}"
            assert lines[1] in (
                '{ok,[{"alpha",5000},{"beam",6000}]}',
                '{ok,[{"beam",6000},{"alpha",5000}]}',
            )
            assert lines[2] == "noport"
            names = await trio.run_process(
                ["epmd", "-names"], env=epmd_env(ours.port), capture_stdout=True
            )
            assert names.stdout.decode() == (
                f"epmd: up and running on port {ours.port} with data:\n"
                "name beam at port 6000\nname alpha at port 5000\n"
            )


# --------------------------------------------------------------------------- byte for byte


DIFFERENTIAL = [
    packet(b"n"),
    packet(b"znobody"),
    packet(b"znobody\x00"),
    packet(b"z"),
    packet(b"zbad\x00name"),
    packet(b"z\xc3\x28"),
    packet(b"z" + b"a" * 256),
    packet(b"Q"),
    packet(b"a\x00\x01x"),
    b"\x00\x00",
    b"\x0b\xf2" + b"x" * 10,
    b"\x00\x01nn",
    b"GET / HTTP/1.1\r\n\r\n",
    packet(b"sghost"),
    packet(b"s"),
    packet(b"x" + b"\x00" * 12),
    alive2(b"nul\x00name", 1),
]


async def test_same_bytes_as_real_epmd(real_epmd: int, ours: ta.EpmdServer) -> None:
    for request in DIFFERENTIAL:
        theirs = await exchange(real_epmd, request)
        mine = await exchange(ours.port, request)
        if request == packet(b"n"):
            theirs, mine = theirs[4:], mine[4:]  # the daemons' own ports differ
        assert mine == theirs, request

    # Registrations held open on both daemons.
    held: list[trio.SocketStream] = []
    for port in (real_epmd, ours.port):
        for req in (alive2(b"one", 4001, extra=b"\x01\x02"), alive2(b"two", 4002, high=5)):
            s = await trio.open_tcp_stream("127.0.0.1", port)
            await s.send_all(req)
            resp = await s.receive_some(64)
            assert resp[:2] in (b"v\x00", b"y\x00"), resp
            held.append(s)
    try:
        for request, want in [
            (packet(b"zone"), 0),
            (packet(b"ztwo"), 0),
            (alive2(b"one", 1), 6),  # taken
            (alive2(b"two", 1, high=5), 4),  # taken, old-style answer
            (alive2(b"n" * 256, 1), 6),
            (alive2(b"\xc3\x28", 1), 6),
            (alive2(b"e", 1, extra=b"x" * 1021), 6),
        ]:
            theirs = await exchange(real_epmd, request, want=want)
            mine = await exchange(ours.port, request, want=want)
            assert mine == theirs, request
        theirs = await exchange(real_epmd, packet(b"n"))
        mine = await exchange(ours.port, packet(b"n"))
        assert mine[4:] == theirs[4:]
        dump_theirs = await exchange(real_epmd, packet(b"d"))
        dump_mine = await exchange(ours.port, packet(b"d"))

        def no_fd(d: bytes) -> bytes:
            return re.sub(rb"fd = \d+", b"fd = N", d[4:])

        assert no_fd(dump_mine) == no_fd(dump_theirs)
        assert await exchange(ours.port, packet(b"stwo")) == await exchange(
            real_epmd, packet(b"stwo")
        )
    finally:
        for s in held:
            await s.aclose()
    with trio.fail_after(10):
        while ours.nodes():
            await ours.wait_changed()
    # Relaxed checking: KILL is brutal, names or not; both daemons stop.
    held_ours, _ = await hold(ours.port, b"last")
    held_theirs, _ = await hold(real_epmd, b"last")
    assert await exchange(ours.port, packet(b"k")) == b"OK"
    assert await exchange(real_epmd, packet(b"k")) == b"OK"
    assert ours.killed
    await held_ours.aclose()
    await held_theirs.aclose()


async def hold(port: int, name: bytes) -> tuple[trio.SocketStream, bytes]:
    s = await trio.open_tcp_stream("127.0.0.1", port)
    await s.send_all(alive2(name, 4000))
    return s, await s.receive_some(64)


async def test_strict_kill_and_stop_like_real_epmd(nursery: trio.Nursery) -> None:
    port = free_port()
    proc = start_real_epmd(port, relaxed=False)
    try:
        strict: ta.EpmdServer = await nursery.start(ta.serve_epmd, "127.0.0.1", 0)
        mine, _ = await hold(strict.port, b"busy")
        theirs, _ = await hold(port, b"busy")
        for request in (packet(b"k"), packet(b"sbusy"), packet(b"sghost")):
            assert await exchange(strict.port, request) == await exchange(port, request)
        assert await exchange(strict.port, packet(b"k")) == b"NO"
        await mine.aclose()
        await theirs.aclose()
        strict.shutdown()
    finally:
        proc.kill()
        proc.wait()


# --------------------------------------------------------------------------- us -> real epmd


async def test_our_client_and_cli_against_real_epmd(real_epmd: int) -> None:
    async with ta.EpmdClient("127.0.0.1", real_epmd, keepalive_interval=0.2) as client:
        await client.ping()
        assert client.protocol == "erlang"
        info = await client.register("pyside", "127.0.0.1", 7777)
        # Registered through ALIVE2, yet a trioactors node: the extra field says so.
        assert info.kind == "trioactors" and info.creation is not None
        found = await client.lookup("pyside")
        assert found is not None and found.port == 7777 and found.kind == "trioactors"
        assert found.erlang is not None and found.erlang.node_type == 72  # hidden
        assert found.erlang.extra == b"trioactors/1"
        assert [(n.name, n.port) for n in await client.list_nodes()] == [("pyside", 7777)]
        with pytest.raises(ta.NameTaken):
            async with ta.EpmdClient("127.0.0.1", real_epmd) as other:
                await other.register("pyside", "127.0.0.1", 1)
        result = await trio.run_process(
            [sys.executable, "-m", "trioactors", "nodes", "--epmd", f"127.0.0.1:{real_epmd}"],
            capture_stdout=True,
        )
        out = result.stdout.decode()
        assert f"Erlang epmd at 127.0.0.1:{real_epmd}: 1 node" in out
        assert re.search(r"pyside\s+127\.0\.0\.1\s+7777\s+trioactors", out), out
        await client.unregister("pyside")
        with trio.fail_after(5):
            while await client.list_nodes():  # noqa: ASYNC110 - polling the real epmd
                await trio.sleep(0.02)


async def test_client_reregisters_after_real_epmd_restart() -> None:
    port = free_port()
    proc = start_real_epmd(port)
    try:
        async with ta.EpmdClient("127.0.0.1", port, keepalive_interval=0.2) as client:
            await client.register("phoenix", "127.0.0.1", 7000)
            proc.kill()
            proc.wait()
            proc = start_real_epmd(port)
            probe = ta.EpmdClient("127.0.0.1", port)
            with trio.fail_after(10):
                while not [n for n in await probe.list_nodes() if n.name == "phoenix"]:  # noqa: ASYNC110
                    await trio.sleep(0.05)
    finally:
        proc.kill()
        proc.wait()
