"""A supervision tree: strategies, restart types and restart intensity.

    python examples/local_supervision.py
    python examples/local_supervision.py --crashes 5

A `pipeline` supervisor (rest_for_one) runs a `source` that feeds a `sink`:
when the source crashes, the sink that depends on it is restarted as well,
in order. A `flaky` transient worker is restarted after crashes but not after
a normal exit. Crashing the source more often than `max_restarts` within
`max_seconds` makes the pipeline give up, and the top supervisor restarts
the whole subtree.
"""

# example-args: --crashes 4

from __future__ import annotations

import argparse
import logging
from typing import Any

import trio

import trioactors as ta


async def source(ctx: ta.Context) -> None:
    n = 0
    while True:
        try:
            msg = await ctx.receive(timeout=0.05)
        except trio.TooSlowError:
            n += 1
            ctx.send("sink", n)
            continue
        if msg == "crash":
            raise RuntimeError("source failed")


async def sink(ctx: ta.Context) -> None:
    total = 0
    while True:
        total += await ctx.receive()


async def flaky(ctx: ta.Context) -> None:
    msg = await ctx.receive()
    if msg == "crash":
        raise RuntimeError("flaky failed")
    # any other message: a normal exit, which a transient child is allowed


async def wait_down(me: ta.Context, ref: ta.Ref) -> ta.Down:
    down: ta.Down = await me.receive(match=lambda m: isinstance(m, ta.Down) and m.ref == ref)
    return down


def show(system: ta.ActorSystem, sup: Any, depth: int = 0) -> None:
    for cid, pid, restart in system.which_children(sup):
        print(f"  {'  ' * depth}{cid:<10} {pid!s:<10} {restart}")
        if cid == "pipeline" and pid is not None:
            show(system, pid, depth + 1)


async def main(crashes: int) -> None:
    pipeline = ta.supervisor(
        [ta.ChildSpec("source", source, name="source"), ta.ChildSpec("sink", sink, name="sink")],
        strategy="rest_for_one",
        max_restarts=2,
        max_seconds=10.0,
    )
    async with ta.open_actor_system() as system:
        top = await system.start_supervisor(
            [
                ta.ChildSpec("pipeline", pipeline, name="pipeline"),
                ta.ChildSpec("flaky", flaky, restart="transient", name="flaky"),
            ],
            name="top",
        )
        print("started:")
        show(system, top)

        async with system.actor() as me:
            print("\nflaky crashes -> restarted (transient, abnormal exit):")
            ref = me.monitor("flaky")
            system.send("flaky", "crash")
            await wait_down(me, ref)
            await trio.sleep(0.05)
            show(system, top)

            print("\nflaky exits normally -> not restarted:")
            ref = me.monitor("flaky")
            system.send("flaky", "done")
            await wait_down(me, ref)
            await trio.sleep(0.05)
            show(system, top)

            first_pipeline = system.whereis("pipeline")
            for i in range(crashes):
                ref = me.monitor("source")
                system.send("source", "crash")
                down = await wait_down(me, ref)
                await trio.sleep(0.05)
                print(f"\nsource crash {i + 1} ({down.reason}): rest_for_one restarts source+sink")
                show(system, top)
            if crashes > 2:
                assert system.whereis("pipeline") != first_pipeline
                print("\nthe third crash within 10 s exceeded max_restarts=2: the pipeline")
                print("supervisor shut down and 'top' started a fresh one.")
    print("\nsystem stopped: every child was stopped in reverse start order")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crashes", type=int, default=4, help="how often to crash the source")
    args = parser.parse_args()
    logging.basicConfig(level=logging.CRITICAL)  # crash reports are narrated above
    trio.run(main, args.crashes)
