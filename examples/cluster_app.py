"""An app for `trioactors node NAME --app examples/cluster_app.py:main`.

Each node running it starts a `greeter` actor and, every two seconds, greets
the greeter of every node it is connected to and prints the answers:

    trioactors epmd &
    export TRIOACTORS_COOKIE=secret
    trioactors node alpha --app examples/cluster_app.py:main &
    trioactors node beta  --app examples/cluster_app.py:main

Run as a script, it does the same with an embedded EPMD and two nodes in one
process for a few rounds, then stops (`--rounds N`).
"""

# example-args: --rounds 2

from __future__ import annotations

import argparse
from typing import Any

import trio

import trioactors as ta


async def greeter(ctx: ta.Context) -> None:
    """Answers `(sender_pid, from_node)` with a greeting naming both nodes."""
    while True:
        sender, from_node = await ctx.receive()
        ctx.send(sender, f"{ctx.system.node_name} greets {from_node}")


async def main(node: Any, rounds: int | None = None, interval: float = 2.0) -> None:
    """The app: run by `trioactors node --app` with the node; forever by default."""
    node.spawn(greeter, name="greeter")
    async with node.actor() as me:
        done = 0
        while rounds is None or done < rounds:
            await trio.sleep(interval)
            peers = node.nodes()
            for peer in peers:
                me.send(("greeter", peer), (me.pid, node.name))
            for _ in peers:
                try:
                    print(f"[{node.name}] {await me.receive(timeout=interval)}", flush=True)
                except trio.TooSlowError:
                    break
            done += 1


async def _demo(rounds: int) -> None:
    async with trio.open_nursery() as nursery:
        epmd = await nursery.start(ta.serve_epmd, "127.0.0.1", 0)
        address = f"127.0.0.1:{epmd.port}"
        async with (
            ta.open_node("alpha", epmd=address, cookie="example") as alpha,
            ta.open_node("beta", epmd=address, cookie="example") as beta,
        ):
            await alpha.connect("beta")
            async with trio.open_nursery() as apps:
                apps.start_soon(main, alpha, rounds, 0.5)
                apps.start_soon(main, beta, rounds, 0.5)
        nursery.cancel_scope.cancel()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    trio.run(_demo, parser.parse_args().rounds)
