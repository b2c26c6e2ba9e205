"""The peer table: everything a node knows about the other nodes, by name."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

import trio

from ..wire.terms import Pid

if TYPE_CHECKING:
    from .connection import Connection
    from .erlang_peer import ErlangLink

__all__ = ["Attempt", "Peer", "PeerTable"]


class Attempt:
    """One outgoing connection attempt; `connect()` callers wait on it."""

    __slots__ = ("done", "error")

    def __init__(self) -> None:
        self.done = trio.Event()
        self.error: BaseException | None = None

    def finish(self, error: BaseException | None = None) -> None:
        """Report the outcome (None: connected) to everyone waiting."""
        if not self.done.is_set():
            self.error = error
            self.done.set()


class Peer:
    """One other node: its address, its connection (if any) and what waits for it."""

    __slots__ = (
        "accepting",
        "address",
        "attempt",
        "conn",
        "creation",
        "deferred",
        "erlang",
        "kind",
        "last_failure",
        "name",
        "pending",
        "up",
        "watchers",
    )

    def __init__(self, name: str) -> None:
        self.name = name
        #: Where it listens, when known without EPMD.
        self.address: tuple[str, int] | None = None
        self.conn: Connection | None = None
        #: Its creation, learnt in the handshake.
        self.creation: int | None = None
        #: Frames sent while no connection exists; they go out first once it does.
        self.pending: deque[bytes] = deque()
        self.attempt: Attempt | None = None
        #: An incoming handshake from it is under way.
        self.accepting = False
        self.up = trio.Event()
        #: `monitor_node` watchers: one-shot, like Erlang's.
        self.watchers: list[Pid] = []
        self.last_failure = -float("inf")
        #: "trioactors" or "erlang" once known (a name without '@' is never Erlang).
        self.kind: str | None = None if "@" in name else "trioactors"
        #: Sends made while the protocol is not known yet: run once it is.
        self.deferred: list[Callable[[], None]] = []
        #: Per-peer state of an Erlang node (`erlang_peer.ErlangLink`).
        self.erlang: ErlangLink | None = None

    def __repr__(self) -> str:
        state = "connected" if self.conn is not None else "not connected"
        return f"<Peer {self.name!r} {state}>"

    @property
    def connected(self) -> bool:
        """True while an established connection is open."""
        return self.conn is not None and self.conn.open


class PeerTable:
    """The peers of one node, by name (the node itself is never in it)."""

    def __init__(self, own_name: str) -> None:
        self.own_name = own_name
        self._peers: dict[str, Peer] = {}

    def __iter__(self) -> Iterator[Peer]:
        return iter(list(self._peers.values()))

    def get(self, name: str) -> Peer | None:
        """The peer named `name`, if this node has heard of it."""
        return self._peers.get(name)

    def ensure(self, name: str) -> Peer:
        """The peer named `name`, made on first mention."""
        peer = self._peers.get(name)
        if peer is None:
            if name == self.own_name:
                raise ValueError(f"{name!r} is this node itself")
            peer = self._peers[name] = Peer(name)
        return peer

    def learn(self, names: Iterable[str]) -> None:
        """Remember node names (from discovery)."""
        for name in names:
            if name != self.own_name and name not in self._peers:
                self._peers[name] = Peer(name)

    def names(self) -> list[str]:
        """Every known peer's name, sorted."""
        return sorted(self._peers)

    def connected(self) -> list[str]:
        """Names of the peers with an established connection, sorted."""
        return sorted(name for name, peer in self._peers.items() if peer.connected)

    def any_connection(self) -> bool:
        """True while some peer still has a connection (open or closing)."""
        return any(peer.conn is not None for peer in self._peers.values())
