"""Plain actors: spawn, send, selective receive, links, monitors and timers.

    python examples/local_actors.py

A `counter` actor keeps a number and answers `("get", reply_to)` messages.
The main task acts as an actor itself (`system.actor()`), uses selective
receive to pick the answer it waits for, watches a worker with a monitor,
traps the exit of a linked worker that crashes, and uses a timer.
"""

from __future__ import annotations

import logging
from typing import Any

import trio

import trioactors as ta


async def counter(ctx: ta.Context, start: int) -> None:
    n = start
    while True:
        match await ctx.receive():
            case ("add", k):
                n += k
            case ("get", reply_to):
                ctx.send(reply_to, ("count", n))
            case "stop":
                return


async def fragile(ctx: ta.Context) -> None:
    await ctx.receive()
    raise RuntimeError("fragile worker broke")


async def main() -> None:
    async with ta.open_actor_system() as system:
        pid = system.spawn(counter, 40, name="counter")
        print(f"spawned counter {pid}, registered as {system.registered()}")

        async with system.actor(trap_exits=True) as me:
            # Messages that arrive first but do not match stay queued, in order.
            me.send(me.pid, "noise")
            system.send("counter", ("add", 2))
            system.send("counter", ("get", me.pid))
            reply: Any = await me.receive(match=lambda m: isinstance(m, tuple))
            print(f"selective receive got {reply}; still queued: {me.receive_nowait()!r}")

            ref = me.monitor(pid)
            system.send(pid, "stop")
            print(f"monitor: {await me.receive()}")

            worker = me.spawn(fragile, link=True)
            me.send(worker, "go")
            exit_msg = await me.receive()
            print(f"trapped exit of linked worker: {exit_msg.pid} -> {exit_msg.reason}")

            timer = system.send_after(0.1, me.pid, "tick")
            cancelled = system.send_after(0.1, me.pid, "never")
            print(f"cancel_timer -> {system.cancel_timer(cancelled)}")
            print(f"timer fired: {await me.receive(timeout=1.0)!r} ({timer})")
            try:
                await me.receive(timeout=0.2)
            except trio.TooSlowError:
                print("nothing else arrived within 0.2 s")
            me.demonitor(ref)


if __name__ == "__main__":
    logging.basicConfig(level=logging.CRITICAL)  # the crash is narrated above
    trio.run(main)
