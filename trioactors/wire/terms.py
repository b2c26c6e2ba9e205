"""Process identifiers and references: absolute names, the same in every node.

A `Pid` names one actor wherever it is held: the name of the node it lives on
(interned), that node's creation (which incarnation of the node), the actor's
id and a serial. Two nodes in one program, a log line, a dict key and the
wire all see the same value; nothing rewrites pids on receipt. The fields map
one to one onto Erlang's NEW_PID_EXT (node atom, id, serial, creation), so an
Erlang pid is a `Pid` too. `Ref` is the same idea for references (Erlang's
NEWER_REFERENCE_EXT: node, creation, up to five 32-bit words).

Whether a pid is local is a question to a system or node (`ctx.is_local(pid)`):
the answer depends on who asks.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, Final

import attrs

__all__ = ["NO_NODE", "Pid", "Ref", "fresh_ref", "intern_node"]

#: The node name of an actor system that is not a cluster node (Erlang's).
NO_NODE: Final = "nonode@nohost"

_WORD: Final = 2**32


def intern_node(name: str) -> str:
    """The interned copy of node name `name`: pids of one node share one string."""
    return sys.intern(name)


@attrs.frozen(order=True, slots=True, repr=False, cache_hash=True)
class Pid:
    """An actor's address: `node` (its node's name), `id`, `serial`, `creation`.

    Displayed like Erlang's pids with the node's name in front:
    ``<alpha.12.0>``. Hashable, ordered, serialisable; the same value names
    the same actor in every node (`creation` tells incarnations of a
    restarted node apart).
    """

    node: str
    id: int
    serial: int = 0
    creation: int = 0

    def __str__(self) -> str:
        return f"<{self.node}.{self.id}.{self.serial}>"

    def __repr__(self) -> str:
        return f"Pid({self.node!r}, {self.id}, {self.serial}, {self.creation})"


@attrs.frozen(order=True, slots=True, repr=False, cache_hash=True)
class Ref:
    """A unique reference (monitors, calls, spawns): `node`, `creation` and
    `ids`, one to five 32-bit words as in Erlang (trioactors' own refs use
    one word, two past 2**32)."""

    node: str
    creation: int
    ids: tuple[int, ...]

    @classmethod
    def of(cls, node: str, creation: int, number: int) -> Ref:
        """The ref with serial `number` of node `node` (`creation`)."""
        if number < _WORD:
            return cls(node, creation, (number,))
        return cls(node, creation, (number % _WORD, number // _WORD))

    def __str__(self) -> str:
        words = ".".join(str(w) for w in reversed(self.ids))
        return f"#Ref<{self.node}.{words}>"

    def __repr__(self) -> str:
        return f"Ref({self.node!r}, {self.creation}, {self.ids!r})"


def _slot_setters() -> tuple[Any, ...] | None:
    # The slot descriptors of Ref's fields and of attrs' cached-hash slot; None
    # if this attrs lays Ref out otherwise (fresh_ref then uses the constructor).
    names = ("node", "creation", "ids", "_attrs_cached_hash")
    slots = vars(Ref)
    if not all(n in slots for n in names):
        return None
    setters = tuple(slots[n].__set__ for n in names)
    probe = object.__new__(Ref)
    for setter, value in zip(setters, ("n", 1, (2,), None), strict=True):
        setter(probe, value)
    made = Ref("n", 1, (2,))
    return setters if probe == made and hash(probe) == hash(made) else None


def _make_fresh_ref() -> Any:
    setters = _slot_setters()
    if setters is None:
        return Ref
    set_node, set_creation, set_ids, set_hash = setters
    new = object.__new__

    def fresh_ref(node: str, creation: int, ids: tuple[int, ...]) -> Ref:
        ref = new(Ref)
        set_node(ref, node)
        set_creation(ref, creation)
        set_ids(ref, ids)
        set_hash(ref, None)
        return ref

    return fresh_ref


#: ``Ref(node, creation, ids)`` for already valid fields, at half the cost of
#: the attrs constructor (every call makes one: it is on the call path).
fresh_ref: Callable[[str, int, tuple[int, ...]], Ref] = _make_fresh_ref()
