"""The EPMD daemon and client over real sockets on 127.0.0.1."""

from __future__ import annotations

import logging
import random
import socket
import struct
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import trio
from helpers import packet

import trioactors as ta
from trioactors.epmd import server as server_mod
from trioactors.wire import epmd_erlang as erl
from trioactors.wire.epmd_native import ListNodes as NativeListNodes
from trioactors.wire.epmd_native import encode_message, encode_preamble

LOGGER = "trioactors.epmd"


def alive2(name: bytes, port: int = 5000, *, high: int = 6, extra: bytes = b"") -> bytes:
    body = (
        struct.pack(">BHBBHHH", erl.ALIVE2_REQ, port, 77, 0, high, 5, len(name))
        + name
        + struct.pack(">H", len(extra))
        + extra
    )
    return struct.pack(">H", len(body)) + body


async def raw(port: int, data: bytes, *, seconds: float = 5.0, want: int = 0) -> bytes:
    """Send `data`, return everything until the daemon closes (b"" = no reply),
    or the first `want` bytes when the daemon keeps the connection open."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    out = b""
    async with stream:
        try:
            if data:
                await stream.send_all(data)
            with trio.fail_after(seconds):
                while chunk := await stream.receive_some(65536):
                    out += chunk
                    if want and len(out) >= want:
                        break
        except trio.BrokenResourceError:
            pass  # reset by the daemon: it closed with our bytes unread
    return out


async def hold_alive2(daemon_port: int, name: bytes, **kw: Any) -> tuple[trio.SocketStream, bytes]:
    """Register through ALIVE2 and keep the connection, as an Erlang node does."""
    stream = await trio.open_tcp_stream("127.0.0.1", daemon_port)
    await stream.send_all(alive2(name, **kw))
    resp = b""
    with trio.fail_after(5):
        want = 6 if kw.get("high", 6) >= 6 else 4
        while len(resp) < want:
            chunk = await stream.receive_some(64)
            assert chunk, "daemon closed the ALIVE2 connection"
            resp += chunk
    return stream, resp


async def wait_for(server: ta.EpmdServer, pred: Callable[[], bool], seconds: float = 5.0) -> None:
    with trio.fail_after(seconds):
        while not pred():
            await server.wait_changed()


def names(server: ta.EpmdServer) -> set[str]:
    return {n.name for n in server.nodes()}


@pytest.fixture
async def server(nursery: trio.Nursery) -> AsyncIterator[ta.EpmdServer]:
    srv: ta.EpmdServer = await nursery.start(
        lambda task_status: ta.serve_epmd(
            "127.0.0.1", 0, packet_timeout=1.0, relaxed_command_check=True, task_status=task_status
        )
    )
    yield srv
    srv.shutdown()


@pytest.fixture
async def client(server: ta.EpmdServer) -> AsyncIterator[ta.EpmdClient]:
    async with ta.EpmdClient("127.0.0.1", server.port) as c:
        yield c


# --------------------------------------------------------------------------- native


async def test_register_lookup_list_unregister(
    server: ta.EpmdServer, client: ta.EpmdClient
) -> None:
    info = await client.register(
        "alpha", "0.0.0.0", 5000, metadata={"role": "web"}, capabilities=["tls"]
    )
    assert client.protocol == "native"
    assert info.host == "127.0.0.1"  # "every interface" becomes the address we came from
    assert info.creation is not None and info.creation >= 4
    assert info.metadata == {"role": "web"} and info.capabilities == ("tls",)
    assert await client.lookup("alpha") == info
    assert await client.lookup("nobody") is None
    await client.register("beta", "127.0.0.1", 5001)
    assert [n.name for n in await client.list_nodes()] == ["beta", "alpha"]  # newest first
    await client.unregister("alpha")
    assert names(server) == {"beta"}
    await client.unregister("never-registered")  # harmless
    await client.ping()


async def test_duplicate_name_is_refused_and_first_stands(
    server: ta.EpmdServer, client: ta.EpmdClient
) -> None:
    first = await client.register("alpha", "127.0.0.1", 5000)
    async with ta.EpmdClient("127.0.0.1", server.port) as other:
        with pytest.raises(ta.NameTaken, match="alpha"):
            await other.register("alpha", "127.0.0.1", 6000)
        with pytest.raises(ta.EpmdError, match="another connection"):
            await other.unregister("alpha")
    assert server.lookup("alpha") == first
    with pytest.raises(ta.NameTaken):
        await client.register("alpha", "127.0.0.1", 5000)


async def test_leaving_the_client_block_unregisters(server: ta.EpmdServer) -> None:
    async with ta.EpmdClient("127.0.0.1", server.port) as c:
        await c.register("gamma", "127.0.0.1", 1)
        assert names(server) == {"gamma"}
    assert names(server) == set()


async def test_body_exception_is_not_wrapped(server: ta.EpmdServer) -> None:
    with pytest.raises(KeyError):
        async with ta.EpmdClient("127.0.0.1", server.port) as c:
            await c.register("delta", "127.0.0.1", 1)
            raise KeyError("boom")
    assert names(server) == set()


async def test_register_needs_async_with(server: ta.EpmdServer) -> None:
    c = ta.EpmdClient("127.0.0.1", server.port)
    with pytest.raises(ta.EpmdError, match="async with"):
        await c.register("alpha", "127.0.0.1", 1)
    assert await c.list_nodes() == []  # one-shot requests work without it
    await c.aclose()


async def test_unreachable_daemon_says_where_and_what_to_do() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    c = ta.EpmdClient("127.0.0.1", port)
    with pytest.raises(ta.EpmdUnavailable, match=rf"127\.0\.0\.1:{port}.*trioactors epmd"):
        await c.ping()


async def test_invalid_names_are_refused_by_the_client(client: ta.EpmdClient) -> None:
    for bad in ("", "a\x00b", "x" * 256):
        with pytest.raises(ValueError):
            await client.lookup(bad)
    with pytest.raises(TypeError):
        await client.register("m", "h", 1, metadata={"k": 1})  # type: ignore[dict-item]


async def test_keepalives_keep_registrations_and_silence_expires_them(
    nursery: trio.Nursery,
) -> None:
    srv: ta.EpmdServer = await nursery.start(
        lambda task_status: ta.serve_epmd(
            "127.0.0.1", 0, keepalive_timeout=0.4, task_status=task_status
        )
    )
    async with (
        ta.EpmdClient("127.0.0.1", srv.port, keepalive_interval=0.05) as live,
        ta.EpmdClient("127.0.0.1", srv.port, keepalive_interval=60) as silent,
    ):
        await live.register("live", "127.0.0.1", 1)
        t0 = trio.current_time()
        await silent.register("silent", "127.0.0.1", 2)
        await wait_for(srv, lambda: "silent" not in names(srv))
        assert trio.current_time() - t0 >= 0.4
        await trio.sleep(0.5)  # more than a whole timeout with keep-alives only
        assert names(srv) == {"live"}
    srv.shutdown()


async def test_client_reregisters_after_daemon_restart(nursery: trio.Nursery) -> None:
    async def start(port: int) -> tuple[ta.EpmdServer, trio.Event]:
        stopped = trio.Event()

        async def serve(task_status: trio.TaskStatus[ta.EpmdServer]) -> None:
            try:
                await ta.serve_epmd("127.0.0.1", port, task_status=task_status)
            finally:
                stopped.set()

        srv: ta.EpmdServer = await nursery.start(serve)
        return srv, stopped

    first, first_stopped = await start(0)
    port = first.port
    interval = 0.3
    async with ta.EpmdClient("127.0.0.1", port, keepalive_interval=interval) as c:
        await c.register("phoenix", "127.0.0.1", 7000, metadata={"v": "1"})
        first.shutdown()
        with trio.fail_after(5):
            await first_stopped.wait()  # its listener is closed: the port is free
        second, _ = await start(port)
        t0 = trio.current_time()
        await wait_for(second, lambda: "phoenix" in names(second))
        assert trio.current_time() - t0 <= interval + 1.0
        assert second.lookup("phoenix").metadata == {"v": "1"}  # type: ignore[union-attr]
        second.shutdown()


async def test_idle_native_connection_is_reopened_transparently(nursery: trio.Nursery) -> None:
    srv: ta.EpmdServer = await nursery.start(
        lambda task_status: ta.serve_epmd(
            "127.0.0.1", 0, keepalive_timeout=0.1, task_status=task_status
        )
    )
    c = ta.EpmdClient("127.0.0.1", srv.port)
    await c.ping()
    await trio.sleep(0.3)  # the daemon closes the idle connection meanwhile
    await c.ping()
    await c.aclose()
    srv.shutdown()


async def test_same_client_takes_its_registration_over_after_reconnect(
    server: ta.EpmdServer, client: ta.EpmdClient
) -> None:
    info = await client.register("sticky", "127.0.0.1", 1)
    assert client._conn is not None
    # The old connection stays open, as a half-open one does (the daemon has
    # not seen it die): the new one takes the name over with the token.
    old, client._conn = client._conn.stream, None
    await client.ping()
    assert server.lookup("sticky") == info
    await old.aclose()  # no longer the owner: the registration stays
    await client.ping()
    assert server.lookup("sticky") == info
    await client.unregister("sticky")
    assert names(server) == set()


# --------------------------------------------------------------------------- one name space


async def test_native_nodes_show_in_erlang_names_and_port2(
    server: ta.EpmdServer, client: ta.EpmdClient
) -> None:
    await client.register("alpha", "127.0.0.1", 5000)
    await client.register("beta", "127.0.0.1", 5001)
    names_resp = await raw(server.port, packet(b"n"))
    assert names_resp == struct.pack(">I", server.port) + (
        b"name beta at port 5001\nname alpha at port 5000\n"
    )
    assert await raw(server.port, packet(b"zalpha")) == (
        # A hidden node, marked as trioactors (protocol 1) in the extra field.
        b"w\x00\x13\x88H\x00\x00\x06\x00\x05\x00\x05alpha\x00\x0ctrioactors/1"
    )
    assert await raw(server.port, packet(b"znobody")) == b"w\x01"


async def test_erlang_nodes_show_in_native_lookup_and_list(
    server: ta.EpmdServer, client: ta.EpmdClient
) -> None:
    stream, resp = await hold_alive2(server.port, b"beam", port=4000, extra=b"\x01x")
    async with stream:
        assert resp[:2] == b"v\x00"
        info = await client.lookup("beam")
        assert info is not None and info.kind == "erlang" and info.port == 4000
        assert info.creation == struct.unpack(">I", resp[2:])[0]
        assert info.erlang == erl.ErlangNodeFields(77, 0, 6, 5, b"\x01x")
        assert [n.name for n in await client.list_nodes()] == ["beam"]
        with pytest.raises(ta.NameTaken):
            await client.register("beam", "127.0.0.1", 1)
    await wait_for(server, lambda: not server.nodes())


# --------------------------------------------------------------------------- Erlang protocol


async def test_alive2_lives_as_long_as_its_connection(server: ta.EpmdServer) -> None:
    stream, resp = await hold_alive2(server.port, b"node1")
    assert resp[:2] == b"v\x00"
    creation = struct.unpack(">I", resp[2:])[0]
    assert names(server) == {"node1"}
    await stream.aclose()
    await wait_for(server, lambda: not server.nodes())
    # Registering the name again bumps the creation, as epmd does.
    stream, resp = await hold_alive2(server.port, b"node1")
    assert struct.unpack(">I", resp[2:])[0] == creation + 1
    # Sending anything more on the ALIVE2 connection unregisters.
    await stream.send_all(b"x")
    await wait_for(server, lambda: not server.nodes())
    await stream.aclose()


async def test_old_nodes_get_alive2_resp_with_small_creation(server: ta.EpmdServer) -> None:
    stream, resp = await hold_alive2(server.port, b"old", high=5)
    async with stream:
        assert resp[:2] == b"y\x00" and len(resp) == 4
        assert 1 <= struct.unpack(">H", resp[2:])[0] <= 3


async def test_alive2_refusals_answer_error_and_keep_the_connection(
    server: ta.EpmdServer,
) -> None:
    held, _ = await hold_alive2(server.port, b"taken")
    async with held:
        for name in (b"taken", b"a" * 256, b"\xff\xfe"):
            stream, resp = await hold_alive2(server.port, name)
            assert resp == b"v\x01\x00\x00\x00\x63"
            await stream.aclose()
        assert names(server) == {"taken"}


async def test_kill_says_no_while_names_are_registered(nursery: trio.Nursery) -> None:
    srv: ta.EpmdServer = await nursery.start(ta.serve_epmd, "127.0.0.1", 0)
    stream, _ = await hold_alive2(srv.port, b"busy")
    assert await raw(srv.port, packet(b"k")) == b"NO"
    await stream.aclose()
    await wait_for(srv, lambda: not srv.nodes())
    assert await raw(srv.port, packet(b"k")) == b"OK"
    assert srv.killed
    with pytest.raises(OSError):
        await trio.open_tcp_stream("127.0.0.1", srv.port)


async def test_stop_needs_relaxed_command_check(nursery: trio.Nursery) -> None:
    strict: ta.EpmdServer = await nursery.start(ta.serve_epmd, "127.0.0.1", 0)
    stream, _ = await hold_alive2(strict.port, b"victim")
    assert await raw(strict.port, packet(b"svictim")) == b""
    assert names(strict) == {"victim"}
    await stream.aclose()
    strict.shutdown()


async def test_stop_unregisters_and_closes_the_node_connection(server: ta.EpmdServer) -> None:
    stream, _ = await hold_alive2(server.port, b"victim")
    assert await raw(server.port, packet(b"svictim")) == b"STOPPED"
    assert names(server) == set()
    with trio.fail_after(5):
        assert await stream.receive_some(10) == b""
    assert await raw(server.port, packet(b"sghost")) == b"NOEXISTSTOPPED"


async def test_dump_lists_active_and_old_names(server: ta.EpmdServer) -> None:
    old, _ = await hold_alive2(server.port, b"gone", port=11)
    await old.aclose()
    await wait_for(server, lambda: not server.nodes())
    live, _ = await hold_alive2(server.port, b"here", port=12)
    async with live:
        data = await raw(server.port, packet(b"d"))
    assert data[:4] == struct.pack(">I", server.port)
    lines = data[4:].split(b"\x00")
    assert lines[0].startswith(b"active name     <here> at port 12, fd = ")
    assert lines[1].startswith(b"old/unused name <gone>, port = 11, fd = ")
    assert lines[1].endswith(b" \n") and lines[2] == b""


def test_local_peer_rule() -> None:
    assert server_mod._is_local_peer(("127.0.0.1", 1), ("127.0.0.1", 2))
    assert server_mod._is_local_peer(("127.8.9.1", 1), ("10.0.0.1", 2))
    assert server_mod._is_local_peer(("::1", 1, 0, 0), ("::1", 2, 0, 0))
    assert server_mod._is_local_peer(("::ffff:127.0.0.1", 1, 0, 0), ("::", 2, 0, 0))
    assert server_mod._is_local_peer(("10.0.0.5", 1), ("10.0.0.5", 2))  # our own address
    assert not server_mod._is_local_peer(("10.0.0.6", 1), ("10.0.0.5", 2))


async def test_non_local_peers_cannot_register(
    server: ta.EpmdServer, client: ta.EpmdClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(server_mod, "_is_local_peer", lambda peer, local: False)
    assert await raw(server.port, alive2(b"remote")) == b""
    for req in (b"k", b"d", b"sx"):
        assert await raw(server.port, packet(req)) == b""
    with pytest.raises(ta.EpmdError, match="loopback"):
        await client.register("remote", "10.0.0.9", 1)
    assert await raw(server.port, packet(b"n")) == struct.pack(">I", server.port)
    server.allow_remote_register = True
    await client.register("remote", "10.0.0.9", 1)
    assert names(server) == {"remote"}


# --------------------------------------------------------------------------- bad input

BAD_INPUT = [
    ("zero length", b"\x00\x00", b""),
    ("one byte", b"\x00", b""),
    ("partial packet", b"\x00\x10x\x00", b""),
    ("too large", b"\x0b\xf4" + b"x" * 100, b""),
    ("more than announced", b"\x00\x01nn", b""),
    ("name with NUL", alive2(b"a\x00b"), b""),
    ("256-byte name", alive2(b"n" * 256), b"v\x01\x00\x00\x00\x63"),
    ("invalid UTF-8 in ALIVE2", alive2(b"\xc3\x28"), b"v\x01\x00\x00\x00\x63"),
    ("invalid UTF-8 in PORT2", packet(b"z\xc3\x28"), b""),
    ("unknown tag", packet(b"Q"), b""),
    ("old ALIVE_REQ", packet(b"a\x00\x01name"), b""),
    ("HTTP", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b""),
    ("bad native preamble", b"TAEPMX\x00\x01", b""),
    ("native version 0", b"TAEPMD\x00\x00", b""),
    ("native frame too large", encode_preamble() + b"\x7f\xff\xff\xff", encode_preamble()),
    ("native garbage frame", encode_preamble() + b"\x00\x00\x00\x02\xff\xff", encode_preamble()),
    (
        "native response as request",
        encode_preamble() + b"\x00\x00\x00\x07\x82dpong\x01",
        encode_preamble(),
    ),
]


@pytest.mark.parametrize(
    ("data", "expected"), [c[1:] for c in BAD_INPUT], ids=[c[0] for c in BAD_INPUT]
)
async def test_bad_input_closes_only_that_connection(
    server: ta.EpmdServer,
    client: ta.EpmdClient,
    caplog: pytest.LogCaptureFixture,
    data: bytes,
    expected: bytes,
) -> None:
    caplog.set_level(logging.INFO, LOGGER)
    await client.register("keeper", "127.0.0.1", 5000)
    held, _ = await hold_alive2(server.port, b"erlkeeper")
    async with held:
        before = len([r for r in caplog.records if r.levelno >= logging.WARNING])
        assert await raw(server.port, data, want=6 if expected[:1] == b"v" else 0) == expected
        warnings = [r for r in caplog.records if r.levelno >= logging.WARNING][before:]
        assert warnings, "each closed bad connection is logged"
        assert names(server) == {"keeper", "erlkeeper"}
        assert [n.name for n in await client.list_nodes()] == ["erlkeeper", "keeper"]
        await client.ping()


async def test_idle_and_slow_connections_time_out(
    server: ta.EpmdServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, LOGGER)
    t0 = trio.current_time()
    assert await raw(server.port, b"", seconds=10) == b""  # idle forever
    assert trio.current_time() - t0 >= server.packet_timeout
    assert any("timed out" in r.getMessage() for r in caplog.records)
    # A slow but steady request completes within the packet timeout...
    stream = await trio.open_tcp_stream("127.0.0.1", server.port)
    async with stream:
        for byte in packet(b"n"):
            await stream.send_all(bytes((byte,)))
            await trio.sleep(0.05)
        assert await stream.receive_some(64) == struct.pack(">I", server.port)


async def test_random_bytes_on_the_socket(server: ta.EpmdServer, client: ta.EpmdClient) -> None:
    await client.register("keeper", "127.0.0.1", 5000)
    rng = random.Random(20261127)
    for _ in range(60):
        data = rng.randbytes(rng.randrange(1, 400))
        if rng.random() < 0.3:
            data = b"TA" + data
        elif rng.random() < 0.3:
            data = struct.pack(">H", len(data)) + data
        async with await trio.open_tcp_stream("127.0.0.1", server.port) as s:
            await s.send_all(data)
            # Either an answer and a close, or just a close; never a hang
            # beyond the packet timeout.
            with trio.fail_after(server.packet_timeout + 3):
                try:
                    while await s.receive_some(65536):
                        pass
                except trio.BrokenResourceError:
                    pass
    assert names(server) == {"keeper"}
    await client.ping()


def _rst(stream: trio.SocketStream) -> None:
    stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


async def test_reset_in_the_middle_of_a_reply(server: ta.EpmdServer, client: ta.EpmdClient) -> None:
    for i in range(300):
        await client.register(f"node-{i:04d}-" + "x" * 200, "127.0.0.1", 1000 + i)
    for request in (packet(b"n"), encode_preamble() + encode_message(NativeListNodes(1))):
        for _ in range(5):
            s = await trio.open_tcp_stream("127.0.0.1", server.port)
            s.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            await s.send_all(request)
            await s.receive_some(16)  # the reply has started
            _rst(s)
            await s.aclose()
    assert len(server.nodes()) == 300
    assert len(await client.list_nodes()) == 300


async def test_thousand_alive2_registrations_then_all_dropped(
    server: ta.EpmdServer, client: ta.EpmdClient
) -> None:
    await client.register("survivor", "127.0.0.1", 1)
    streams: list[trio.SocketStream] = []

    async def one(i: int) -> None:
        stream, resp = await hold_alive2(server.port, f"n{i}".encode(), port=10000 + i)
        assert resp[:2] == b"v\x00"
        streams.append(stream)

    async with trio.open_nursery() as n:
        for i in range(1000):
            n.start_soon(one, i)
    assert len(server.nodes()) == 1001
    names_resp = await raw(server.port, packet(b"n"))
    assert names_resp.count(b"\n") == 1001
    for i, s in enumerate(streams):
        if i % 2:
            _rst(s)  # half of them go away abruptly
        await s.aclose()
    await wait_for(server, lambda: len(server.nodes()) == 1, seconds=20)
    assert names(server) == {"survivor"}
    assert (await client.lookup("survivor")) is not None


async def test_a_service_that_is_not_epmd_is_reported(nursery: trio.Nursery) -> None:
    async def http(stream: trio.SocketStream) -> None:
        async with stream:
            await stream.send_all(b"HTTP/1.1 400 Bad Request\r\n\r\n")

    async def silent(stream: trio.SocketStream) -> None:
        async with stream:
            await trio.sleep_forever()

    for handler, match in ((http, "does not speak EPMD"), (silent, "does not speak EPMD")):
        listeners = await nursery.start(trio.serve_tcp, handler, 0)
        port = listeners[0].socket.getsockname()[1]
        c = ta.EpmdClient("127.0.0.1", port, timeout=0.3)
        with pytest.raises(ta.EpmdError, match=match):
            await c.ping()


def test_keepalives_are_sent_in_bounded_batches() -> None:
    from trioactors.epmd.client import _batches
    from trioactors.wire.epmd_native import MAX_REQUEST_SIZE, KeepAlive

    names = [f"n{i}" for i in range(2500)] + ["\U0001f600" * 255] * 100
    batches = list(_batches(names))
    assert [n for b in batches for n in b] == names
    for b in batches:
        assert len(encode_message(KeepAlive(2**40, b))) - 4 <= MAX_REQUEST_SIZE
