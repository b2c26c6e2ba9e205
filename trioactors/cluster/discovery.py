"""A node's discovery task: EPMD registration, node list polling, auto-connect.

The `EpmdClient` keeps the registration alive and re-registers after a daemon
restart by itself; this task adds what a node needs on top: it polls the node
list (default every 5 s), teaches the kernel the names it sees (so pids of
those nodes can be routed) and starts a connection to every trioactors node
it is not connected to yet, making the cluster a full mesh like Erlang's.

Names, Erlang's way and the central way: a short-named node (``alpha``)
registers ``alpha`` with the daemon it is given, one daemon for the cluster. A
full-named node (``alpha@h2``) registers its short name ``alpha`` with the
EPMD of its own host, as an Erlang node does (a daemon on a loopback address,
or on the node's host or advertised address, is its own host's), and its full
name with a daemon elsewhere (a central one); either way its entry carries the
full name (``node`` metadata, or the ALIVE2 extra field). `lookup` of
``alpha@h2`` asks the node's own daemon first, then the EPMD of host h2 at
the same EPMD port (Erlang clusters use one ``ERL_EPMD_PORT`` on every host),
with PORT_PLEASE2 on a real epmd; so ``alpha@h1`` and ``alpha@h2`` may both run.

The daemon may be a trioactors EPMD or Erlang's own ``epmd``; either way only
trioactors nodes are connected to (Erlang nodes are skipped with a debug log:
they do not speak this distribution protocol). A node whose daemon does not
answer at start-up keeps running and registers as soon as it does, retrying
with a growing delay (one warning, then debug lines).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Final

import trio

from ..epmd import EpmdClient, NodeInfo
from ..epmd.resolve import find_node
from ..errors import ConnectionFailed, EpmdError, EpmdUnavailable, NameTaken
from ..wire.epmd_native import KIND_TRIOACTORS
from ..wire.handshake import PROTOCOL_VERSION
from ..wire.names import is_loopback_host, parse_node
from .kernel import NetKernel

__all__ = ["DEFAULT_POLL_INTERVAL", "Discovery", "registered_name"]

log = logging.getLogger("trioactors.cluster")

DEFAULT_POLL_INTERVAL: Final = 5.0
#: The first delay before registering again with a daemon that did not answer.
_FIRST_RETRY: Final = 0.1


def registered_name(node: str, epmd_host: str, advertise_host: str) -> str:
    """The name node `node` registers with the EPMD at `epmd_host` (see the
    module docstring): the short name of a full-named node when that EPMD is
    on the node's own host, else `node` itself."""
    address = parse_node(node)
    if address.alive is None or address.host is None or address.port is not None:
        return node
    here = {address.host.lower(), advertise_host.lower()}
    if is_loopback_host(epmd_host) or epmd_host.lower() in here:
        return address.alive
    return node


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
        self._skipped: set[str] = set()  # Erlang nodes already logged
        #: Set once the node is registered (at once, or after EPMD came back).
        self.registered = trio.Event()
        self.info: NodeInfo | None = None

    @property
    def address(self) -> str:
        """host:port of the EPMD daemon."""
        return f"{self.host}:{self.port}"

    async def run(
        self,
        advertise_host: str,
        port: int,
        *,
        task_status: trio.TaskStatus[NodeInfo | None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Register as `kernel.name` at advertise_host:port (raises `NameTaken`
        if a live node holds the name), then poll until `stop()`.

        When no daemon answers, `started` comes with None and registering is
        retried (with backoff up to the keep-alive interval) until one does."""
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
        task_status: trio.TaskStatus[NodeInfo | None],
    ) -> None:
        name = registered_name(kernel.name, self.host, advertise_host)
        metadata = {"creation": str(kernel.creation)}
        if name != kernel.name:
            metadata["node"] = kernel.name  # how peers tell alpha@h1 from alpha@h2
        async with self._client as client:

            async def register() -> NodeInfo:
                return await client.register(
                    name,
                    advertise_host,
                    port,
                    metadata=metadata,
                    protocol_version=PROTOCOL_VERSION,
                )

            try:
                self.info = await register()
            except EpmdUnavailable as exc:
                log.warning(
                    "%s; node %s runs unregistered and registers once it answers",
                    exc,
                    kernel.name,
                )
                task_status.started(None)
                if not await self._register_later(register):
                    return
                await self.poll()  # discovery resumes at once
            else:
                task_status.started(self.info)
            self.registered.set()
            while not self._stopping:
                # Only the pause is cancelled by stop(), never a request in
                # flight: the client then unregisters over a sound connection.
                with trio.move_on_after(self.poll_interval) as self._pause:
                    await trio.sleep_forever()
                if not self._stopping:
                    await self.poll()

    async def _register_later(self, register: Callable[[], Awaitable[NodeInfo]]) -> bool:
        """Retry `register` until it works (True) or `stop()` (False)."""
        delay = _FIRST_RETRY
        cap = max(self._client.keepalive_interval, _FIRST_RETRY)
        while not self._stopping:
            with trio.move_on_after(delay) as self._pause:
                await trio.sleep_forever()
            if self._stopping:
                break
            try:
                self.info = await register()
            except NameTaken as exc:
                # The daemon is back, and someone has our name: keep trying,
                # it may be a predecessor the daemon has not seen die yet.
                delay = cap
                log.warning(
                    "cannot register %s with EPMD: %s; retrying in %g s",
                    self.kernel.name,
                    exc,
                    delay,
                )
            except EpmdError as exc:
                delay = min(delay * 2, cap)
                log.debug("EPMD registration retry: %s; next try in %g s", exc, delay)
            else:
                return True
        return False

    async def poll(self) -> None:
        """One discovery round: learn every node's name and connect to new ones."""
        try:
            nodes = await self.list_nodes()
        except EpmdError as exc:
            log.debug("discovery round failed: %s", exc)
            return
        names = []
        for n in nodes:
            if n.kind == KIND_TRIOACTORS:
                names.append(n.node_name)
            elif n.name not in self._skipped:
                self._skipped.add(n.name)
                log.debug(
                    "discovery skips %s: an Erlang node (port %d), it does not speak "
                    "trioactors distribution",
                    n.name,
                    n.port,
                )
        log.debug("discovery round at EPMD %s: %d trioactors node(s)", self.address, len(names))
        self.kernel.peers.learn(names)
        for name in names:
            if self.kernel.should_autoconnect(name):
                log.debug("discovery: connecting to %s", name)
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
        """The address of trioactors node `name`, or None.

        A full name ``alpha@h2`` not known to this node's daemon is asked of
        the EPMD of host h2 (same EPMD port; see `trioactors.epmd.resolve`).
        Raises `ConnectionFailed` when `name` is an Erlang node, `EpmdError`
        when no daemon can tell."""
        found = await find_node(name, self._query)
        if found is None:
            return None
        if found.info.kind != KIND_TRIOACTORS:
            log.debug("connect to %s: it is an Erlang node, skipped", name)
            raise ConnectionFailed(
                f"node {name!r} is an Erlang node (registered with EPMD at {found.epmd}); "
                "trioactors nodes connect to trioactors nodes only"
            )
        log.debug("connect to %s: EPMD at %s says %s:%d", name, found.epmd, *found.address)
        return found.address

    @property
    def query(self) -> EpmdClient:
        """The client for lookups (never the registration's connection)."""
        return self._query

    async def list_nodes(self) -> list[NodeInfo]:
        """Everything the daemon knows."""
        return await self._query.list_nodes()

    async def list_names(self) -> list[str]:
        """Names of the trioactors nodes the daemon knows."""
        return [n.node_name for n in await self.list_nodes() if n.kind == KIND_TRIOACTORS]
