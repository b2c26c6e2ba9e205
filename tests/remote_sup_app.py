"""Apps for tests/test_cluster_multiprocess.py, run as
``trioactors node NAME --app tests.remote_sup_app:main`` (or ``:supervising``).

Every node offers the spawnable ``"service"``: a GenServer that registers
itself under the global name ``"svc"`` in its `init`, as an OTP server
started with ``{global, Name}`` does, so a restarted copy takes the name over
wherever it runs. ``supervising`` also runs a supervisor (registered as
``"svc_sup"``) that keeps one ``"service"`` running on the first candidate
node that is up.

Environment: ``TRIOACTORS_TEST_PEERS`` — comma-separated nodes to connect to
at start (through EPMD); ``TRIOACTORS_TEST_CANDIDATES`` — the supervisor's
candidate nodes, in order of preference.
"""

from __future__ import annotations

import os
from typing import Any

import trio

import trioactors as ta

#: The global name the service registers.
GLOBAL_NAME = "svc"
#: How long a starting service waits for the global name to be freed: the
#: previous holder may be on a node whose death this node has not yet seen.
REGISTER_PATIENCE = 10.0


def _env_list(var: str) -> list[str]:
    return [item for item in os.environ.get(var, "").split(",") if item]


def make_service(node: ta.Node) -> type[ta.GenServer]:
    """The ``"service"`` GenServer class of `node`."""

    class Service(ta.GenServer):
        async def init(self) -> None:
            with trio.fail_after(REGISTER_PATIENCE):
                while True:
                    if await node.register_global(GLOBAL_NAME, self.pid):
                        return
                    await trio.sleep(0.05)

        async def handle_call(self, request: Any, caller: ta.Caller) -> Any:
            if request == "where":
                return node.name
            raise ValueError(f"unknown request {request!r}")

    return Service


class Info(ta.GenServer):
    """What a node knows, for the test to ask from outside."""

    async def init(self, node: ta.Node) -> None:
        self.node = node

    async def handle_call(self, request: Any, caller: ta.Caller) -> Any:
        if request == "nodes":
            return self.node.nodes()
        if request == "whereis":
            return self.node.whereis_global(GLOBAL_NAME)
        raise ValueError(f"unknown request {request!r}")


async def main(node: ta.Node) -> None:
    """Offer the service and connect to ``$TRIOACTORS_TEST_PEERS``."""
    node.register_spawnable("service", make_service(node))
    await node.start_server(Info, node, name="info")
    for peer in _env_list("TRIOACTORS_TEST_PEERS"):
        await node.connect(peer)


async def supervising(node: ta.Node) -> None:
    """`main`, then supervise one service on ``$TRIOACTORS_TEST_CANDIDATES``."""
    await main(node)
    await node.start_supervisor(
        [ta.ChildSpec("svc", "service", nodes=_env_list("TRIOACTORS_TEST_CANDIDATES"))],
        name="svc_sup",
        max_restarts=5,
        max_seconds=30.0,
    )
