"""A node's discovery task: EPMD registration, node list polling, auto-connect.

The `EpmdClient` keeps the registration alive and re-registers after a daemon
restart by itself; this task adds what a node needs on top: it polls the node
list (default every 5 s), teaches the kernel the names it sees (so pids of
those nodes can be routed) and starts a connection to every trioactors node
it is not connected to yet, making the cluster a full mesh like Erlang's.
"""

from __future__ import annotations

import logging
from typing import Final

import trio

from ..epmd import EpmdClient, NodeInfo
from ..errors import EpmdError
from ..wire.epmd_native import KIND_TRIOACTORS
from .kernel import NetKernel

__all__ = ["DEFAULT_POLL_INTERVAL", "Discovery"]

log = logging.getLogger("trioactors.cluster")

DEFAULT_POLL_INTERVAL: Final = 5.0


class Discovery:
    """Registers `kernel`'s node with the EPMD daemon at host:port and polls it."""

    def __init__(
        self,
        kernel: NetKernel,
        host: str,
        port: int,
        *,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        keepalive_interval: float = 20.0,
        timeout: float = 5.0,
    ) -> None:
        self.kernel = kernel
        self.host = host
        self.port = port
        self.poll_interval = poll_interval
        self._client = EpmdClient(
            host, port, keepalive_interval=keepalive_interval, timeout=timeout
        )
        # Queries get their own client: a lookup cut short by a connect timeout
        # must never disturb (or queue behind) the registration's keep-alives.
        self._query = EpmdClient(host, port, timeout=timeout)
        self._pause = trio.CancelScope()
        self._stopping = False
        self._stopped = trio.Event()

    @property
    def address(self) -> str:
        """host:port of the EPMD daemon."""
        return f"{self.host}:{self.port}"

    async def run(
        self,
        advertise_host: str,
        port: int,
        *,
        task_status: trio.TaskStatus[NodeInfo] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Register as `kernel.name` at advertise_host:port (raises `NameTaken`
        if a live node holds the name), then poll until `stop()`."""
        kernel = self.kernel
        try:
            await self._run(kernel, advertise_host, port, task_status)
        finally:
            self._stopped.set()

    async def _run(
        self,
        kernel: NetKernel,
        advertise_host: str,
        port: int,
        task_status: trio.TaskStatus[NodeInfo],
    ) -> None:
        async with self._client as client:
            metadata = {"creation": str(kernel.creation)}
            alive, _, _ = kernel.name.partition("@")
            if alive != kernel.name:
                # A full name registers its name part, as erl does; peers
                # learn the full name from here.
                metadata["node"] = kernel.name
            info = await client.register(alive, advertise_host, port, metadata=metadata)
            task_status.started(info)
            while not self._stopping:
                # Only the pause is cancelled by stop(), never a request in
                # flight: the client then unregisters over a sound connection.
                with trio.move_on_after(self.poll_interval) as self._pause:
                    await trio.sleep_forever()
                if not self._stopping:
                    await self.poll()

    async def poll(self) -> None:
        """One discovery round: learn every node's name and connect to new ones."""
        try:
            nodes = await self.list_nodes()
        except EpmdError as exc:
            log.debug("discovery round failed: %s", exc)
            return
        names = [n.metadata.get("node", n.name) for n in nodes if n.kind == KIND_TRIOACTORS]
        self.kernel.peers.learn(names)
        for name in names:
            if self.kernel.should_autoconnect(name):
                self.kernel.connect_soon(name)

    async def stop(self) -> None:
        """Unregister from EPMD (leaving the client unregisters) and stop polling."""
        self._stopping = True
        self._pause.cancel()
        with trio.CancelScope(shield=True), trio.move_on_after(self._client.timeout + 1):
            await self._stopped.wait()

    async def aclose(self) -> None:
        """Close the query connection (once the node no longer dials anyone)."""
        await self._query.aclose()

    async def lookup(self, name: str) -> tuple[str, int] | None:
        """The address of trioactors node `name`, or None."""
        info = await self._query.lookup(name.partition("@")[0])
        if info is None or info.kind != KIND_TRIOACTORS:
            return None
        return info.host, info.port

    async def lookup_info(self, alive: str) -> NodeInfo | None:
        """Whatever node (trioactors or Erlang) is registered as `alive`."""
        return await self._query.lookup(alive)

    async def list_nodes(self) -> list[NodeInfo]:
        """Everything the daemon knows."""
        return await self._query.list_nodes()

    async def list_names(self) -> list[str]:
        """Names of the trioactors nodes the daemon knows."""
        return [
            n.metadata.get("node", n.name)
            for n in await self.list_nodes()
            if n.kind == KIND_TRIOACTORS
        ]
