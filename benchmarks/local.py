"""Local runtime speed: each trioactors figure beside its bare-trio baseline.

    python benchmarks/local.py            # full counts (about a minute)
    python benchmarks/local.py --quick    # small counts, a smoke run

1. one-way throughput, one sender actor to one receiver actor; baseline: two
   tasks over an unbounded memory channel, sender `send_nowait`, receiver
   draining with `receive_nowait` (both yielding every 128 messages, the same
   fairness rule the actors follow).
2. ping-pong round trips between two actors; baseline: two tasks over two
   unbuffered memory channels.
3. gen_server `call` round trips; same baseline as 2. Then the same calls
   made by a caller with 20,000 unrelated messages queued in its mailbox; the
   baseline of that figure is the empty-mailbox call (the reply wait must not
   scan the mailbox, so the two should be within 2x).
4. spawn rate and memory per idle actor; baseline: bare tasks each waiting on
   its own memory channel.

Each figure is the best of `--repeat` runs (default 3) so a busy machine
disturbs it less. Memory is the RSS growth per actor, measured on a fresh
process for each side so freed arenas of one do not flatter the other.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import trio
import trio.testing

import trioactors as ta

_BURST = 128


# ----------------------------------------------------------------- 1. one-way throughput


async def bare_throughput(n: int) -> float:
    send, recv = trio.open_memory_channel[Any](math.inf)
    done = trio.Event()

    async def sender() -> None:
        for i in range(n):
            send.send_nowait(i)
            if i % _BURST == 0:
                await trio.lowlevel.checkpoint()

    async def receiver() -> None:
        count = 0
        while count < n:
            try:
                recv.receive_nowait()
            except trio.WouldBlock:
                await recv.receive()
            count += 1
            if count % _BURST == 0:
                await trio.lowlevel.checkpoint()
        done.set()

    t0 = time.perf_counter()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(receiver)
        nursery.start_soon(sender)
        await done.wait()
    return n / (time.perf_counter() - t0)


async def actor_throughput(n: int) -> float:
    async with ta.open_actor_system() as system:

        async def receiver(ctx: ta.Context) -> None:
            receive = ctx.receive
            for _ in range(n):
                await receive()

        async def sender(ctx: ta.Context, to: ta.Pid) -> None:
            send = ctx.send
            for i in range(n):
                send(to, i)
                if i % _BURST == 0:
                    await trio.lowlevel.checkpoint()

        t0 = time.perf_counter()
        rpid = system.spawn(receiver)
        system.spawn(sender, rpid)
        await system.join(rpid)
        return n / (time.perf_counter() - t0)


# ----------------------------------------------------------------- 2. ping-pong


async def bare_pingpong(n: int) -> float:
    to_pong, pong_in = trio.open_memory_channel[Any](0)
    to_ping, ping_in = trio.open_memory_channel[Any](0)

    async def pong() -> None:
        for _ in range(n):
            msg = await pong_in.receive()
            await to_ping.send(msg)

    t0 = time.perf_counter()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(pong)
        for i in range(n):
            await to_pong.send(i)
            await ping_in.receive()
    return n / (time.perf_counter() - t0)


async def actor_pingpong(n: int) -> float:
    async with ta.open_actor_system() as system:

        async def pong(ctx: ta.Context) -> None:
            receive = ctx.receive
            send = ctx.send
            for _ in range(n):
                frm, msg = await receive()
                send(frm, msg)

        async def ping(ctx: ta.Context, to: ta.Pid) -> None:
            receive = ctx.receive
            send = ctx.send
            me = ctx.pid
            for i in range(n):
                send(to, (me, i))
                await receive()

        t0 = time.perf_counter()
        pong_pid = system.spawn(pong)
        await system.join(system.spawn(ping, pong_pid))
        return n / (time.perf_counter() - t0)


# ----------------------------------------------------------------- 3. gen_server call


class _Echo(ta.GenServer):
    async def handle_call(self, request: Any, caller: ta.Caller) -> Any:
        return request


async def actor_calls(n: int) -> float:
    async with ta.open_actor_system() as system:
        server = await system.start_server(_Echo)
        assert server is not None

        async def client(ctx: ta.Context) -> None:
            call = ctx.call
            for i in range(n):
                await call(server, i)

        t0 = time.perf_counter()
        await system.join(system.spawn(client))
        return n / (time.perf_counter() - t0)


_QUEUED = 20_000


async def actor_calls_queued(n: int) -> float:
    async with ta.open_actor_system() as system:
        server = await system.start_server(_Echo)
        assert server is not None
        elapsed = 0.0

        async def client(ctx: ta.Context) -> None:
            nonlocal elapsed
            for i in range(_QUEUED):
                ctx.send(ctx.pid, ("unrelated", i))
            call = ctx.call
            t0 = time.perf_counter()
            for i in range(n):
                await call(server, i)
            elapsed = time.perf_counter() - t0

        assert await system.join(system.spawn(client)) == "normal"
        return n / elapsed


# ----------------------------------------------------------------- 4. spawn and memory


def _rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


async def bare_spawn(n: int) -> tuple[float, float]:
    gc.collect()
    before = _rss_kib()
    keep = []

    async def idle(recv: trio.MemoryReceiveChannel[Any]) -> None:
        await recv.receive()

    async with trio.open_nursery() as nursery:
        t0 = time.perf_counter()
        for _ in range(n):
            send, recv = trio.open_memory_channel[Any](math.inf)
            keep.append(send)
            nursery.start_soon(idle, recv)
        await trio.testing.wait_all_tasks_blocked()
        elapsed = time.perf_counter() - t0
        per = (_rss_kib() - before) * 1024 / n
        nursery.cancel_scope.cancel()
    return n / elapsed, per


async def actor_spawn(n: int) -> tuple[float, float]:
    async def idle(ctx: ta.Context) -> None:
        await ctx.receive()

    async with ta.open_actor_system() as system:
        gc.collect()
        before = _rss_kib()
        spawn = system.spawn
        t0 = time.perf_counter()
        for _ in range(n):
            spawn(idle)
        await trio.testing.wait_all_tasks_blocked()
        elapsed = time.perf_counter() - t0
        per = (_rss_kib() - before) * 1024 / n
        for pid in system.processes():
            system.send(pid, "stop")
    return n / elapsed, per


# ----------------------------------------------------------------- driver


def _pair(
    ours: Callable[[int], Awaitable[float]],
    base: Callable[[int], Awaitable[float]],
    n: int,
    repeat: int,
) -> tuple[float, float]:
    """Best of `repeat` runs of each, interleaved so both see the same load."""
    a: list[float] = []
    b: list[float] = []
    for _ in range(repeat):
        a.append(trio.run(ours, n))
        b.append(trio.run(base, n))
    return max(a), max(b)


def _spawn_child(kind: str, n: int) -> tuple[float, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--spawn-child", kind, "--count", str(n)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    rate, per = json.loads(out)
    return float(rate), float(per)


def _row(name: str, unit: str, ours: float, base: float, target: str) -> None:
    ratio = ours / base if base else float("nan")
    print(f"{name:<34} {ours:>12,.0f} {base:>12,.0f} {unit:<9} {ratio:>6.2f}x   {target}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small counts (smoke run)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (best kept)")
    parser.add_argument("--spawn-child", choices=["bare", "actor"], help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.spawn_child:
        fn = bare_spawn if args.spawn_child == "bare" else actor_spawn
        print(json.dumps(trio.run(fn, args.count)))
        return 0

    quick = args.quick
    repeat = 1 if quick else args.repeat
    n_msgs = 20_000 if quick else 1_000_000
    n_rt = 5_000 if quick else 100_000
    n_spawn = 5_000 if quick else 100_000

    print(f"trioactors local benchmarks (python {sys.version.split()[0]}, trio {trio.__version__})")
    print(f"{'':<34} {'trioactors':>12} {'bare trio':>12} {'':<9} {'ratio':>7}   target")
    _row(
        f"1. one-way msgs ({n_msgs:,})",
        "msg/s",
        *_pair(actor_throughput, bare_throughput, n_msgs, repeat),
        ">= 500k msg/s and >= 0.9x",
    )
    ours_pp, base_pp = _pair(actor_pingpong, bare_pingpong, n_rt, repeat)
    _row(f"2. ping-pong ({n_rt:,})", "rt/s", ours_pp, base_pp, ">= 1.5x")
    ours_call, base_call = _pair(actor_calls, bare_pingpong, n_rt, repeat)
    _row(f"3. gen_server call ({n_rt:,})", "rt/s", ours_call, base_call, ">= 0.8x")
    # Its baseline is the empty-mailbox call of the line above, run interleaved.
    ours_q, base_q = _pair(actor_calls_queued, actor_calls, n_rt, repeat)
    _row(f"   call, {_QUEUED // 1000}k msgs queued", "rt/s", ours_q, base_q, ">= 0.5x (vs. empty)")
    actor: list[tuple[float, float]] = []
    bare: list[tuple[float, float]] = []
    for _ in range(repeat):
        actor.append(_spawn_child("actor", n_spawn))
        bare.append(_spawn_child("bare", n_spawn))
    _row(
        f"4. spawn ({n_spawn:,})",
        "spawn/s",
        max(r for r, _ in actor),
        max(r for r, _ in bare),
        ">= 0.8x",
    )
    _row(
        "   memory per idle actor",
        "bytes",
        min(m for _, m in actor),
        min(m for _, m in bare),
        "<= 0.85x",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
