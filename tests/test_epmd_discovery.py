"""Registration lifetimes and discovery: a killed node's name is free at once,
nodes find each other through a real Erlang epmd, a node started while EPMD
is down registers when it comes back, ports are range-checked, and debug
logging shows what discovery and the EPMD client do."""

from __future__ import annotations

import logging
import re
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import pytest
import trio
import trio.lowlevel
from erlang_helpers import private_epmd
from helpers import node_process, wait_node_up

import trioactors as ta
from trioactors.cli.main import build_parser
from trioactors.cluster.node import Node
from trioactors.wire import epmd_erlang as erl

ROOT = Path(__file__).resolve().parent.parent
COOKIE = "epmd-discovery-test"

needs_epmd = pytest.mark.skipif(
    shutil.which("epmd") is None, reason="Erlang/OTP's epmd is not installed"
)


@pytest.fixture
async def real_epmd() -> AsyncIterator[int]:
    """A private real epmd on a free port."""
    async with private_epmd() as port:
        yield port


async def hold_alive2(port: int, name: bytes, extra: bytes = b"") -> trio.SocketStream:
    """Register as an Erlang node does (ALIVE2, empty extra) and keep the connection."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    await stream.send_all(erl.encode_alive2_req(name.decode(), 4000, erl.ErlangNodeFields(
        node_type=erl.NODE_TYPE_NORMAL, extra=extra
    )))  # fmt: skip
    resp = b""
    with trio.fail_after(5):
        while len(resp) < 6:
            chunk = await stream.receive_some(64)
            assert chunk, "epmd closed the ALIVE2 connection"
            resp += chunk
    assert resp[:2] == b"v\x00", resp
    return stream


async def stderr_lines(proc: trio.Process) -> AsyncIterator[str]:
    """The lines a node process logs (started with ``stderr=subprocess.PIPE``)."""
    assert proc.stderr is not None
    buf = b""
    while chunk := await proc.stderr.receive_some(4096):
        buf += chunk
        *lines, buf = buf.split(b"\n")
        for line in lines:
            yield line.decode(errors="replace")


async def wait_registered(server: ta.EpmdServer, name: str, present: bool) -> None:
    # Bounded far below the daemon's keep-alive timeout: only the connection
    # closing can make a name go within it.
    with trio.fail_after(30):
        while (server.lookup(name) is not None) != present:
            await server.wait_changed()


# --------------------------------------------------------------------------- 1. lifetimes


@pytest.mark.slow
async def test_sigkilled_node_name_is_free_at_once(nursery: trio.Nursery) -> None:
    # An hour of keep-alive timeout: the name can only go with the connection.
    server: ta.EpmdServer = await nursery.start(
        lambda task_status: ta.serve_epmd(
            "127.0.0.1", 0, keepalive_timeout=3600, task_status=task_status
        )
    )
    epmd = f"127.0.0.1:{server.port}"
    async with node_process("victim", "--epmd", epmd, cookie=COOKIE) as child:
        assert server.lookup("victim") is not None
        child.proc.send_signal(signal.SIGKILL)
        await child.proc.wait()
        await wait_registered(server, "victim", present=False)
    async with ta.EpmdClient("127.0.0.1", server.port) as client:
        info = await client.register("victim", "127.0.0.1", 1234)
    assert info.port == 1234
    server.shutdown()


async def test_native_registration_ends_with_its_connection(nursery: trio.Nursery) -> None:
    server: ta.EpmdServer = await nursery.start(
        lambda task_status: ta.serve_epmd(
            "127.0.0.1", 0, keepalive_timeout=3600, task_status=task_status
        )
    )
    async with ta.EpmdClient("127.0.0.1", server.port, keepalive_interval=3600) as client:
        await client.register("brief", "127.0.0.1", 1)
        assert client._conn is not None
        await client._conn.stream.aclose()  # what a crashed process's kernel does
        await wait_registered(server, "brief", present=False)
    server.shutdown()


# --------------------------------------------------------------------------- 2. real epmd


@needs_epmd
@pytest.mark.erlang
async def test_nodes_discover_each_other_through_a_real_epmd(
    real_epmd: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="trioactors")
    epmd = f"127.0.0.1:{real_epmd}"
    beam = await hold_alive2(real_epmd, b"beam")  # an Erlang node: empty extra field
    async with beam:
        async with (
            ta.open_node("alpha", epmd=epmd, cookie=COOKIE, discovery_interval=0.1) as a,
            ta.open_node("beta", epmd=epmd, cookie=COOKIE, discovery_interval=0.1),
        ):
            await wait_node_up(a, "beta")
            async with ta.EpmdClient("127.0.0.1", real_epmd) as client:
                kinds = {n.name: n.kind for n in await client.list_nodes()}
                assert kinds == {"alpha": "trioactors", "beta": "trioactors", "beam": "erlang"}
                found = await client.lookup("beta")
                assert found is not None and found.kind == "trioactors"
                assert found.erlang is not None and found.erlang.extra == b"trioactors/2"
                erlang = await client.lookup("beam")
                assert erlang is not None and erlang.kind == "erlang"
            with pytest.raises(ta.ConnectionFailed, match="Erlang node"):
                await a.connect("beam")
            assert sorted(a.nodes()) == ["beta"]
    skipped = [r for r in caplog.records if "discovery skips beam" in r.getMessage()]
    assert skipped and all(r.levelno == logging.DEBUG for r in skipped)


async def test_our_daemon_marks_native_nodes_for_erlang_protocol_clients(
    nursery: trio.Nursery,
) -> None:
    server: ta.EpmdServer = await nursery.start(ta.serve_epmd, "127.0.0.1", 0)
    async with ta.EpmdClient("127.0.0.1", server.port) as client:
        await client.register("alpha", "127.0.0.1", 5000, protocol_version=2)
        stream = await trio.open_tcp_stream("127.0.0.1", server.port)
        async with stream:
            await stream.send_all(erl.encode_port2_req("alpha"))
            data = b""
            with trio.fail_after(5):
                while chunk := await stream.receive_some(4096):
                    data += chunk
        result = erl.parse_port2_resp(data)
        assert result is not None and erl.parse_trioactors_extra(result.fields.extra) == 2
        # And a trioactors node registered through ALIVE2 lists as trioactors.
        marked = await hold_alive2(server.port, b"viaalive2", erl.trioactors_extra(2))
        async with marked:
            found = await client.lookup("viaalive2")
            assert found is not None and found.kind == "trioactors"
            assert found.protocol_version == 2
    server.shutdown()


def test_trioactors_extra_marker_round_trips() -> None:
    assert erl.trioactors_extra(2) == b"trioactors/2"
    assert erl.parse_trioactors_extra(b"trioactors/2") == 2
    for other in (b"", b"\x01x", b"trioactors/", b"trioactors/x", b"trioactors2"):
        assert erl.parse_trioactors_extra(other) is None


# --------------------------------------------------------------------------- 3. EPMD down


async def test_node_started_while_epmd_is_down_registers_when_it_is_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="trioactors")
    # Bound but not listening: connections are refused, and the port stays ours.
    reserved = socket.socket()
    reserved.bind(("127.0.0.1", 0))
    port = reserved.getsockname()[1]
    epmd = f"127.0.0.1:{port}"
    retried = trio.Event()

    class OnRetry(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "EPMD registration retry" in record.getMessage():
                retried.set()

    handler = OnRetry()
    logging.getLogger("trioactors").addHandler(handler)

    def start(name: str) -> AbstractAsyncContextManager[Node]:
        return ta.open_node(
            name, epmd=epmd, cookie=COOKIE, discovery_interval=0.1, epmd_keepalive=0.5
        )

    try:
        await run_late_epmd(reserved, port, start, retried)
    finally:
        logging.getLogger("trioactors").removeHandler(handler)
    warnings = [
        r
        for r in caplog.records
        if r.levelno == logging.WARNING and "runs unregistered" in r.getMessage()
    ]
    assert len(warnings) == 1
    retries = [r for r in caplog.records if "EPMD registration retry" in r.getMessage()]
    assert retries and all(r.levelno == logging.DEBUG for r in retries)


async def run_late_epmd(
    reserved: socket.socket,
    port: int,
    start: Callable[[str], AbstractAsyncContextManager[Node]],
    retried: trio.Event,
) -> None:
    async with trio.open_nursery() as nursery, start("early") as early:
        with trio.fail_after(20):
            await retried.wait()  # it has tried again, and found no daemon
        reserved.close()
        server: ta.EpmdServer = await nursery.start(ta.serve_epmd, "127.0.0.1", port)
        await wait_registered(server, "early", present=True)
        async with start("late"):
            await wait_node_up(early, "late")  # discovery resumed
        server.shutdown()


# --------------------------------------------------------------------------- 4. ports


@pytest.mark.parametrize(
    ("argv", "option"),
    [
        (["epmd", "--port", "99999"], "--port"),
        (["epmd", "--port", "-1"], "--port"),
        (["node", "n", "--listen", "127.0.0.1:99999"], "--listen"),
        (["node", "n", "--epmd", "127.0.0.1:99999"], "--epmd"),
        (["node", "n", "--epmd", "127.0.0.1:0"], "--epmd"),
        (["nodes", "--epmd", "127.0.0.1:99999"], "--epmd"),
        (["ping", "n", "--epmd", "127.0.0.1:99999"], "--epmd"),
        (["node", "n", "--epmd", "h2:70000"], "--epmd"),
        (["info", "n", "--epmd", "h2:70000"], "--epmd"),
        (["node", "n", "--listen", ":65536"], "--listen"),
        (["node", "n", "--listen", "h2:port"], "--listen"),
    ],
)
def test_out_of_range_ports_are_refused_naming_the_option(
    argv: list[str], option: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {option}:" in err, err
    assert re.search("out of range|must be a number", err), err


def test_cli_exits_with_status_2_on_an_out_of_range_port() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "trioactors", "node", "n", "--listen", "127.0.0.1:99999"],
        capture_output=True,
        cwd=str(ROOT),
        timeout=60,
    )
    assert done.returncode == 2, done
    assert b"port 99999 is out of range (0-65535)" in done.stderr, done.stderr


async def test_out_of_range_ports_are_refused_by_the_api() -> None:
    with pytest.raises(ValueError, match="out of range"):
        await ta.serve_epmd("127.0.0.1", 99999)
    with pytest.raises(ValueError, match="out of range"):
        ta.EpmdClient("127.0.0.1", 99999)


# --------------------------------------------------------------------------- 5. debug log


async def read_until(lines: AsyncIterator[str], pattern: str, seen: list[str]) -> None:
    with trio.fail_after(30):
        async for line in lines:
            seen.append(line)
            if re.search(pattern, line):
                return
    raise AssertionError(f"no log line matches {pattern!r}:\n" + "\n".join(seen))


@pytest.mark.slow
async def test_debug_log_level_shows_discovery_and_epmd_events(nursery: trio.Nursery) -> None:
    server: ta.EpmdServer = await nursery.start(ta.serve_epmd, "127.0.0.1", 0)
    epmd = f"127.0.0.1:{server.port}"
    seen: list[str] = []
    options = ("--log-level", "debug", "--epmd-keepalive", "0.2")
    async with (
        ta.open_node("beta", epmd=epmd, cookie=COOKIE, discovery_interval=1000.0),
        node_process(
            "alpha", "--epmd", epmd, *options, cookie=COOKIE, stderr=subprocess.PIPE
        ) as child,
    ):
        lines = stderr_lines(child.proc)
        for pattern in (
            r"DEBUG .*registering alpha at 127\.0\.0\.1:\d+ with EPMD",
            r"INFO .*registered alpha with the trioactors EPMD",
            # The first discovery round (5 s after start) finds beta and dials it.
            r"DEBUG .*discovery: connecting to beta",
            r"DEBUG .*lookup beta -> trioactors node at 127\.0\.0\.1",
            r"DEBUG .*handshake with node 'beta' at 127\.0\.0\.1:\d+: connected",
            r"DEBUG .*handshake with node 'beta' .*: node 'beta' authenticated",
            r"INFO .*connected to node 'beta'",
        ):
            await read_until(lines, pattern, seen)
        server.shutdown()
        await read_until(lines, r"DEBUG .*connection to EPMD at .* lost", seen)
        await read_until(lines, r"WARNING .*EPMD keep-alive failed", seen)
