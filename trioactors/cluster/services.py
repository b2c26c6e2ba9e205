"""The seam between a node and its cluster services (global names, process groups).

The services never touch sockets: a node hands them a `ClusterTransport`
(who am I, who is connected, send a record to one peer or to all) and calls
`peer_up`, `peer_down` and `handle` as connections come and go and records
arrive. That keeps the replication protocols testable over an in-memory fake
and lets the node own every connection.

A node wires them up like this::

    services = ClusterServices(system, transport)
    await nursery.start(services.run)        # before any peer_up
    services.peer_up("beta")                 # a connection is established
    services.handle("beta", record)          # a record of `services.is_record`
    services.peer_down("beta")               # the connection is lost

The transport must keep records in order per peer, never block in `send_to`
or `broadcast` (drop records for a node that is gone), carry records through
the node's `MessageCodec` (they are `@message` classes holding pids), and call
`peer_up` for a connection before handing over any record that arrived on it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

import trio

from .globals import GLOBAL_RECORDS, GlobalRegistry, Resolver
from .groups import PG_RECORDS, ProcessGroups

if TYPE_CHECKING:
    from ..otp.system import ActorSystem

__all__ = ["ClusterServices", "ClusterTransport"]


class ClusterTransport(Protocol):
    """What a node offers its cluster services to talk to peer nodes."""

    @property
    def local_node(self) -> str:
        """This node's name."""

    def connected_nodes(self) -> list[str]:
        """Names of the peers with an established connection right now."""

    def send_to(self, node: str, record: object) -> None:
        """Queue `record` for `node`; never blocks, dropped if `node` is gone."""

    def broadcast(self, record: object) -> None:
        """`send_to` every connected node."""


class ClusterServices:
    """The global registry and process groups of one node, behind one entry point.

    `handle` dispatches a peer's record to the service it belongs to; the node
    calls it from its connection reader for every record `is_record` accepts.
    """

    def __init__(
        self, system: ActorSystem, transport: ClusterTransport, *, resolve: Resolver | None = None
    ) -> None:
        self.globals = GlobalRegistry(system, transport, resolve=resolve)
        self.groups = ProcessGroups(system, transport)

    @staticmethod
    def is_record(record: object) -> bool:
        """True for the wire records of the cluster services."""
        return isinstance(record, GLOBAL_RECORDS + PG_RECORDS)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run both services until cancelled (start it with `nursery.start`)."""
        async with trio.open_nursery() as nursery:
            await nursery.start(self.globals.run)
            await nursery.start(self.groups.run)
            task_status.started()

    def peer_up(self, node: str) -> None:
        """A connection to `node` is established: exchange state with it."""
        self.globals.peer_up(node)
        self.groups.peer_up(node)

    def peer_down(self, node: str) -> None:
        """The connection to `node` is lost: forget what it owned."""
        self.globals.peer_down(node)
        self.groups.peer_down(node)

    def handle(self, from_node: str, record: Any) -> bool:
        """Apply a record from `from_node`; False if it is not a cluster record.

        Never blocks. Records are validated when decoded (their attrs
        validators), so a malformed one never reaches this point.
        """
        if isinstance(record, GLOBAL_RECORDS):
            self.globals.handle(from_node, record)
            return True
        if isinstance(record, PG_RECORDS):
            self.groups.handle(from_node, record)
            return True
        return False
