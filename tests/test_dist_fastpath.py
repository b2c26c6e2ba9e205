"""The remote messaging fast paths keep every guarantee: direct socket writes
(order, partial writes, never under TLS), the codec's memo caches (same bytes,
bounded, strict decoding) and the frame decoder's buffer handling."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import cbor2
import pytest
import trio
import trio.testing
import trustme

import trioactors as ta
from trioactors.cluster.connection import Connection
from trioactors.wire.cbor import _CACHE_SIZE, TAG_PID, MessageCodec
from trioactors.wire.framing import DEFAULT_MAX_FRAME_SIZE as LIMIT
from trioactors.wire.framing import FrameDecoder, encode_frame
from trioactors.wire.terms import Pid, Ref

# ------------------------------------------------------------------ direct writes


@asynccontextmanager
async def _tcp_pair() -> AsyncIterator[tuple[trio.SocketStream, trio.SocketStream]]:
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    client = await trio.open_tcp_stream("127.0.0.1", port)
    server = await listeners[0].accept()
    await listeners[0].aclose()
    async with client, server:
        yield client, server


class _Collector:
    def __init__(self, expect: int) -> None:
        self.got: list[bytes] = []
        self.expect = expect
        self.done = trio.Event()
        self._grew = trio.Event()

    def __call__(self, body: bytes) -> None:
        self.got.append(body)
        self._grew.set()
        if len(self.got) == self.expect:
            self.done.set()

    async def wait_for(self, count: int) -> None:
        with trio.fail_after(5):
            while len(self.got) < count:
                self._grew = trio.Event()
                await self._grew.wait()


async def _wait_idle(conn: Connection) -> None:
    # The writer parks once the queue is empty; direct writes need it parked.
    await trio.testing.wait_all_tasks_blocked()
    assert conn._writer_waiting is not None and not conn._queue


async def test_an_idle_connection_writes_a_frame_directly() -> None:
    async with _tcp_pair() as (left, right):
        got = _Collector(2)
        sender = Connection(left, peer="b", on_frame=lambda b: None, tick_timeout=30)
        receiver = Connection(right, peer="a", on_frame=got, tick_timeout=30)
        async with trio.open_nursery() as n:
            n.start_soon(sender.run)
            n.start_soon(receiver.run)
            await _wait_idle(sender)
            before = sender.writes
            sender.send_frame(encode_frame(b"first"))
            # Written by send_frame itself, before any checkpoint.
            assert sender.writes == before + 1 and not sender._queue
            sender.send_frame(encode_frame(b"second"))  # a burst: queued for the writer
            assert list(sender._queue) == [encode_frame(b"second")]
            with trio.fail_after(5):
                await got.done.wait()
            n.cancel_scope.cancel()
        assert got.got == [b"first", b"second"]


async def test_direct_writes_keep_order_through_partial_writes() -> None:
    big = bytes(range(256)) * (24 * 1024)  # 6 MiB: far more than a socket buffer takes
    frames = [b"small-%d" % i for i in range(50)]
    async with _tcp_pair() as (left, right):
        expected = [b"a", big, *frames, big, b"z"]
        got = _Collector(len(expected))
        sender = Connection(left, peer="b", on_frame=lambda b: None, tick_timeout=30)
        receiver = Connection(right, peer="a", on_frame=got, tick_timeout=30)
        async with trio.open_nursery() as n:
            n.start_soon(sender.run)
            await _wait_idle(sender)
            # The receiver is not reading yet, so the big frame is cut short.
            sender.send_frame(encode_frame(b"a"))
            await _wait_idle(sender)
            sender.send_frame(encode_frame(big))
            assert sender._queue  # the remainder waits for the writer
            for frame in frames:
                sender.send_frame(encode_frame(frame))
                await trio.lowlevel.checkpoint()
            sender.send_frame(encode_frame(big))
            sender.send_frame(encode_frame(b"z"))
            n.start_soon(receiver.run)
            with trio.fail_after(20):
                await got.done.wait()
            n.cancel_scope.cancel()
        assert got.got == expected


async def test_request_reply_over_tcp_stays_in_order() -> None:
    rounds = 300
    async with _tcp_pair() as (left, right):
        replies = _Collector(rounds)
        client = Connection(left, peer="b", on_frame=replies, tick_timeout=30)

        def echo(body: bytes) -> None:
            server.send_frame(encode_frame(b"re:" + body))

        server = Connection(right, peer="a", on_frame=echo, tick_timeout=30)
        async with trio.open_nursery() as n:
            n.start_soon(client.run)
            n.start_soon(server.run)
            await _wait_idle(client)
            direct = 0
            for i in range(rounds):
                before = client.writes
                client.send_frame(encode_frame(b"%d" % i))
                direct += client.writes - before  # written before any checkpoint
                await replies.wait_for(i + 1)
            n.cancel_scope.cancel()
        assert replies.got == [b"re:%d" % i for i in range(rounds)]
        # Each request found the connection idle (the reply re-armed it).
        assert direct == rounds
        assert client._fd == -1  # the descriptor is off limits after run()


async def test_no_direct_write_after_the_connection_ended() -> None:
    async with _tcp_pair() as (left, right):
        conn = Connection(left, peer="b", on_frame=lambda b: None, tick_timeout=30)
        async with trio.open_nursery() as n:
            n.start_soon(conn.run)
            await _wait_idle(conn)
            await right.aclose()  # the peer hangs up: the reader ends the connection
        assert conn.reason == "connection_closed"
        writes = conn.writes
        conn.send_frame(encode_frame(b"late"))
        assert conn.writes == writes and not conn._queue


def _tls_contexts() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("peer").configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    return server, client


async def test_tls_streams_never_write_directly() -> None:
    server_ctx, client_ctx = _tls_contexts()
    async with _tcp_pair() as (left, right):
        a = trio.SSLStream(left, client_ctx, server_hostname="peer")
        b = trio.SSLStream(right, server_ctx, server_side=True)
        async with trio.open_nursery() as n:
            n.start_soon(a.do_handshake)
            n.start_soon(b.do_handshake)
        got = _Collector(1)
        sender = Connection(a, peer="b", on_frame=lambda x: None, tick_timeout=30)
        receiver = Connection(b, peer="a", on_frame=got, tick_timeout=30)
        async with trio.open_nursery() as n:
            n.start_soon(sender.run)
            n.start_soon(receiver.run)
            await _wait_idle(sender)
            writes = sender.writes
            sender.send_frame(encode_frame(b"secret"))
            assert sender.writes == writes  # only the writer, through TLS
            with trio.fail_after(5):
                await got.done.wait()
            n.cancel_scope.cancel()
        assert got.got == [b"secret"]


async def test_messages_between_nodes_keep_per_pair_order() -> None:
    n_msgs = 2000
    async with (
        ta.open_node("fp-a", epmd=None, cookie="c") as a,
        ta.open_node("fp-b", epmd=None, cookie="c") as b,
    ):
        seen: list[int] = []
        finished = trio.Event()

        async def sink(ctx: ta.Context) -> None:
            while True:
                i = await ctx.receive()
                seen.append(i)
                if i == n_msgs - 1:
                    finished.set()

        b.spawn(sink, name="sink")
        await a.connect(f"fp-b@{b.address[0]}:{b.address[1]}")
        async with a.actor() as me:
            for i in range(n_msgs):
                me.send(("sink", "fp-b"), i)
                if i % 7 == 0:
                    await trio.lowlevel.checkpoint()  # mix direct writes and batches
            with trio.fail_after(10):
                await finished.wait()
        assert seen == list(range(n_msgs))


# ------------------------------------------------------------------ codec caches


def test_addressed_records_are_the_same_bytes_as_plain_encoding() -> None:
    codec = MessageCodec()
    pid, remote = Pid("a", 5, 0, 77), Pid("b", 6, 0, 1)
    cases: list[tuple[int, Pid | str, Any]] = [
        (1, pid, ("hello", pid, [1, 2.5, None], {"k": (remote, b"x")})),
        (2, "name", ("msg", 3)),
        (1, remote, Ref("a", 77, (8,))),
    ]
    for _ in range(2):  # the second round comes from the caches
        for code, address, payload in cases:
            assert codec.frame_addressed(code, address, payload, LIMIT) == encode_frame(
                codec.encode([code, address, payload])
            )
    # Another node's codec writes the very same bytes: pids are absolute.
    assert MessageCodec().frame_addressed(1, pid, 0, LIMIT) == codec.frame_addressed(
        1, pid, 0, LIMIT
    )


def test_codec_caches_are_bounded() -> None:
    codec = MessageCodec()
    for i in range(_CACHE_SIZE + 50):
        pid = Pid("a", i, 0, 1)
        codec.frame_addressed(1, pid, pid, LIMIT)
        codec.decode(codec.encode(Pid("b", i, 0, 1)))
    assert len(codec._pid_bytes) <= _CACHE_SIZE
    assert len(codec._heads) <= _CACHE_SIZE
    assert len(codec._pids) <= _CACHE_SIZE
    assert codec.decode(codec.encode(Pid("a", 3, 0, 1))) == Pid("a", 3, 0, 1)


def test_decoded_pids_stay_strict_with_a_warm_cache() -> None:
    codec = MessageCodec()
    good = ["a", 7, 0, 9]
    assert codec.decode(cbor2.dumps(cbor2.CBORTag(TAG_PID, good))) == Pid("a", 7, 0, 9)
    for bad in (
        [True, 7, 0, 9],
        ["a", 7.0, 0, 9],
        ["a", 7, 0],
        ["a", 7, 0, 9, 0],
        ["a", -7, 0, 9],
        [b"a", 7, 0, 9],
        ["a", 7, False, 9],
    ):
        with pytest.raises(ta.ProtocolError):
            codec.decode(cbor2.dumps(cbor2.CBORTag(TAG_PID, bad)))


def test_pids_as_dict_keys_decode_with_a_warm_cache() -> None:
    codec = MessageCodec()
    value = {
        Pid("a", 2, 0, 3): 1,
        (Pid("b", 2, 0, 3), "x"): [Pid("a", 2, 0, 3)],
        Ref("a", 3, (4,)): 2,
    }
    for _ in range(2):
        assert codec.decode(codec.encode(value)) == value


def test_unserialisable_payload_after_a_cached_head() -> None:
    codec = MessageCodec()
    codec.frame_addressed(2, "name", "ok", LIMIT)
    with pytest.raises(ta.NotSerializable):
        codec.frame_addressed(2, "name", ("fine", object()), LIMIT)
    assert codec.frame_addressed(2, "name", "ok", LIMIT) == encode_frame(
        codec.encode([2, "name", "ok"])
    )
    with pytest.raises(ta.NotSerializable, match="exceeds max_frame_size"):
        codec.frame_addressed(2, "name", "x" * 100, 100)


# ------------------------------------------------------------------ frame decoder


def test_frame_decoder_joins_a_large_frame_once_and_keeps_the_rest() -> None:
    body = bytes(range(256)) * 4000
    stream = encode_frame(body) + encode_frame(b"next") + encode_frame(b"par")[:5]
    dec = FrameDecoder()
    for i in range(0, len(stream), 1000):
        dec.feed(stream[i : i + 1000])
        if i + 1000 < len(stream) - 20:
            assert dec.next_frame() is None
    assert dec.next_frame() == body
    assert dec.next_frame() == b"next"
    assert dec.next_frame() is None
    assert dec.buffered == 5
    assert dec.detach() == encode_frame(b"par")[:5]
    assert dec.buffered == 0


def test_frame_decoder_detach_keeps_a_parsed_header() -> None:
    dec = FrameDecoder()
    dec.feed(encode_frame(b"abcdef")[:6])
    assert dec.next_frame() is None  # header parsed, body incomplete
    rest = dec.detach()
    assert rest == encode_frame(b"abcdef")[:6]
    other = FrameDecoder()
    other.feed(rest + b"cdef")
    assert other.next_frame() == b"abcdef"
