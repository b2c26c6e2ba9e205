"""A cluster of real `trioactors node` processes loses a node to SIGKILL: the
global name it held is freed everywhere, the remote child supervised from
another node runs again on a surviving node, and callers using the global
name reach the new one."""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import helpers
import pytest
import trio
import trio.lowlevel
from helpers import eventually

import trioactors as ta

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
COOKIE = "cluster-multiprocess-test"
APP = "tests.remote_sup_app"


@asynccontextmanager
async def node_process(
    name: str, epmd: str, app: str, log: Path, **env: str
) -> AsyncIterator[trio.Process]:
    """`trioactors node NAME --app tests.remote_sup_app:APP`, up once it prints
    its listening line; its log goes to `log`."""
    with log.open("wb") as stderr:
        args = ("--epmd", epmd, "--log-level", "info")
        async with helpers.node_process(
            name, *args, app=f"{APP}:{app}", cookie=COOKIE, stderr=stderr, env=env
        ) as node:
            yield node.proc


async def test_sigkilled_node_name_and_supervised_child_move(tmp_path: Path) -> None:
    logs = {name: tmp_path / f"{name}.log" for name in ("alpha", "beta", "gamma")}
    try:
        async with trio.open_nursery() as nursery:
            server = await nursery.start(ta.serve_epmd, "127.0.0.1", 0)
            epmd = f"127.0.0.1:{server.port}"
            async with (
                node_process("beta", epmd, "main", logs["beta"]) as beta,
                node_process("gamma", epmd, "main", logs["gamma"], TRIOACTORS_TEST_PEERS="beta"),
                node_process(
                    "alpha",
                    epmd,
                    "supervising",
                    logs["alpha"],
                    TRIOACTORS_TEST_PEERS="beta,gamma",
                    TRIOACTORS_TEST_CANDIDATES="beta,gamma",
                ),
                ta.open_node("probe", epmd=epmd, cookie=COOKIE) as probe,
            ):
                await _scenario(probe, beta)
            nursery.cancel_scope.cancel()
    except BaseException:
        for name, path in logs.items():
            print(f"----- {name} -----\n{path.read_text() if path.exists() else ''}")
        raise


async def _scenario(probe: ta.Node, beta: trio.Process) -> None:
    for name in ("alpha", "beta", "gamma"):
        await probe.connect(name)

    async def ask(node: str, request: str) -> Any:
        return await probe.call(("info", node), request, timeout=10)

    async def svc_child() -> ta.Pid | None:
        children = await probe.call(("svc_sup", "alpha"), "which_children", timeout=10)
        pid: ta.Pid | None = children[0][1]
        return pid

    async def agreed_on_beta() -> bool:
        # alpha's supervisor has the child, and every node knows its name.
        child = await svc_child()
        views = [probe.whereis_global("svc")] + [
            await ask(n, "whereis") for n in ("alpha", "gamma")
        ]
        return child is not None and all(v == child for v in views)

    await eventually(agreed_on_beta, "the service on beta, known everywhere")
    old = probe.whereis_global("svc")
    assert old is not None and probe.node_of(old) == "beta"
    assert await probe.call(old, "where", timeout=10) == "beta"

    beta.send_signal(signal.SIGKILL)

    async def moved() -> bool:
        child = await svc_child()
        if child is None or child == old:
            return False
        views = [probe.whereis_global("svc")] + [
            await ask(n, "whereis") for n in ("alpha", "gamma")
        ]
        return all(v == child for v in views)

    await eventually(moved, "the service restarted on gamma under its global name")
    new = probe.whereis_global("svc")
    assert new is not None and new != old and probe.node_of(new) == "gamma"
    # The old pid's registration is gone everywhere; the name reaches the new one.
    for node in ("alpha", "gamma"):
        assert await ask(node, "whereis") == new
    target = probe.whereis_global("svc")
    assert target is not None
    assert await probe.call(target, "where", timeout=10) == "gamma"
    assert "beta" not in probe.nodes()
