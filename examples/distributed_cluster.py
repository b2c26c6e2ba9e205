"""Several nodes discover each other through EPMD and message across the cluster.

    python examples/distributed_cluster.py              # 3 nodes, embedded EPMD
    python examples/distributed_cluster.py --nodes 5

Everything runs in this one process (an embedded EPMD daemon on a free port
and N nodes on loopback) so it ends by itself; across machines it is the same
code with `trioactors epmd` running somewhere and one node per process:

    trioactors epmd &
    TRIOACTORS_COOKIE=secret trioactors node n1 --app mymodule:main

Every node runs a `greeter` registered under the same name. Discovery
connects the nodes to each other (a full mesh, like Erlang) without any
`connect` call; then each node greets every other node's `greeter` by
`(name, node)` and collects the answers, whose pids show where they came from.
"""

# example-args: --nodes 3

from __future__ import annotations

import argparse
from contextlib import AsyncExitStack

import trio

import trioactors as ta

COOKIE = "example-cluster-cookie"


async def greeter(ctx: ta.Context) -> None:
    """Answers ("hello", from_pid, from_node) with ("hi", node_name, own pid)."""
    node_name = ctx.system.node_name
    while True:
        tag, sender, _origin = await ctx.receive()
        if tag == "hello":
            ctx.send(sender, ("hi", node_name, ctx.pid))


async def main(n_nodes: int) -> None:
    async with trio.open_nursery() as nursery:
        epmd = await nursery.start(ta.serve_epmd, "127.0.0.1", 0)
        address = f"127.0.0.1:{epmd.port}"
        print(f"EPMD listening on {address}")
        async with AsyncExitStack() as stack:
            nodes: list[ta.Node] = []
            for i in range(1, n_nodes + 1):
                node = await stack.enter_async_context(
                    ta.open_node(f"n{i}", epmd=address, cookie=COOKIE, discovery_interval=0.2)
                )
                node.spawn(greeter, name="greeter")
                nodes.append(node)
                print(f"node {node.name} (id {node.node_id}) up on {node.address[1]}")

            # Discovery makes the mesh: wait until every node sees every other.
            first = nodes[0]
            async with first.actor() as watcher:
                first.monitor_nodes(watcher.pid)
                while len(first.nodes()) < n_nodes - 1:
                    up = await watcher.receive(timeout=10)
                    print(f"{first.name} sees {up}")
            print("EPMD knows:", ", ".join(sorted(i.name for i in await first.list_nodes())))

            for node in nodes:
                async with node.actor() as me:
                    others = [n.name for n in nodes if n is not node]
                    for other in others:
                        me.send(("greeter", other), ("hello", me.pid, node.name))
                    answers = sorted([await me.receive(timeout=10) for _ in others])
                    for _, who, pid in answers:
                        print(f"  {node.name} <- hi from {who} ({pid}, node id {pid.node})")
                    assert [who for _, who, _ in answers] == sorted(others)
                print(f"{node.name} is connected to {node.nodes()}")
        print("all nodes left the cluster")
        nursery.cancel_scope.cancel()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="a small trioactors cluster in one process")
    parser.add_argument("--nodes", type=int, default=3, help="how many nodes (default: 3)")
    trio.run(main, parser.parse_args().nodes)
