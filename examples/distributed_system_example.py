"""A tour of the distribution API with two nodes in one process.

    python examples/distributed_system_example.py

An embedded EPMD daemon and two nodes, "shop" and "warehouse", show:
remote send by `(name, node)` with a registered `@ta.message` class, a
GenServer call across nodes, a remote spawn (only of what the other node
registered with `register_spawnable`), a pid passed inside a message and
replied to, a monitor of a remote actor, and what an actor sees when the
other node goes away: `Down(..., "noconnection")` and `NodeDown`.
"""

from __future__ import annotations

from typing import Any

import attrs
import trio

import trioactors as ta

COOKIE = "example-tour-cookie"


@ta.message("example.Order")
@attrs.frozen
class Order:
    """A message class: registered by name, so it can cross nodes."""

    item: str
    qty: int
    reply_to: ta.Pid


class Stock(ta.GenServer):
    """The warehouse's stock: call ("take", item, qty) -> remaining or an error."""

    async def init(self, items: dict[str, int]) -> None:
        self.items = dict(items)

    async def handle_call(self, request: Any, caller: ta.Caller) -> Any:
        op, item, qty = request
        if op == "take":
            if self.items.get(item, 0) < qty:
                return ("error", f"only {self.items.get(item, 0)} {item} left")
            self.items[item] -= qty
            return ("ok", self.items[item])
        return ("error", f"unknown request {op!r}")


async def packer(ctx: ta.Context) -> None:
    """Packs orders sent to it; answers the pid inside the order."""
    while True:
        order = await ctx.receive()
        reply = await ctx.call("stock", ("take", order.item, order.qty))
        ctx.send(order.reply_to, ("packed", order.item, reply, ctx.pid))


async def auditor(ctx: ta.Context, label: str) -> None:
    """A spawnable: started remotely, it reports where it runs."""
    sender = await ctx.receive()
    ctx.send(sender, ("audit", label, ctx.system.node_name))


async def main() -> None:
    async with trio.open_nursery() as nursery:
        epmd = await nursery.start(ta.serve_epmd, "127.0.0.1", 0)
        address = f"127.0.0.1:{epmd.port}"
        async with (
            ta.open_node("shop", epmd=address, cookie=COOKIE) as shop,
            shop.actor() as me,
        ):
            async with ta.open_node("warehouse", epmd=address, cookie=COOKIE) as warehouse:
                await warehouse.start_server(Stock, {"tea": 5, "cups": 2}, name="stock")
                warehouse.spawn(packer, name="packer")
                warehouse.register_spawnable("auditor", auditor)
                print(f"{shop!r} and {warehouse!r} share EPMD at {address}")

                # 1. Send by (name, node): the first send finds the node through EPMD.
                me.send(("packer", "warehouse"), Order("tea", 2, me.pid))
                _, item, reply, packer_pid = await me.receive(timeout=5)
                print(f"1. packed {item}: {reply}, by {packer_pid} on node {packer_pid.node}")

                # 2. A GenServer call across nodes.
                print("2. call:", await me.call(("stock", "warehouse"), ("take", "cups", 5)))

                # 3. Remote spawn of a registered spawnable, then talk to the new pid.
                pid = await shop.spawn_on("warehouse", "auditor", "night shift")
                me.send(pid, me.pid)
                print("3. remote spawn answered:", await me.receive(timeout=5))
                try:
                    await shop.spawn_on("warehouse", "rm -rf")
                except ta.SpawnFailed as exc:
                    print("   unknown spawnable:", exc)

                # 4. Monitor the remote packer and the node, then stop the node.
                ref = me.monitor(packer_pid)
                me.monitor_node("warehouse")
                print(f"4. monitoring {packer_pid} ({ref}); stopping the warehouse node")
            # The warehouse left gracefully: its actors ended with "shutdown"
            # (the Down crossed the wire before the goodbye), then the node went.
            # A crashed host would show "noconnection" and "connection_closed".
            print("   ", await me.receive(timeout=5))
            print("   ", await me.receive(timeout=5))
            print(f"   shop is now connected to {shop.nodes()}")
        print("   (the warehouse node has shut down)")
        nursery.cancel_scope.cancel()


if __name__ == "__main__":
    trio.run(main)
