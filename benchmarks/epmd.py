"""EPMD throughput beside a bare-trio baseline measured in the same run.

    python benchmarks/epmd.py            # full run (a few seconds per figure)
    python benchmarks/epmd.py --quick    # smoke run (used by the test suite)

Figures:
- lookups per second over one client connection (sequential requests);
- lookups per second over 50 concurrent clients (one connection each);
- the time to list 10,000 registered nodes.

The baseline is a bare trio echo server speaking the same framing (4-byte
length + body): one round trip with the same request bytes, and, for the
listing, an echo of a payload as large as the listing's answer. The ratio says
how much of a bare round trip the daemon's work (parse, look up, encode) costs.
"""

from __future__ import annotations

import argparse
import functools
import time
from collections.abc import Awaitable, Callable, Sequence

import trio

import trioactors as ta
from trioactors.wire.epmd_native import ListNodes, Lookup, NodeList, encode_message
from trioactors.wire.framing import FrameDecoder, encode_frame

MAX = 256 * 1024 * 1024


async def echo_server(stream: trio.SocketStream) -> None:
    """Bare trio: echo every frame back."""
    frames = FrameDecoder(MAX)
    async with stream:
        try:
            async for data in stream:
                frames.feed(data)
                for body in frames:
                    await stream.send_all(encode_frame(body))
        except trio.BrokenResourceError:
            pass  # a client cut off at the end of a timed run


class EchoClient:
    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.frames = FrameDecoder(MAX)

    async def roundtrip(self, frame: bytes) -> bytes:
        await self.stream.send_all(frame)
        while True:
            body = self.frames.next_frame()
            if body is not None:
                return body
            self.frames.feed(await self.stream.receive_some(1 << 20))


async def rate(op: Callable[[], Awaitable[object]], seconds: float) -> float:
    """Operations per second of `op` run back to back for `seconds`."""
    n = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        await op()
        n += 1
        if n % 64 == 0 and time.perf_counter() >= deadline:
            return n / (time.perf_counter() - start)


async def concurrent_rate(ops: Sequence[Callable[[], Awaitable[object]]], seconds: float) -> float:
    """Total operations per second of every op running concurrently."""
    counts = [0] * len(ops)
    start = time.perf_counter()

    async def worker(i: int) -> None:
        while True:
            await ops[i]()
            counts[i] += 1

    with trio.move_on_after(seconds):
        async with trio.open_nursery() as nursery:
            for i in range(len(ops)):
                nursery.start_soon(worker, i)
    return sum(counts) / (time.perf_counter() - start)


async def timed(op: Callable[[], Awaitable[object]], repeat: int) -> float:
    """Best wall time of `op` over `repeat` runs, in seconds."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        await op()
        best = min(best, time.perf_counter() - t0)
    return best


def row(label: str, ours: float, base: float, unit: str, *, time_like: bool = False) -> str:
    if time_like:
        ratio = f"{ours / base:8.1f}x slower" if base else "-"
        return f"{label:<28} {ours * 1e3:12.2f} ms {base * 1e3:12.2f} ms   {ratio}"
    return f"{label:<28} {ours:12,.0f} {unit} {base:12,.0f} {unit}   {ours / base:8.2f}"


async def main(quick: bool) -> None:
    seconds = 0.3 if quick else 3.0
    clients_n = 50
    list_n = 1_000 if quick else 10_000
    repeat = 2 if quick else 5
    async with trio.open_nursery() as nursery:
        server: ta.EpmdServer = await nursery.start(ta.serve_epmd, "127.0.0.1", 0)
        echo_listeners = await nursery.start(trio.serve_tcp, echo_server, 0)
        echo_port = echo_listeners[0].socket.getsockname()[1]

        async def echo_client() -> EchoClient:
            return EchoClient(await trio.open_tcp_stream("127.0.0.1", echo_port))

        lookup_frame = encode_message(Lookup(1, "target"))
        print(f"EPMD benchmark, trioactors {ta.__version__} ({'quick' if quick else 'full'} run)")
        print(f"{'figure':<28} {'trioactors':>15} {'bare-trio echo':>15}   ratio")

        async with ta.EpmdClient("127.0.0.1", server.port) as owner:
            await owner.register("target", "127.0.0.1", 9999, metadata={"role": "bench"})

            one = ta.EpmdClient("127.0.0.1", server.port)
            echo = await echo_client()
            ours = await rate(lambda: one.lookup("target"), seconds)
            base = await rate(lambda: echo.roundtrip(lookup_frame), seconds)
            print(row("lookups/s, 1 connection", ours, base, "/s"))

            many = [ta.EpmdClient("127.0.0.1", server.port) for _ in range(clients_n)]
            for c in many:
                await c.ping()
            echoes = [await echo_client() for _ in range(clients_n)]
            lookups = [functools.partial(c.lookup, "target") for c in many]
            ours = await concurrent_rate(lookups, seconds)
            base = await concurrent_rate(
                [functools.partial(e.roundtrip, lookup_frame) for e in echoes], seconds
            )
            print(row(f"lookups/s, {clients_n} clients", ours, base, "/s"))
            for c in many:
                await c.aclose()

            await owner.unregister("target")
            t0 = time.perf_counter()
            for i in range(list_n):
                await owner.register(f"node-{i:05d}", "127.0.0.1", 10000 + i % 50000)
            reg_s = time.perf_counter() - t0
            nodes = await one.list_nodes()
            assert len(nodes) == list_n
            payload = encode_message(NodeList(1, tuple(nodes)))
            ours = await timed(one.list_nodes, repeat)
            base = await timed(lambda: echo.roundtrip(payload), repeat)
            print(row(f"list {list_n} nodes", ours, base, "", time_like=True))
            print(
                f"(registering the {list_n} nodes over one connection took {reg_s:.2f} s: "
                f"{list_n / reg_s:,.0f}/s; the listing answer is {len(payload):,} bytes; "
                f"ListNodes request {len(encode_message(ListNodes(1)))} bytes)"
            )
            await one.aclose()
            await echo.stream.aclose()
            for e in echoes:
                await e.stream.aclose()
            await owner.aclose()  # skip unregistering every name one by one
        nursery.cancel_scope.cancel()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="short smoke run")
    trio.run(main, parser.parse_args().quick)
