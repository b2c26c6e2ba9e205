"""The node-to-node records exchanged after the handshake.

Each record is a frozen attrs class sent as a compact CBOR array through
`trioactors.wire.cbor.RecordSet`; an empty frame is a tick (Erlang's heartbeat).
Field types are checked on decode, so a peer that puts the wrong thing in a
field is a protocol error that closes its connection.
"""

from __future__ import annotations

from typing import Any, Final

import attrs

from .cbor import RecordSet
from .framing import encode_frame
from .terms import Pid, Ref

__all__ = [
    "RECORDS",
    "TICK",
    "CallReply",
    "ClusterRecord",
    "Demonitor",
    "DownSignal",
    "ExitSignal",
    "Goodbye",
    "Link",
    "Monitor",
    "Send",
    "SendNamed",
    "SpawnReply",
    "SpawnRequest",
    "Unlink",
]

#: The frame sent when the connection would otherwise stay silent.
TICK: Final = encode_frame(b"")


@attrs.frozen(slots=True)
class Send:
    """A message for pid `to` on the receiving node."""

    to: Pid
    msg: Any


@attrs.frozen(slots=True)
class SendNamed:
    """A message for the actor registered as `name` on the receiving node."""

    name: str
    msg: Any


@attrs.frozen(slots=True)
class CallReply:
    """`value` answers call `ref` of pid `to` (sent to the call's alias, like
    Erlang's ALIAS_SEND: dropped unless that call still waits)."""

    to: Pid
    ref: Ref
    value: Any


@attrs.frozen(slots=True)
class Link:
    """`sender` (on the sending node) linked itself to `target`."""

    sender: Pid
    target: Pid


@attrs.frozen(slots=True)
class Unlink:
    """`sender` removed its link with `target`."""

    sender: Pid
    target: Pid


@attrs.frozen(slots=True)
class ExitSignal:
    """An exit signal from `sender` to `target`; `link` says it travels a link."""

    sender: Pid
    target: Pid
    reason: Any
    link: bool


@attrs.frozen(slots=True)
class Monitor:
    """`watcher` monitors `target` (a pid or a registered name on the receiver)."""

    watcher: Pid
    ref: Ref
    target: Pid | str


@attrs.frozen(slots=True)
class Demonitor:
    """`watcher` cancelled the monitor `ref`."""

    watcher: Pid
    ref: Ref
    target: Pid | str


@attrs.frozen(slots=True)
class DownSignal:
    """The monitored `target` ended: the watcher's node clears the monitor and
    delivers `Down(ref, target, reason)`."""

    watcher: Pid
    ref: Ref
    target: Any
    reason: Any


@attrs.frozen(slots=True)
class SpawnRequest:
    """Start the spawnable registered as `name` with `args`; link the new actor
    to `link_to` (a pid on the requesting node) when given."""

    ref: Ref
    name: str
    args: list[Any]
    link_to: Pid | None


@attrs.frozen(slots=True)
class SpawnReply:
    """The answer to `SpawnRequest` `ref`: the new pid, or `error` text."""

    ref: Ref
    pid: Pid | None
    error: str


@attrs.frozen(slots=True)
class ClusterRecord:
    """A record of the cluster services (global names, process groups)."""

    record: Any


@attrs.frozen(slots=True)
class Goodbye:
    """The sender leaves the cluster on purpose; nothing follows."""

    reason: str


RECORDS: Final = RecordSet()
RECORDS.register(1, Send, Pid, None)
RECORDS.register(2, SendNamed, str, None)
RECORDS.register(3, Link, Pid, Pid)
RECORDS.register(4, Unlink, Pid, Pid)
RECORDS.register(5, ExitSignal, Pid, Pid, None, bool)
RECORDS.register(6, Monitor, Pid, Ref, (Pid, str))
RECORDS.register(7, Demonitor, Pid, Ref, (Pid, str))
RECORDS.register(8, DownSignal, Pid, Ref, None, None)
RECORDS.register(9, SpawnRequest, Ref, str, list, (Pid, type(None)))
RECORDS.register(10, SpawnReply, Ref, (Pid, type(None)), str)
RECORDS.register(11, Goodbye, str)
RECORDS.register(12, ClusterRecord, None)
RECORDS.register(13, CallReply, Pid, Ref, None)
