"""Process identifiers and references."""

from __future__ import annotations

import hashlib
import itertools
from typing import Final

import attrs

__all__ = ["LOCAL_NODE", "Pid", "Ref", "node_id_for"]

LOCAL_NODE: Final = 0


def node_id_for(name: str) -> int:
    """The stable 32-bit id of a node name (never 0, same in every process)."""
    digest = hashlib.blake2b(name.encode("utf-8"), digest_size=4).digest()
    value = int.from_bytes(digest, "big")
    return value or 1


@attrs.frozen(order=True, slots=True)
class Pid:
    """An actor's address: `node` (0 = this node), `id`, `serial` (incarnation).

    Displayed like Erlang: ``<0.12.0>``. Hashable, ordered, serialisable.
    """

    node: int
    id: int
    serial: int = 0

    def is_local(self) -> bool:
        """True when this pid belongs to the node (or system) that holds it."""
        return self.node == LOCAL_NODE

    @classmethod
    def with_node(cls, node: int, id: int, serial: int = 0) -> Pid:
        """A pid of actor `id` on node `node`."""
        return cls(node, id, serial)

    def __str__(self) -> str:
        return f"<{self.node}.{self.id}.{self.serial}>"

    def __repr__(self) -> str:
        return f"Pid{self}"


@attrs.frozen(order=True, slots=True)
class Ref:
    """A unique reference (monitors, calls, timers): `node`, `id`, `serial`."""

    node: int
    id: int
    serial: int = 0

    def __str__(self) -> str:
        return f"#Ref<{self.node}.{self.id}.{self.serial}>"

    def __repr__(self) -> str:
        return str(self)


class _Counter:
    """A per-system id source (no module-level state: each system owns one)."""

    __slots__ = ("_it",)

    def __init__(self, start: int = 1) -> None:
        self._it = itertools.count(start)

    def next(self) -> int:
        return next(self._it)
