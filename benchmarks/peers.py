"""More cores with `node.start_peer`: N peer nodes on N cores beside one node.

    python benchmarks/peers.py            # one job per core, full size
    python benchmarks/peers.py --quick    # small jobs, a smoke run

The same CPU-bound jobs (a pure-Python loop each) run three ways, in one
process run:

1. bare trio: N tasks in one trio program (the baseline: one core);
2. one node: N actors of one trioactors node (one core too);
3. N peers: one job on each of N child nodes started with `start_peer`,
   the starter collecting the results (N cores).

Peer start-up is measured apart from the jobs. The ratios say what the
peers buy: job time of the one-process runs over the peers' job time (about
N on an idle machine with N cores).
"""

from __future__ import annotations

import argparse
import functools
import os
import time
from pathlib import Path
from typing import Any

import trio

import trioactors as ta

HERE = Path(__file__).resolve()
COOKIE = "peers-benchmark"


def burn(n: int) -> int:
    """The job: a pure-Python loop (holds the GIL, like real CPU-bound work)."""
    total = 0
    for i in range(n):
        total += i * i % 7
    return total


async def job(ctx: ta.Context, n: int, reply_to: ta.Pid) -> None:
    """An actor that runs one job and sends its result to `reply_to`."""
    ctx.send(reply_to, ("done", burn(n)))


async def serve(node: ta.Node) -> None:
    """The app of each peer node: offers `job` to the starter."""
    node.register_spawnable("job", job)


async def bare_trio(jobs: int, n: int) -> float:
    start = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for _ in range(jobs):
            nursery.start_soon(_bare_job, n)
    return time.perf_counter() - start


async def _bare_job(n: int) -> None:
    await trio.lowlevel.checkpoint()
    burn(n)


async def one_node(jobs: int, n: int) -> float:
    async with ta.open_node("solo", epmd=None, cookie=COOKIE) as node, node.actor() as me:
        start = time.perf_counter()
        for _ in range(jobs):
            node.spawn(job, n, me.pid)
        results = [await me.receive() for _ in range(jobs)]
        elapsed = time.perf_counter() - start
    assert len(results) == jobs
    return elapsed


async def peers(jobs: int, n: int) -> tuple[float, float]:
    async with ta.open_node("boss", epmd=None, cookie=COOKIE) as boss, boss.actor() as me:
        start = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for i in range(jobs):
                start_peer = functools.partial(boss.start_peer, app=f"{HERE}:serve")
                nursery.start_soon(start_peer, f"w{i}")
        startup = time.perf_counter() - start
        start = time.perf_counter()
        for i in range(jobs):
            await boss.spawn_on(f"w{i}", "job", n, me.pid)
        results: list[Any] = [await me.receive(timeout=600) for _ in range(jobs)]
        elapsed = time.perf_counter() - start
    assert len(results) == jobs
    return startup, elapsed


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small jobs, a smoke run")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 2, help="N (default: cores)")
    args = parser.parse_args()
    n = 200_000 if args.quick else 5_000_000
    jobs = args.jobs
    print(f"{jobs} jobs of burn({n:,}) on a machine with {os.cpu_count()} cores")
    bare = await bare_trio(jobs, n)
    solo = await one_node(jobs, n)
    startup, spread = await peers(jobs, n)
    print(f"1. bare trio, one process:  {bare:8.3f} s")
    print(f"2. one node:                {solo:8.3f} s   ({solo / bare:.2f}x bare trio's time)")
    print(f"3. {jobs} peers:                {spread:8.3f} s   (+ {startup:.3f} s to start them)")
    print(
        f"   speed-up of the peers: {bare / spread:.2f}x bare trio, {solo / spread:.2f}x one node"
    )


if __name__ == "__main__":
    trio.run(main)
