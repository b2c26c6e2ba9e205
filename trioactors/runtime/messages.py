"""Signal records delivered to actors as messages, and the call/cast protocol tags.

Every record is a frozen attrs class registered with the codec under a stable
``trioactors.*`` name, so a `Down` or `Exit` produced on one node can be
delivered to an actor on another.
"""

from __future__ import annotations

import traceback
from typing import Any, Final

import attrs

from ..wire.cbor import message
from ..wire.terms import Pid, Ref

__all__ = [
    "GEN_CALL",
    "GEN_CAST",
    "Crash",
    "Down",
    "Exit",
    "NodeDown",
    "NodeUp",
    "TimerRef",
]

#: First element of a call request: ``("$gen_call", (caller_pid, ref), request)``;
#: the reply is ``(ref, value)`` sent to ``caller_pid``. Plain tuples so that calls
#: work unchanged between nodes.
GEN_CALL: Final = "$gen_call"
#: First element of a cast: ``("$gen_cast", request)``.
GEN_CAST: Final = "$gen_cast"


@message("trioactors.Exit")
@attrs.frozen(slots=True)
class Exit:
    """An exit signal received as a message (only while trapping exits)."""

    pid: Pid
    reason: Any


@message("trioactors.Down")
@attrs.frozen(slots=True)
class Down:
    """A monitored process ended: `pid` is what was monitored (a Pid, or
    ``(name, node_name)`` for a registered name, local or not, like Erlang's
    ``{Name, Node}``), `reason` its exit reason."""

    ref: Ref
    pid: Any
    reason: Any


@message("trioactors.NodeUp")
@attrs.frozen(slots=True)
class NodeUp:
    """A connection to node `node` came up."""

    node: str


@message("trioactors.NodeDown")
@attrs.frozen(slots=True)
class NodeDown:
    """The connection to node `node` was lost (or could not be made)."""

    node: str
    reason: Any


@message("trioactors.Crash")
@attrs.frozen(slots=True)
class Crash:
    """The exit reason of an actor that raised: exception type name, message,
    formatted traceback. Plain strings, so it can cross nodes and be compared."""

    type: str
    message: str
    traceback: str = attrs.field(default="", eq=False, repr=False)

    @classmethod
    def from_exception(cls, exc: BaseException) -> Crash:
        """The Crash record describing `exc`."""
        tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        return cls(type(exc).__qualname__, str(exc), tb)

    def __str__(self) -> str:
        return f"{self.type}: {self.message}" if self.message else self.type


@message("trioactors.TimerRef")
@attrs.frozen(slots=True, order=True)
class TimerRef:
    """The handle of a timer started with `send_after`; pass it to `cancel_timer`."""

    id: int
