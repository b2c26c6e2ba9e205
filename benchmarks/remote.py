"""Remote messaging speed: two node processes on loopback, each figure beside a
bare-trio baseline measured in the same run, and the ratio.

    python benchmarks/remote.py            # full run (~30 s)
    python benchmarks/remote.py --quick    # a few seconds (the test suite runs this)

A full run takes each figure as the median of 7 rounds, bare and trioactors
rounds alternating, and the ratio as the median of each round's ratio to the
bare round just before it, so that the machine's drift hits both alike (on a
noisy VM single rounds of ping-pong vary by +-10%).

1. ping-pong round trips between an actor here and an echo actor on a node
   process, vs. two bare trio processes exchanging the same CBOR frames over
   one TCP stream;
2. one-way throughput of small messages to a sink actor on the other node
   (until the sink reports it has them all), vs. bare trio sending the same
   CBOR frames in batches;
3. GenServer call round-trip latency across nodes, p50 / p99.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import cbor2
import trio

import trioactors as ta
from trioactors.wire.cbor import TAG_PID, TAG_TUPLE, MessageCodec
from trioactors.wire.framing import FrameDecoder, encode_frame
from trioactors.wire.terms import Pid

HERE = Path(__file__).resolve()
COOKIE = "bench-cookie"
BATCH = 1000
# Reads of 64 KiB, like the nodes: a buffer above glibc's mmap threshold
# could cost the baseline an mmap per read.
RECEIVE_SIZE = 64 * 1024
#: Alternating bare / trioactors rounds per figure in a full run (medians reported).
ROUNDS = 7

# --------------------------------------------------------------------------- the node app


class _Counter(ta.GenServer):
    async def init(self) -> None:
        self.n = 0

    async def handle_call(self, request: Any, caller: ta.Caller) -> Any:
        self.n += 1
        return self.n


async def _echo(ctx: ta.Context) -> None:
    while True:
        _, sender, i = await ctx.receive()
        ctx.send(sender, ("pong", i))


async def _sink(ctx: ta.Context) -> None:
    count = 0
    while True:
        msg = await ctx.receive()
        if msg[0] == "done":
            ctx.send(msg[1], ("count", count))
            count = 0
        else:
            count += 1


async def bench_app(node: ta.Node) -> None:
    """`trioactors node ... --app benchmarks/remote.py:bench_app`."""
    node.spawn(_echo, name="echo")
    node.spawn(_sink, name="sink")
    await node.start_server(_Counter, name="counter")


# --------------------------------------------------------------------------- bare trio peer
#
# The baseline exchanges the very frames trioactors puts on the wire for the
# messages above (`_check_bare_frames` verifies it byte for byte): a
# SendNamed record ``[2, name, msg]`` or a Send record ``[1, pid, msg]``, the
# pid and the tuples being CBOR tags. It builds them with plain cbor2 values
# (`CBORTag`) and reads them with plain `cbor2.loads`, no hooks.

_SEND, _SEND_NAMED = 1, 2


def _tuple(*items: Any) -> cbor2.CBORTag:
    return cbor2.CBORTag(TAG_TUPLE, list(items))


def _bare_pid() -> cbor2.CBORTag:
    # Shaped like the pid of an actor of node bench-a: a small id, the node's
    # creation from the clock.
    creation = int(time.time() * 1000) % (2**32 - 1) + 1
    return cbor2.CBORTag(TAG_PID, ["bench-a", 3, 0, creation])


def _check_bare_frames() -> None:
    """The bare frames are byte for byte those trioactors sends for the same messages."""
    tag = _bare_pid()
    node, id_, serial, creation = tag.value
    pid = Pid(node, id_, serial, creation)
    a, b = MessageCodec(), MessageCodec()
    pairs = [
        (a, [_SEND_NAMED, "echo", ("ping", pid, 7)], [_SEND_NAMED, "echo", _tuple("ping", tag, 7)]),
        (b, [_SEND, pid, ("pong", 7)], [_SEND, tag, _tuple("pong", 7)]),
        (a, [_SEND_NAMED, "sink", ("msg", 7)], [_SEND_NAMED, "sink", _tuple("msg", 7)]),
        (a, [_SEND_NAMED, "sink", ("done", pid)], [_SEND_NAMED, "sink", _tuple("done", tag)]),
        (b, [_SEND, pid, ("count", 7)], [_SEND, tag, _tuple("count", 7)]),
    ]
    for codec, ours, bare in pairs:
        assert codec.encode(ours) == cbor2.dumps(bare), (ours, bare)


async def _bare_serve() -> None:
    """The baseline peer: echoes ping frames, counts one-way frames."""

    async def handler(stream: trio.SocketStream) -> None:
        decoder = FrameDecoder()
        count = 0
        while data := await stream.receive_some(RECEIVE_SIZE):
            decoder.feed(data)
            out = []
            for body in decoder:
                _, name, msg = cbor2.loads(body)
                kind = msg.value[0]
                if name == "sink" and kind == "msg":
                    count += 1
                elif name == "echo":
                    _, sender, i = msg.value
                    out.append(encode_frame(cbor2.dumps([_SEND, sender, _tuple("pong", i)])))
                else:
                    reply = [_SEND, msg.value[1], _tuple("count", count)]
                    out.append(encode_frame(cbor2.dumps(reply)))
                    count = 0
            if out:
                await stream.send_all(b"".join(out))

    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    print(f"bare listening on 127.0.0.1:{listeners[0].socket.getsockname()[1]}", flush=True)
    await trio.serve_listeners(handler, listeners)


async def _frames(stream: trio.SocketStream, decoder: FrameDecoder) -> Any:
    while True:
        body = decoder.next_frame()
        if body is not None:
            return cbor2.loads(body)
        data = await stream.receive_some(RECEIVE_SIZE)
        if not data:
            raise RuntimeError("peer closed")
        decoder.feed(data)


async def bare_pingpong(address: tuple[str, int], n: int) -> float:
    stream = await trio.open_tcp_stream(*address)
    decoder = FrameDecoder()
    me = _bare_pid()
    start = time.perf_counter()
    for i in range(n):
        frame = cbor2.dumps([_SEND_NAMED, "echo", _tuple("ping", me, i)])
        await stream.send_all(encode_frame(frame))
        assert (await _frames(stream, decoder))[2].value[1] == i
    elapsed = time.perf_counter() - start
    await stream.aclose()
    return n / elapsed


async def bare_throughput(address: tuple[str, int], n: int) -> float:
    stream = await trio.open_tcp_stream(*address)
    decoder = FrameDecoder()
    me = _bare_pid()
    start = time.perf_counter()
    batch = []
    for i in range(n):
        batch.append(encode_frame(cbor2.dumps([_SEND_NAMED, "sink", _tuple("msg", i)])))
        if len(batch) == BATCH:
            await stream.send_all(b"".join(batch))
            batch.clear()
    batch.append(encode_frame(cbor2.dumps([_SEND_NAMED, "sink", _tuple("done", me)])))
    await stream.send_all(b"".join(batch))
    reply = await _frames(stream, decoder)
    elapsed = time.perf_counter() - start
    assert tuple(reply[2].value) == ("count", n), reply
    await stream.aclose()
    return n / elapsed


# --------------------------------------------------------------------------- trioactors side


async def node_pingpong(node: ta.Node, n: int) -> float:
    async with node.actor() as me:
        echo = ("echo", "bench-b")
        start = time.perf_counter()
        for i in range(n):
            me.send(echo, ("ping", me.pid, i))
            assert (await me.receive())[1] == i
        return n / (time.perf_counter() - start)


async def node_throughput(node: ta.Node, n: int) -> float:
    async with node.actor() as me:
        sink = ("sink", "bench-b")
        start = time.perf_counter()
        for i in range(n):
            me.send(sink, ("msg", i))
            if i % BATCH == 0:
                await trio.lowlevel.checkpoint()
        me.send(sink, ("done", me.pid))
        reply = await me.receive(timeout=120)
        elapsed = time.perf_counter() - start
        assert reply == ("count", n), reply
        return n / elapsed


async def node_call_latency(node: ta.Node, n: int) -> tuple[float, float]:
    samples = []
    async with node.actor() as me:
        for _ in range(n):
            start = time.perf_counter()
            await me.call(("counter", "bench-b"), 1)
            samples.append(time.perf_counter() - start)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.99) - 1]


# --------------------------------------------------------------------------- driver


@asynccontextmanager
async def _child(args: list[str], prefix: str) -> AsyncIterator[tuple[str, int]]:
    env = {**os.environ, "TRIOACTORS_COOKIE": COOKIE}
    proc = await trio.lowlevel.open_process(
        [sys.executable, *args], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env
    )
    try:
        assert proc.stdout is not None
        buf = b""
        with trio.fail_after(30):
            while prefix.encode() not in buf or not buf.endswith(b"\n"):
                chunk = await proc.stdout.receive_some(4096)
                if not chunk:
                    raise RuntimeError(f"{args} exited early")
                buf += chunk
        line = next(x for x in buf.decode().splitlines() if x.startswith(prefix))
        host, _, port = line.rpartition(" ")[2].rpartition(":")
        yield host, int(port)
    finally:
        proc.terminate()
        with trio.CancelScope(shield=True), trio.move_on_after(10):
            await proc.wait()
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def _row(label: str, ours: list[float], base: list[float], unit: str) -> None:
    # The ratio is the median of each round's ratio to the bare round just
    # before it: drift between rounds cancels out, which a ratio of the two
    # medians would not do.
    median = statistics.median
    ratio = median(o / b for o, b in zip(ours, base, strict=True))
    print(f"{label:<30} {median(ours):>12,.0f} {unit:<8} bare trio {median(base):>12,.0f} "
          f"{unit:<8} ratio {ratio:5.2f}x", flush=True)  # fmt: skip


async def main(quick: bool) -> None:
    n_rt, n_msgs, n_calls = (2_000, 20_000, 1_000) if quick else (5_000, 200_000, 10_000)
    rounds = 1 if quick else ROUNDS
    _check_bare_frames()
    node_cmd = ["-m", "trioactors", "--log-level", "warning", "node", "bench-b", "--epmd",
                "none", "--app", f"{HERE}:bench_app"]  # fmt: skip
    async with (
        _child([str(HERE), "--serve-bare"], "bare listening on ") as bare,
        _child(node_cmd, "node bench-b listening on ") as (host, port),
        ta.open_node("bench-a", epmd=None, cookie=COOKIE) as node,
    ):
        await node.connect(f"bench-b@{host}:{port}")
        # Warm-up, then bare and trioactors rounds taken in turn, so a drift of
        # the machine's speed (other processes, CPU clocks) hits both alike.
        await bare_pingpong(bare, n_rt // 10)
        await node_pingpong(node, n_rt // 10)
        await bare_throughput(bare, n_msgs // 10)
        await node_throughput(node, n_msgs // 10)
        base_rt, rt, base_tp, tp = [], [], [], []
        for _ in range(rounds):
            base_rt.append(await bare_pingpong(bare, n_rt))
            rt.append(await node_pingpong(node, n_rt))
        for _ in range(rounds):
            base_tp.append(await bare_throughput(bare, n_msgs))
            tp.append(await node_throughput(node, n_msgs))
        await node_call_latency(node, n_calls // 10)
        p50, p99 = await node_call_latency(node, n_calls)
    median = statistics.median
    print(f"remote benchmarks ({'quick' if quick else 'full'}), two processes on loopback"
          f"{'' if quick else f', median of {rounds} alternating rounds'}")  # fmt: skip
    _row("ping-pong round trips", rt, base_rt, "rt/s")
    _row("one-way throughput", tp, base_tp, "msg/s")
    print(f"{'call latency':<30} p50 {p50 * 1e6:,.0f} us   p99 {p99 * 1e6:,.0f} us "
          f"(bare ping-pong round trip {1e6 / median(base_rt):,.0f} us)")  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small counts, a few seconds")
    parser.add_argument("--serve-bare", action="store_true", help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.serve_bare:
        trio.run(_bare_serve)
    else:
        trio.run(main, opts.quick)
