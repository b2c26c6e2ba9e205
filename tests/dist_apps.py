"""Apps for multi-process tests: `trioactors node NAME --app tests/dist_apps.py:FUNCTION`."""

from __future__ import annotations

from typing import Any

import trioactors as ta


class Counter(ta.GenServer):
    """Adds requests to a running total."""

    async def init(self, start: int = 0) -> None:
        self.n = start

    async def handle_call(self, request: Any, caller: ta.Caller) -> Any:
        if request == "never":
            return ta.NO_REPLY
        self.n += request
        return self.n


async def echo(ctx: ta.Context) -> None:
    """Answers ``(sender, payload)`` with ``("echo", payload)``."""
    while True:
        sender, payload = await ctx.receive()
        ctx.send(sender, ("echo", payload))


async def sink(ctx: ta.Context) -> None:
    """Counts ``("seq", sender, i)`` messages, checking each sender's order;
    answers ``("report", reply_to)`` with ``("report", total, out_of_order)``."""
    last: dict[Any, int] = {}
    total = 0
    disorder = 0
    while True:
        msg = await ctx.receive()
        if msg[0] == "seq":
            _, sender, i = msg
            if i != last.get(sender, -1) + 1:
                disorder += 1
            last[sender] = i
            total += 1
        elif msg[0] == "report":
            ctx.send(msg[1], ("report", total, disorder))


async def idle(ctx: ta.Context) -> None:
    """Does nothing until told to exit."""
    await ctx.receive(match=lambda m: False)


async def services(node: ta.Node) -> None:
    """Registered actors and spawnables the tests talk to."""
    node.spawn(echo, name="echo")
    node.spawn(sink, name="sink")
    await node.start_server(Counter, 0, name="counter")
    node.register_spawnable("idle", idle)
    node.register_spawnable("echo", echo)
    node.register_spawnable("counter", Counter)
