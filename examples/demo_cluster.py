"""The cluster demo that `make demo` runs: ``python examples/demo_cluster.py``.

An embedded EPMD daemon and three nodes in this one process, explained step
by step on the terminal: discovery, messages and calls between nodes, a
remote spawn, a globally registered service supervised across nodes, a
process group spread over the three nodes, and what happens when a node
leaves: monitors fire, the service moves to another node under the same
global name, the group shrinks. Ends by itself.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import trio

from trioactors import (
    Caller,
    ChildSpec,
    Context,
    GenServer,
    Node,
    NodeUp,
    Pid,
    open_node,
    serve_epmd,
)

# example-args: --pause 0

_COOKIE = "trioactors-demo-cookie"


class _Bank(GenServer):
    """A tiny account server: call ("deposit", n) or ("balance",)."""

    async def init(self) -> None:
        self.balance = 0

    async def handle_call(self, request: Any, caller: Caller) -> Any:
        if request[0] == "deposit":
            self.balance += request[1]
        return self.balance


async def _greeter(ctx: Context) -> None:
    while True:
        sender, text = await ctx.receive()
        ctx.send(sender, f"{ctx.system.node_name} got {text!r} and says hello back")


async def _worker(ctx: Context, job: str) -> None:
    await ctx.receive()  # runs until told (or until its node stops)
    del job


def _service_class(node: Node) -> type[GenServer]:
    """The "clock" service as started on `node`: it takes the global name
    "clock" in `init`, as an OTP server started with {global, Name} does."""

    class _Clock(GenServer):
        async def init(self) -> None:
            # The previous holder's name is freed when its end reaches this
            # node; until then the name is taken, so try again briefly.
            with trio.fail_after(10):
                while not await node.register_global("clock", self.pid):  # noqa: ASYNC110
                    await trio.sleep(0.05)

        async def handle_call(self, request: Any, caller: Caller) -> Any:
            return f"the time, from {node.name}"

    return _Clock


async def _group_worker(ctx: Context, node: Node) -> None:
    node.join_group("workers", ctx.pid)
    await ctx.receive()


async def _until(check: Callable[[], bool]) -> None:
    # Cluster state converges through messages between nodes; the demo waits
    # for it rather than guessing how long it takes.
    with trio.fail_after(10):
        while not check():  # noqa: ASYNC110 - no event exists for "the cluster agrees"
            await trio.sleep(0.02)


def _where(pid: Pid | None) -> str:
    return "nowhere" if pid is None else f"{pid} on {pid.node}"


def _say(text: str = "") -> None:
    print(text, flush=True)


@contextmanager
def _quiet_logs() -> Iterator[None]:
    # The demo explains itself; routine INFO lines would only interleave.
    logger = logging.getLogger("trioactors")
    old = logger.level
    if logger.getEffectiveLevel() == logging.INFO:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(old)


async def run_distributed_demo(pause: float = 0.4) -> None:
    """Run the three-node demo, printing what happens and why."""
    with _quiet_logs():
        await _demo(pause)


async def _demo(pause: float) -> None:
    async def step(title: str) -> None:
        await trio.sleep(pause)
        _say()
        _say(f"== {title}")

    _say("trioactors distributed demo: Erlang-style nodes on Trio, all in this process.")
    async with trio.open_nursery() as nursery:
        epmd = await nursery.start(serve_epmd, "127.0.0.1", 0)
        where = f"127.0.0.1:{epmd.port}"
        _say(f"An EPMD discovery daemon listens on {where} (the real one uses port 4369).")

        await step("1. three nodes start and register with EPMD")
        async with (
            open_node("london", epmd=where, cookie=_COOKIE, discovery_interval=0.2) as london,
            london.actor() as me,
        ):
            london.monitor_nodes(me.pid)  # NodeUp / NodeDown for every peer, to me
            async with open_node(
                "paris", epmd=where, cookie=_COOKIE, discovery_interval=0.2
            ) as paris:
                paris.spawn(_greeter, name="greeter")
                await paris.start_server(_Bank, name="bank")
                async with open_node(
                    "tokyo", epmd=where, cookie=_COOKIE, discovery_interval=0.2
                ) as tokyo:
                    tokyo.spawn(_greeter, name="greeter")
                    tokyo.register_spawnable("worker", _worker)
                    for node in (london, paris, tokyo):
                        _say(f"   {node.name:<7} listening on port {node.address[1]}")
                    _say("   A pid names its node, e.g. tokyo's greeter is "
                         f"{tokyo.whereis('greeter')}: it works from any node.")  # fmt: skip

                    await step("2. discovery: nodes find each other through EPMD")
                    _say("   Every node polls EPMD and connects to the nodes it does not know yet")
                    _say("   (handshake: names, ids, and a mutual HMAC challenge on the cookie,")
                    _say("   which itself never crosses the wire). london is told of each:")
                    for _ in range(2):
                        up = await me.receive(timeout=10, match=lambda m: isinstance(m, NodeUp))
                        _say(f"   london <- {up}")
                    _say(f"   london is connected to {london.nodes()}")

                    await step("3. a message to a named actor on another node")
                    me.send(("greeter", "paris"), (me.pid, "bonjour"))
                    _say("   london: send(('greeter', 'paris'), (my_pid, 'bonjour'))")
                    _say(f"   london <- {await me.receive(timeout=5)!r}")
                    _say("   The reply went to london's pid, which travelled inside the message.")

                    await step("4. a GenServer call across nodes")
                    for amount in (10, 32):
                        total = await me.call(("bank", "paris"), ("deposit", amount))
                        _say(f"   call(('bank', 'paris'), ('deposit', {amount})) -> {total}")

                    await step("5. a remote spawn, and monitors on what lives on tokyo")
                    worker = await london.spawn_on("tokyo", "worker", "render")
                    _say(f"   spawn_on('tokyo', 'worker') -> {worker}  (node id {worker.node})")
                    _say("   Only names tokyo registered with register_spawnable can be started:")
                    _say("   no code travels on the wire.")
                    ref = me.monitor(worker)
                    me.monitor_node("tokyo")
                    greeter_ref = me.monitor(("greeter", "tokyo"))
                    _say("   london monitors the worker, tokyo's greeter and tokyo itself.")

                    await step("6. a global service, supervised across nodes")
                    for node in (london, paris, tokyo):
                        node.register_spawnable("clock", _service_class(node))
                    sup = await london.start_supervisor(
                        [ChildSpec("clock", "clock", nodes=["tokyo", "paris"])], name="clock_sup"
                    )
                    _say("   london supervises ChildSpec('clock', 'clock',")
                    _say("   nodes=['tokyo', 'paris']):")
                    _say("   the child runs on the first candidate node that is up, and takes the")
                    _say("   cluster-wide name 'clock' when it starts.")
                    await _until(lambda: paris.whereis_global("clock") is not None)
                    clock = london.whereis_global("clock")
                    assert clock is not None
                    _say(f"   whereis_global('clock') on london -> {_where(clock)}")
                    _say(f"   call(clock, 'now') -> {await me.call(clock, 'now')!r}")

                    await step("7. a process group spread over three nodes")
                    for node in (london, paris, tokyo):
                        for _ in range(2):
                            node.spawn(_group_worker, node)
                    await _until(lambda: len(london.group_members("workers")) == 6)
                    members = london.group_members("workers")
                    _say("   Two workers on each node join_group('workers');")
                    _say("   every node sees them all:")
                    _say(f"   {sorted(p.node for p in members)}")

                    await step("8. tokyo leaves the cluster")
                    _say("   Leaving its `async with` block shuts tokyo down gracefully:")
                    _say("   actors end with 'shutdown', peers are told, EPMD forgets it.")
                seen = []
                for _ in range(4):
                    msg = await me.receive(timeout=5)
                    _say(f"   london <- {msg}")
                    seen.append(getattr(msg, "ref", msg))
                _say("   Monitors fired for both tokyo actors (reason 'shutdown': they were")
                _say("   stopped), then the node monitors (reason 'disconnect'). Had tokyo")
                _say("   crashed or its cable been cut, they would say 'noconnection', found")
                _say("   by the socket closing or by ticks going silent.")
                assert ref in seen and greeter_ref in seen
                _say(f"   london is now connected to {london.nodes()}")
                names = sorted(info.name for info in await london.list_nodes())
                _say(f"   EPMD now lists {names}")

                await step("9. the service moved, the group shrank")
                await _until(
                    lambda: (
                        (pid := london.whereis_global("clock")) is not None
                        and pid.node == paris.name
                    )
                )
                clock = london.whereis_global("clock")
                assert clock is not None
                _say("   The supervisor saw its child end and started it again on the next")
                _say("   candidate, paris, which took the global name over:")
                _say(f"   whereis_global('clock') on london -> {_where(clock)}")
                _say(f"   call(clock, 'now') -> {await me.call(clock, 'now')!r}")
                await _until(lambda: len(london.group_members("workers")) == 4)
                members = london.group_members("workers")
                _say(f"   group 'workers' now: {sorted(p.node for p in members)}")

                await step("10. the rest of the cluster carries on")
                total = await me.call(("bank", "paris"), ("balance",))
                _say(f"   call(('bank', 'paris'), ('balance',)) -> {total}")
                london.exit(sup, "shutdown")
                reason = await london.join(sup)
                _say(f"   london stops its supervisor ({reason!r}); the clock on paris ends")
                await _until(lambda: london.whereis_global("clock") is None)
                _say("   with it, and its global name is gone everywhere:")
                _say(f"   whereis_global('clock') -> {london.whereis_global('clock')}")
        _say()
        _say("Done: every node left, every task ended. See examples/distributed_*.py,")
        _say("and `trioactors node NAME --help` to run nodes as separate processes.")
        nursery.cancel_scope.cancel()


def main() -> None:
    """Run the demo; ``--pause`` sets the seconds between steps."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--pause",
        type=float,
        default=0.4,
        metavar="SECONDS",
        help="pause between steps so the story can be followed (default: %(default)s)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)-7s %(name)s: %(message)s")
    trio.run(run_distributed_demo, args.pause)


if __name__ == "__main__":
    main()
