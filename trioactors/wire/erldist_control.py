"""Erlang distribution control messages (OTP 25), records and their codec, sans-IO.

After the handshake every non-tick packet is one distribution message. With
no atom cache negotiated (we never advertise `DIST_HDR_ATOM_CACHE`) it is
the pass-through byte 112, the control message as an external term, and for
the message-carrying kinds a second term, the payload::

    112 | ETF({2, '', ToPid}) | ETF(Message)                  SEND

The control message is a tuple whose first element says what it is. This
module knows the ones a hidden node without spawn support receives and
sends: links (with OTP 23's unlink ids), exits, monitors by pid and by
name, sends by pid, by name and to an alias. The ``*_TT`` forms (with a
sequential trace token) decode as their plain form; the token is dropped.
The ``PAYLOAD_*`` forms (reason as a payload term, `EXIT_PAYLOAD`) decode
too. Anything else raises `ProtocolError` naming what arrived: a peer that
sends it breaks the flags we negotiated.

Encoding writes the plain forms with `EtfCodec`; message terms are encoded
by the caller's codec (the Python-to-Erlang mapping is the node's job,
`trioactors.cluster.erlang_peer`).
"""

from __future__ import annotations

from typing import Any, Final

import attrs

from ..errors import EtfDecodeError, ProtocolError
from .erldist_framing import PASS_THROUGH
from .etf import Atom, EtfCodec
from .terms import Pid, Ref

__all__ = [
    "AliasSend",
    "Control",
    "DemonitorP",
    "Exit",
    "Exit2",
    "Link",
    "MonitorP",
    "MonitorPExit",
    "RegSend",
    "Send",
    "SpawnReply",
    "SpawnRequest",
    "UnlinkId",
    "UnlinkIdAck",
    "decode_control",
    "encode_control",
]

# Control message tags (erts' dist.h, DOP_*).
LINK: Final = 1
SEND: Final = 2
EXIT: Final = 3
REG_SEND: Final = 6
GROUP_LEADER: Final = 7
EXIT2: Final = 8
SEND_TT: Final = 12
EXIT_TT: Final = 13
REG_SEND_TT: Final = 16
EXIT2_TT: Final = 18
MONITOR_P: Final = 19
DEMONITOR_P: Final = 20
MONITOR_P_EXIT: Final = 21
SEND_SENDER: Final = 22
SEND_SENDER_TT: Final = 23
PAYLOAD_EXIT: Final = 24
PAYLOAD_EXIT_TT: Final = 25
PAYLOAD_EXIT2: Final = 26
PAYLOAD_EXIT2_TT: Final = 27
PAYLOAD_MONITOR_P_EXIT: Final = 28
SPAWN_REQUEST: Final = 29
SPAWN_REQUEST_TT: Final = 30
SPAWN_REPLY: Final = 31
SPAWN_REPLY_TT: Final = 32
ALIAS_SEND: Final = 33
ALIAS_SEND_TT: Final = 34
UNLINK_ID: Final = 35
UNLINK_ID_ACK: Final = 36

_EMPTY: Final = Atom("")


@attrs.frozen
class Link:
    """LINK ``{1, From, To}``: `sender` links to `target`."""

    sender: Pid
    target: Pid


@attrs.frozen
class UnlinkId:
    """UNLINK_ID ``{35, Id, From, To}``: `sender` removes its link to `target`;
    the receiver answers `UnlinkIdAck` with the same `id`."""

    id: int
    sender: Pid
    target: Pid


@attrs.frozen
class UnlinkIdAck:
    """UNLINK_ID_ACK ``{36, Id, From, To}``."""

    id: int
    sender: Pid
    target: Pid


@attrs.frozen
class Send:
    """SEND ``{2, '', To}`` or SEND_SENDER ``{22, From, To}`` with the message
    as payload. `sender` is None for plain SEND."""

    target: Pid
    message: Any
    sender: Pid | None = None


@attrs.frozen
class RegSend:
    """REG_SEND ``{6, From, '', ToName}``: `message` for the process
    registered as `name` on the receiving node."""

    sender: Pid
    name: str
    message: Any


@attrs.frozen
class AliasSend:
    """ALIAS_SEND ``{33, From, Alias}``: `message` for the process whose
    alias is `alias` (OTP 24+; how gen_server answers an aliased call)."""

    sender: Pid
    alias: Ref
    message: Any


@attrs.frozen
class Exit:
    """EXIT ``{3, From, To, Reason}``: `sender` died with `reason` and was
    linked to `target`."""

    sender: Pid
    target: Pid
    reason: Any


@attrs.frozen
class Exit2:
    """EXIT2 ``{8, From, To, Reason}``: ``exit(To, Reason)`` from `sender`."""

    sender: Pid
    target: Pid
    reason: Any


@attrs.frozen
class MonitorP:
    """MONITOR_P ``{19, From, ToProc, Ref}``: `watcher` monitors `target`,
    a pid or a registered name (str) on the receiving node."""

    watcher: Pid
    target: Pid | str
    ref: Ref


@attrs.frozen
class DemonitorP:
    """DEMONITOR_P ``{20, From, ToProc, Ref}``."""

    watcher: Pid
    target: Pid | str
    ref: Ref


@attrs.frozen
class MonitorPExit:
    """MONITOR_P_EXIT ``{21, FromProc, ToPid, Ref, Reason}``: the monitored
    `target` (a pid, or the name it was monitored by) ended; `watcher` gets
    its ``'DOWN'``."""

    target: Pid | str
    watcher: Pid
    ref: Ref
    reason: Any


@attrs.frozen
class SpawnRequest:
    """SPAWN_REQUEST ``{29, ReqId, From, GroupLeader, {M, F, Arity}, Opts}``
    with the argument list as payload (``erlang:spawn_request/5``; erpc and
    so rpc:call use it)."""

    req_id: Ref
    sender: Pid
    group_leader: Pid
    module: Atom
    function: Atom
    arity: int
    options: list[Any]
    args: list[Any]


@attrs.frozen
class SpawnReply:
    """SPAWN_REPLY ``{31, ReqId, To, Flags, Result}``: `result` is the new pid
    or an error atom; `flags` bit 0 says it was linked, bit 1 monitored."""

    req_id: Ref
    target: Pid
    flags: int
    result: Pid | Atom


Control = (
    Link
    | UnlinkId
    | UnlinkIdAck
    | Send
    | RegSend
    | AliasSend
    | Exit
    | Exit2
    | MonitorP
    | DemonitorP
    | MonitorPExit
    | SpawnRequest
    | SpawnReply
)

_NAMES: Final = {GROUP_LEADER: "GROUP_LEADER"}


def _pid(value: Any, what: str) -> Pid:
    if type(value) is not Pid:
        raise ProtocolError(f"malformed control message: {what} is {value!r}, not a pid")
    return value


def _ref(value: Any, what: str) -> Ref:
    if type(value) is not Ref:
        raise ProtocolError(f"malformed control message: {what} is {value!r}, not a reference")
    return value


def _proc(value: Any, what: str) -> Pid | str:
    if type(value) is Pid:
        return value
    if type(value) is Atom:
        return value.name
    raise ProtocolError(f"malformed control message: {what} is {value!r}, not a pid or an atom")


def _int(value: Any, what: str) -> int:
    if type(value) is not int or value < 0:
        raise ProtocolError(f"malformed control message: {what} is {value!r}")
    return value


def decode_control(body: bytes, codec: EtfCodec) -> Control:
    """The control message in packet `body` (after the 4-byte length).

    Raises `ProtocolError` for a packet that is not a pass-through message,
    malformed terms, an unknown control message or trailing bytes. Term
    limits are `codec`'s (`EtfLimitExceeded` is a `ProtocolError` too)."""
    if not body or body[0] != PASS_THROUGH:
        first = body[0] if body else None
        raise ProtocolError(
            f"distribution message starts with byte {first}, not pass-through {PASS_THROUGH} "
            "(atom cache headers were not negotiated)"
        )
    try:
        control, end = codec.decode_prefix(body, 1)
    except EtfDecodeError as exc:
        raise ProtocolError(f"malformed control message: {exc}") from None
    if type(control) is not tuple or not control or type(control[0]) is not int:
        raise ProtocolError(f"malformed control message {control!r:.200}")
    tag = control[0]
    n = len(control)

    def payload() -> Any:
        if end >= len(body):
            raise ProtocolError(f"control message {tag} without its payload")
        try:
            term, stop = codec.decode_prefix(body, end)
        except EtfDecodeError as exc:
            raise ProtocolError(f"malformed payload of control message {tag}: {exc}") from None
        if stop != len(body):
            raise ProtocolError(f"{len(body) - stop} bytes after control message {tag}")
        return term

    def no_payload() -> None:
        if end != len(body):
            raise ProtocolError(f"{len(body) - end} bytes after control message {tag}")

    if tag in (SEND, SEND_TT) and n == (3 if tag == SEND else 4):
        return Send(_pid(control[2], "ToPid"), payload())
    if tag in (SEND_SENDER, SEND_SENDER_TT) and n == (3 if tag == SEND_SENDER else 4):
        return Send(_pid(control[2], "ToPid"), payload(), _pid(control[1], "FromPid"))
    if tag in (REG_SEND, REG_SEND_TT) and n == (4 if tag == REG_SEND else 5):
        name = control[3]
        if type(name) is not Atom:
            raise ProtocolError(f"malformed control message: REG_SEND to {name!r}, not an atom")
        return RegSend(_pid(control[1], "FromPid"), name.name, payload())
    if tag in (ALIAS_SEND, ALIAS_SEND_TT) and n == (3 if tag == ALIAS_SEND else 4):
        return AliasSend(_pid(control[1], "FromPid"), _ref(control[2], "Alias"), payload())
    if tag == LINK and n == 3:
        no_payload()
        return Link(_pid(control[1], "FromPid"), _pid(control[2], "ToPid"))
    if tag in (UNLINK_ID, UNLINK_ID_ACK) and n == 4:
        no_payload()
        cls = UnlinkId if tag == UNLINK_ID else UnlinkIdAck
        return cls(_int(control[1], "Id"), _pid(control[2], "FromPid"), _pid(control[3], "ToPid"))
    if tag in (EXIT, EXIT2) and n == 4:
        no_payload()
        cls2 = Exit if tag == EXIT else Exit2
        return cls2(_pid(control[1], "FromPid"), _pid(control[2], "ToPid"), control[3])
    if tag in (EXIT_TT, EXIT2_TT) and n == 5:
        no_payload()
        cls2 = Exit if tag == EXIT_TT else Exit2
        return cls2(_pid(control[1], "FromPid"), _pid(control[2], "ToPid"), control[4])
    if tag in (PAYLOAD_EXIT, PAYLOAD_EXIT2) and n == 3:
        cls2 = Exit if tag == PAYLOAD_EXIT else Exit2
        return cls2(_pid(control[1], "FromPid"), _pid(control[2], "ToPid"), payload())
    if tag in (PAYLOAD_EXIT_TT, PAYLOAD_EXIT2_TT) and n == 4:
        cls2 = Exit if tag == PAYLOAD_EXIT_TT else Exit2
        return cls2(_pid(control[1], "FromPid"), _pid(control[2], "ToPid"), payload())
    if tag in (MONITOR_P, DEMONITOR_P) and n == 4:
        no_payload()
        cls3 = MonitorP if tag == MONITOR_P else DemonitorP
        return cls3(
            _pid(control[1], "FromPid"), _proc(control[2], "ToProc"), _ref(control[3], "Ref")
        )
    if tag == MONITOR_P_EXIT and n == 5:
        no_payload()
        return MonitorPExit(
            _proc(control[1], "FromProc"),
            _pid(control[2], "ToPid"),
            _ref(control[3], "Ref"),
            control[4],
        )
    if tag == PAYLOAD_MONITOR_P_EXIT and n == 4:
        return MonitorPExit(
            _proc(control[1], "FromProc"),
            _pid(control[2], "ToPid"),
            _ref(control[3], "Ref"),
            payload(),
        )
    if tag in (SPAWN_REQUEST, SPAWN_REQUEST_TT) and n == (6 if tag == SPAWN_REQUEST else 7):
        mfa = control[4]
        if not (
            type(mfa) is tuple
            and len(mfa) == 3
            and type(mfa[0]) is Atom
            and type(mfa[1]) is Atom
            and type(mfa[2]) is int
        ):
            raise ProtocolError(f"malformed SPAWN_REQUEST: {{M, F, Arity}} is {mfa!r:.200}")
        options, args = control[5], payload()
        if type(options) is not list or type(args) is not list:
            raise ProtocolError("malformed SPAWN_REQUEST: options and arguments must be lists")
        return SpawnRequest(
            _ref(control[1], "ReqId"),
            _pid(control[2], "From"),
            _pid(control[3], "GroupLeader"),
            mfa[0],
            mfa[1],
            mfa[2],
            options,
            args,
        )
    if tag in (SPAWN_REPLY, SPAWN_REPLY_TT) and n == (5 if tag == SPAWN_REPLY else 6):
        no_payload()
        result = control[4]
        if type(result) is not Pid and type(result) is not Atom:
            raise ProtocolError(f"malformed SPAWN_REPLY result {result!r:.200}")
        return SpawnReply(
            _ref(control[1], "ReqId"), _pid(control[2], "To"), _int(control[3], "Flags"), result
        )
    what = _NAMES.get(tag, f"tag {tag}")
    raise ProtocolError(
        f"unsupported distribution control message {what} ({n} elements); "
        "it needs a capability this node did not advertise"
    )


def _control_term(record: Control) -> tuple[Any, ...]:
    kind = type(record)
    if kind is Send:
        assert isinstance(record, Send)
        if record.sender is not None:
            return (SEND_SENDER, record.sender, record.target)
        return (SEND, _EMPTY, record.target)
    if kind is RegSend:
        assert isinstance(record, RegSend)
        return (REG_SEND, record.sender, _EMPTY, Atom(record.name))
    if kind is AliasSend:
        assert isinstance(record, AliasSend)
        return (ALIAS_SEND, record.sender, record.alias)
    if kind is Link:
        assert isinstance(record, Link)
        return (LINK, record.sender, record.target)
    if kind is UnlinkId or kind is UnlinkIdAck:
        assert isinstance(record, UnlinkId | UnlinkIdAck)
        tag = UNLINK_ID if kind is UnlinkId else UNLINK_ID_ACK
        return (tag, record.id, record.sender, record.target)
    if kind is Exit or kind is Exit2:
        assert isinstance(record, Exit | Exit2)
        return (EXIT if kind is Exit else EXIT2, record.sender, record.target, record.reason)
    if kind is MonitorP or kind is DemonitorP:
        assert isinstance(record, MonitorP | DemonitorP)
        target = Atom(record.target) if isinstance(record.target, str) else record.target
        tag = MONITOR_P if kind is MonitorP else DEMONITOR_P
        return (tag, record.watcher, target, record.ref)
    if kind is MonitorPExit:
        assert isinstance(record, MonitorPExit)
        target = Atom(record.target) if isinstance(record.target, str) else record.target
        return (MONITOR_P_EXIT, target, record.watcher, record.ref, record.reason)
    if kind is SpawnReply:
        assert isinstance(record, SpawnReply)
        return (SPAWN_REPLY, record.req_id, record.target, record.flags, record.result)
    if kind is SpawnRequest:
        assert isinstance(record, SpawnRequest)
        mfa = (record.module, record.function, record.arity)
        return (
            SPAWN_REQUEST,
            record.req_id,
            record.sender,
            record.group_leader,
            mfa,
            record.options,
        )
    raise TypeError(f"not a control message record: {record!r}")


def encode_control(record: Control, codec: EtfCodec, payload: bytes | None = None) -> bytes:
    """The packet body of `record` (pass-through byte, control term, then
    `payload`, the already encoded message term of `Send`, `RegSend` and
    `AliasSend`). `NotSerializable` if a term cannot be encoded."""
    head = codec.encode(_control_term(record))
    if type(record) is SpawnRequest and payload is None:
        payload = codec.encode(record.args)
    carries = type(record) in (Send, RegSend, AliasSend, SpawnRequest)
    if carries != (payload is not None):
        raise ValueError(f"{type(record).__name__} {'needs' if carries else 'takes no'} payload")
    return bytes((PASS_THROUGH,)) + head + (payload or b"")
