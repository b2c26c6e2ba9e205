"""Peer connections: ticks, tick timeout, batching, hostile input, TLS."""

from __future__ import annotations

import logging
import random
import ssl
import struct
from typing import Any

import pytest
import trio
import trio.testing
import trustme

import trioactors as ta
from trioactors.cluster.connection import TICK_TIMEOUT, Connection
from trioactors.cluster.dispatch import cbor_dispatcher
from trioactors.cluster.node import Node
from trioactors.wire import handshake as hs
from trioactors.wire import records as p
from trioactors.wire.cbor import MessageCodec
from trioactors.wire.framing import encode_frame

COOKIE = "test-cookie"


def _conn(stream: trio.abc.Stream, got: list[bytes], tick: float = 4.0) -> Connection:
    return Connection(stream, peer="peer", on_frame=got.append, tick_timeout=tick)


async def test_ticks_keep_an_idle_connection_alive(autojump_clock: Any) -> None:
    left, right = trio.testing.memory_stream_pair()
    a_got: list[bytes] = []
    b_got: list[bytes] = []
    a, b = _conn(left, a_got), _conn(right, b_got)
    async with trio.open_nursery() as n:
        n.start_soon(a.run)
        n.start_soon(b.run)
        await trio.sleep(60)  # 15 tick timeouts of silence from the application
        assert a.reason is None and b.reason is None
        assert a.bytes_out > 0  # ticks went out
        assert a_got == b_got == []  # ticks are not dispatched
        n.cancel_scope.cancel()


async def test_silent_peer_is_down_after_tick_timeout(autojump_clock: Any) -> None:
    left, right = trio.testing.memory_stream_pair()
    got: list[bytes] = []
    conn = _conn(left, got, tick=4.0)
    start = trio.current_time()
    # The peer's socket stays open but nothing comes (a frozen process).
    assert await conn.run() == TICK_TIMEOUT
    assert 4.0 <= trio.current_time() - start < 4.5
    del right


async def test_writer_batches_queued_frames() -> None:
    left, right = trio.testing.memory_stream_pair()
    got: list[bytes] = []
    all_in = trio.Event()

    def on_frame(body: bytes) -> None:
        got.append(body)
        if len(got) == 10_000:
            all_in.set()

    sender = _conn(left, [])
    receiver = Connection(right, peer="peer", on_frame=on_frame, tick_timeout=4.0)
    async with trio.open_nursery() as n:
        n.start_soon(receiver.run)
        for i in range(10_000):  # queued without a checkpoint: one burst
            sender.send_frame(encode_frame(b"%d" % i))
        n.start_soon(sender.run)
        with trio.fail_after(10):
            await all_in.wait()
        n.cancel_scope.cancel()
    assert got == [b"%d" % i for i in range(10_000)]
    assert sender.writes <= 3


async def test_graceful_close_flushes_then_says_goodbye() -> None:
    left, right = trio.testing.memory_stream_pair()
    got: list[bytes] = []

    def on_frame(body: bytes) -> None:
        got.append(body)
        if body == b"bye":
            receiver.abort("connection_closed")  # as a node does on a goodbye

    sender = _conn(left, [])
    receiver = Connection(right, peer="peer", on_frame=on_frame, tick_timeout=4.0)
    start = trio.current_time()
    async with trio.open_nursery() as n:
        n.start_soon(receiver.run)
        n.start_soon(sender.run)
        for i in range(100):
            sender.send_frame(encode_frame(b"%d" % i))
        sender.close(final=encode_frame(b"bye"))
        sender.send_frame(encode_frame(b"too late"))
    assert got == [b"%d" % i for i in range(100)] + [b"bye"]
    assert sender.reason == "disconnect"
    assert trio.current_time() - start < 1.0  # the peer's hang-up ended the linger


async def test_malformed_frame_closes_only_that_connection(
    caplog: pytest.LogCaptureFixture,
) -> None:
    left, right = trio.testing.memory_stream_pair()

    def on_frame(body: bytes) -> None:
        raise ta.ProtocolError("bad record")

    conn = Connection(left, peer="peer", on_frame=on_frame, tick_timeout=10)
    await right.send_all(encode_frame(b"x"))
    assert await conn.run() == "protocol_error"
    assert "bad record" in caplog.text


async def test_a_dispatch_bug_costs_the_connection_not_the_node(
    caplog: pytest.LogCaptureFixture,
) -> None:
    left, right = trio.testing.memory_stream_pair()

    def on_frame(body: bytes) -> None:
        raise RuntimeError("bug")

    conn = Connection(left, peer="peer", on_frame=on_frame, tick_timeout=10)
    await right.send_all(encode_frame(b"x"))
    assert await conn.run() == "protocol_error"
    assert "dispatch failed" in caplog.text


# --------------------------------------------------------------------------- hostile peers


async def _authenticated(node: Node, name: str = "mallory") -> trio.SocketStream:
    """A raw stream to `node` that passed the handshake (a peer gone rogue)."""
    stream = await trio.open_tcp_stream(*node.address)
    machine = hs.Handshake(hs.Role.CONNECT, name=name, creation=1, cookie=COOKIE.encode())
    await stream.send_all(machine.data_to_send())
    while not machine.established:
        machine.receive_data(await stream.receive_some(4096))
        await stream.send_all(machine.data_to_send())
    return stream


async def _closed(stream: trio.SocketStream) -> bool:
    with trio.move_on_after(5):
        while await stream.receive_some(4096):
            pass
        return True
    return False


@pytest.mark.parametrize(
    "payload",
    [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"\xff" * 64,
        struct.pack(">I", 2**31) + b"junk",
        encode_frame(b"\x00"),
    ],
)
async def test_garbage_before_handshake(payload: bytes, caplog: pytest.LogCaptureFixture) -> None:
    async with ta.open_node("alpha", epmd=None, cookie=COOKIE) as node:
        stream = await trio.open_tcp_stream(*node.address)
        await stream.send_all(payload)
        assert await _closed(stream)
        assert "refused node connection" in caplog.text
        await _still_works(node)


@pytest.mark.parametrize(
    "frame",
    [
        struct.pack(">I", 2**20 + 1) + b"x" * 16,  # over the node's max_frame_size
        encode_frame(b"\xff\xff"),  # not CBOR
        encode_frame(b"\x83\x01\x02\x03"),  # [1, 2, 3]: Send with a non-pid
        encode_frame(b"\x82\x18\x63\x00"),  # unknown record code 99
    ],
)
async def test_bad_frames_after_handshake(frame: bytes, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "trioactors.cluster")
    async with ta.open_node("alpha", epmd=None, cookie=COOKIE, max_frame_size=2**20) as node:
        stream = await _authenticated(node)
        await stream.send_all(frame)
        assert await _closed(stream)
        assert "closing connection to node 'mallory'" in caplog.text
        assert node.nodes() == []
        await _still_works(node)


async def test_peer_cannot_speak_for_other_nodes_pids() -> None:
    async with ta.open_node("alpha", epmd=None, cookie=COOKIE) as node:
        stream = await _authenticated(node)
        codec = MessageCodec()
        forged = ta.Pid("somebody-else", 1, 0, 1)
        victim = node.spawn(_idle)
        await stream.send_all(p.RECORDS.frame(codec, p.ExitSignal(forged, victim, "kill", False)))
        assert await _closed(stream)
        assert node.is_alive(victim)


async def _idle(ctx: ta.Context) -> None:
    await trio.sleep_forever()


async def _still_works(node: Node) -> None:
    async with ta.open_node("beta", epmd=None, cookie=COOKIE) as other:
        await other.connect(f"alpha@{node.address[0]}:{node.address[1]}")
        assert node.nodes() == ["beta"]


# --------------------------------------------------------------------------- TLS


def _tls(ca: trustme.CA, name: str, *, require_client_cert: bool) -> tuple[Any, Any]:
    cert = ca.issue_cert("127.0.0.1", "localhost")
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server)
    if require_client_cert:
        server.verify_mode = ssl.CERT_REQUIRED
        ca.configure_trust(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    cert.configure_cert(client)
    return server, client


async def test_mutual_tls() -> None:
    ca = trustme.CA()
    s1, c1 = _tls(ca, "alpha", require_client_cert=True)
    s2, c2 = _tls(ca, "beta", require_client_cert=True)
    async with (
        ta.open_node("alpha", epmd=None, cookie=COOKIE, tls=s1, tls_client=c1) as a,
        ta.open_node("beta", epmd=None, cookie=COOKIE, tls=s2, tls_client=c2) as b,
    ):
        await b.start_server(_Echo, name="echo")
        await a.connect(f"beta@{b.address[0]}:{b.address[1]}")
        assert await a.call(("echo", "beta"), "over tls", timeout=5) == "over tls"


async def test_tls_client_without_trusted_certificate_is_refused(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ca, rogue_ca = trustme.CA(), trustme.CA()
    s1, c1 = _tls(ca, "alpha", require_client_cert=True)
    s2, c2 = _tls(rogue_ca, "beta", require_client_cert=True)
    async with (
        ta.open_node("alpha", epmd=None, cookie=COOKIE, tls=s1, tls_client=c1) as a,
        ta.open_node("beta", epmd=None, cookie=COOKIE, tls=s2, tls_client=c2) as b,
    ):
        with pytest.raises(ta.ConnectionFailed):
            await b.connect(f"alpha@{a.address[0]}:{a.address[1]}")
        assert a.nodes() == [] and b.nodes() == []


class _Echo(ta.GenServer):
    async def handle_call(self, request: Any, caller: ta.Caller) -> Any:
        return request


_PIDS = [ta.Pid("alpha", 1, 0, 1), ta.Pid("mallory", 2, 0, 3), ta.Pid("x", 8, 0, 9)]


def _random_value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(11 if depth < 3 else 8)
    if kind == 0:
        return None
    if kind == 1:
        return rng.random() < 0.5
    if kind == 2:
        return rng.randint(-(2**70), 2**70)
    if kind == 3:
        return rng.random()
    if kind == 4:
        return "x" * rng.randint(0, 5)
    if kind == 5:
        return b"\0\1"
    if kind == 6:
        return rng.choice(_PIDS)
    if kind == 7:
        return ta.Ref(rng.choice(["alpha", "mallory"]), 1, (rng.randint(0, 5),))
    if kind == 8:
        return [_random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    if kind == 9:
        return tuple(_random_value(rng, depth + 1) for _ in range(rng.randint(0, 3)))
    return {"k": _random_value(rng, depth + 1)}


async def test_dispatcher_survives_random_records() -> None:
    """Well-formed CBOR with any record code and any field values either acts
    or is a ProtocolError (which closes the connection): nothing else escapes."""
    rng = random.Random(1234)
    codec = MessageCodec()
    async with ta.open_node("alpha", epmd=None, cookie=COOKIE) as node:
        node.spawn(_idle, name="svc")
        peer = node.kernel.peers.ensure("mallory")
        on_frame = cbor_dispatcher(node.kernel, peer)
        outcomes = {"ok": 0, "refused": 0}
        for _ in range(3000):
            code = rng.randint(0, 14)
            fields = [_random_value(rng) for _ in range(rng.randint(0, 5))]
            try:
                on_frame(codec.encode([code, *fields]))
                outcomes["ok"] += 1
            except ta.ProtocolError:
                outcomes["refused"] += 1
        assert outcomes["ok"] > 0 and outcomes["refused"] > 0
