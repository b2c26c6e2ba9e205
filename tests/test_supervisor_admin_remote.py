"""Supervisor admin requests on a node and across nodes: the requests and
replies are plain data (OTP's tuples), so a supervisor on another node is
managed the same way."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

import trioactors as ta

COOKIE = "admin-remote-cookie"


class Conn(ta.GenServer):
    async def init(self, *args: Any) -> None:
        self.args = args

    async def handle_call(self, request: Any, caller: ta.Caller) -> Any:
        return self.args


@asynccontextmanager
async def pair() -> AsyncIterator[tuple[ta.Node, ta.Node]]:
    kw: dict[str, Any] = {"cookie": COOKIE, "epmd": None, "listen": "127.0.0.1:0"}
    async with ta.open_node("alpha", **kw) as a, ta.open_node("beta", **kw) as b:
        await a.connect(f"{b.name}@{b.address[0]}:{b.address[1]}")
        yield a, b


async def test_node_offers_the_admin_api_and_serves_remote_requests() -> None:
    async with pair() as (a, b):
        sup = await b.start_supervisor([ta.ChildSpec("c", Conn, args=("static",))], name="sup")
        pool = await b.start_dynamic_supervisor(ta.ChildSpec("conn", Conn), name="pool")
        assert b.count_children(sup) == ta.ChildCounts(1, 1, 0, 1)
        remote_sup, remote_pool = ("sup", "beta"), ("pool", "beta")

        # A dynamic supervisor on beta, driven from alpha.
        pid = await a.start_child(remote_pool, "x", 2)
        assert isinstance(pid, ta.Pid) and pid.node == "beta"
        assert await a.call(pid, "args") == ("x", 2)
        assert b.which_children(pool) == [(None, pid, "permanent")]
        await a.terminate_child(remote_pool, pid)
        assert b.which_children(pool) == []

        # A static one: terminate, restart, errors and counts over the wire.
        await a.terminate_child(remote_sup, "c")
        assert b.which_children(sup) == [("c", None, "permanent")]
        with pytest.raises(ta.ChildNotFound):
            await a.restart_child(remote_sup, "zz")
        new = await a.restart_child(remote_sup, "c")
        assert isinstance(new, ta.Pid) and b.is_alive(new)
        with pytest.raises(ta.ChildRunning):
            await a.delete_child(remote_sup, "c")
        assert await a.call(remote_sup, "count_children") == ta.ChildCounts(1, 1, 0, 1)
        async with a.actor() as me:
            await me.terminate_child(remote_sup, "c")
            await me.delete_child(remote_sup, "c")
        assert b.which_children(sup) == []
