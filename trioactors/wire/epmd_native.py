"""The native trioactors EPMD protocol, sans-IO.

Wire format (version 1)
-----------------------
A native connection starts with an 8-byte preamble from the client,
``b"TAEPMD"`` followed by the protocol version as a big-endian u16; the daemon
answers with its own preamble (same layout) before anything else. A peer that
closes the connection instead of answering is a real Erlang ``epmd``: it reads
``b"TA"`` as a request length of 21569 bytes, above its limit, and hangs up.
That is how the client tells the two daemons apart.

After the preambles both sides send frames: a 4-byte big-endian length, then
one CBOR array ``[kind, id, field...]``. ``kind`` is a text string, ``id`` an
unsigned integer chosen by the client and echoed in the answer. Requests and
answers (fields in order):

=============  ===========================================  =========================
request        fields                                       answer
=============  ===========================================  =========================
``register``   name, host, port, protocol_version,          ``registered`` node
               capabilities [text], metadata {text: text},  or ``refused``
               token (bytes, a client secret)
``unregister`` name                                         ``unregistered`` existed
``lookup``     name                                         ``found`` node-or-null
``list``       --                                           ``nodes`` [node]
``ping``       --                                           ``pong``
``keepalive``  names [text]                                 ``alive`` unknown [text]
--             --                                           ``refused`` code, message
=============  ===========================================  =========================

A node is a CBOR map: ``name``, ``host``, ``port``, ``kind`` (``"trioactors"``
or ``"erlang"``), ``protocol_version``, ``capabilities``, ``metadata``,
``creation``, and for nodes registered through Erlang's ALIVE2 ``erlang``:
``{"node_type", "protocol", "highest_version", "lowest_version", "extra"}``.
Unknown map keys are ignored so later versions can add fields. ``refused``
codes: ``name_taken``, ``invalid``, ``not_allowed``.

The daemon reads request frames of at most `MAX_REQUEST_SIZE` bytes (64 KiB);
the length is checked before the body is buffered. A ``register`` with host
``""``, ``"0.0.0.0"`` or ``"::"`` is stored with the address the client
connected from. A ``register`` of a name this client already holds (same
token, e.g. after a reconnect) takes the registration over instead of being
refused. Native registrations are removed when no ``keepalive`` (or
``register``) has refreshed them for the daemon's keep-alive timeout.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Final

import attrs

from ..errors import ProtocolError
from .cbor import dumps, loads
from .epmd_erlang import ErlangNodeFields, valid_node_name
from .framing import FrameDecoder, encode_frame

__all__ = [
    "KIND_ERLANG",
    "KIND_TRIOACTORS",
    "MAGIC",
    "MAX_REQUEST_SIZE",
    "MAX_RESPONSE_SIZE",
    "PREAMBLE_SIZE",
    "VERSION",
    "Alive",
    "Found",
    "KeepAlive",
    "ListNodes",
    "Lookup",
    "NativeParser",
    "NativeRequest",
    "NativeResponse",
    "NodeInfo",
    "NodeList",
    "Ping",
    "Pong",
    "Refused",
    "Register",
    "Registered",
    "Unregister",
    "Unregistered",
    "decode_message",
    "encode_message",
    "encode_preamble",
    "parse_preamble",
]

MAGIC: Final = b"TAEPMD"
VERSION: Final = 1
PREAMBLE_SIZE: Final = len(MAGIC) + 2
MAX_REQUEST_SIZE: Final = 64 * 1024
MAX_RESPONSE_SIZE: Final = 64 * 1024 * 1024  # a list of 100k+ nodes fits

_MAX_HOST = 255
_MAX_ITEMS = 64
_MAX_TEXT = 1024

KIND_TRIOACTORS: Final = "trioactors"
KIND_ERLANG: Final = "erlang"


def encode_preamble(version: int = VERSION) -> bytes:
    """The 8 bytes that open a native connection (both directions)."""
    return MAGIC + struct.pack(">H", version)


def parse_preamble(data: bytes) -> int:
    """The version in a complete preamble; `ProtocolError` if it is not one."""
    if len(data) != PREAMBLE_SIZE or not data.startswith(MAGIC):
        raise ProtocolError("not a trioactors EPMD preamble")
    (version,) = struct.unpack_from(">H", data, len(MAGIC))
    if version < 1:
        raise ProtocolError(f"unsupported native EPMD protocol version {version}")
    return int(version)


# --------------------------------------------------------------------------- node info


def _frozen_dict(value: Mapping[str, str] | None) -> dict[str, str]:
    return dict(value or {})


def _str_tuple(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(value)


def _node_tuple(value: Iterable[NodeInfo]) -> tuple[NodeInfo, ...]:
    return tuple(value)


@attrs.frozen
class NodeInfo:
    """What EPMD knows about one registered node.

    `kind` says which protocol registered it: ``"trioactors"`` (native, with
    `protocol_version`, `capabilities` and free-form `metadata`) or
    ``"erlang"`` (ALIVE2, with the node's `erlang` fields). `creation` is the
    incarnation number the daemon assigned, as epmd assigns it; None when the
    daemon did not say (Erlang's NAMES listing).
    """

    name: str
    host: str
    port: int
    kind: str = KIND_TRIOACTORS
    protocol_version: int = 1
    capabilities: tuple[str, ...] = attrs.field(default=(), converter=_str_tuple)
    metadata: dict[str, str] = attrs.field(factory=dict, converter=_frozen_dict, hash=False)
    creation: int | None = None
    erlang: ErlangNodeFields | None = None

    @property
    def node_name(self) -> str:
        """The node's own name: its full name (``alpha@h2``, from the
        ``node`` metadata) when it registered only its short one, else `name`."""
        return self.metadata.get("node") or self.name

    def to_wire(self) -> dict[str, Any]:
        """The CBOR map of this node."""
        out: dict[str, Any] = {
            "name": self.name,
            "host": self.host,
            "port": self.port,
            "kind": self.kind,
            "protocol_version": self.protocol_version,
            "capabilities": list(self.capabilities),
            "metadata": dict(self.metadata),
            "creation": self.creation,
        }
        if self.erlang is not None:
            e = self.erlang
            out["erlang"] = {
                "node_type": e.node_type,
                "protocol": e.protocol,
                "highest_version": e.highest_version,
                "lowest_version": e.lowest_version,
                "extra": e.extra,
            }
        return out

    @classmethod
    def from_wire(cls, value: Any) -> NodeInfo:
        """Parse the CBOR map of a node; `ProtocolError` when malformed."""
        if not isinstance(value, dict):
            raise ProtocolError("node info must be a map")
        erl = value.get("erlang")
        fields = None
        if erl is not None:
            if not isinstance(erl, dict):
                raise ProtocolError("node info 'erlang' must be a map")
            fields = ErlangNodeFields(
                _int(erl.get("node_type"), 0xFF),
                _int(erl.get("protocol"), 0xFF),
                _int(erl.get("highest_version"), 0xFFFF),
                _int(erl.get("lowest_version"), 0xFFFF),
                _bytes(erl.get("extra", b"")),
            )
        creation = value.get("creation")
        return cls(
            name=_text(value.get("name"), _MAX_TEXT),
            host=_text(value.get("host"), _MAX_TEXT),
            port=_int(value.get("port"), 0xFFFF),
            kind=_text(value.get("kind", KIND_TRIOACTORS), 32),
            protocol_version=_int(value.get("protocol_version", 1), 2**32 - 1),
            capabilities=_texts(value.get("capabilities", [])),
            metadata=_text_map(value.get("metadata", {})),
            creation=None if creation is None else _int(creation, 2**32 - 1),
            erlang=fields,
        )


# --------------------------------------------------------------------------- messages


@attrs.frozen
class Register:
    """Register `name` at host:port; the token lets the same client take its
    own registration over after a reconnect."""

    id: int
    name: str
    host: str
    port: int
    protocol_version: int = 1
    capabilities: tuple[str, ...] = attrs.field(default=(), converter=_str_tuple)
    metadata: dict[str, str] = attrs.field(factory=dict, converter=_frozen_dict, hash=False)
    token: bytes = b""


@attrs.frozen
class Unregister:
    """Remove `name` if this connection registered it (unknown names are fine)."""

    id: int
    name: str


@attrs.frozen
class Lookup:
    """Ask for one node."""

    id: int
    name: str


@attrs.frozen
class ListNodes:
    """Ask for every registered node (native and Erlang)."""

    id: int


@attrs.frozen
class Ping:
    """Is the daemon there?"""

    id: int


@attrs.frozen
class KeepAlive:
    """Refresh the registrations `names` of this connection."""

    id: int
    names: tuple[str, ...] = attrs.field(default=(), converter=_str_tuple)


@attrs.frozen
class Registered:
    """The registration as stored, with the daemon-assigned creation."""

    id: int
    node: NodeInfo


@attrs.frozen
class Unregistered:
    """Answer to Unregister; `existed` is False for an unknown name."""

    id: int
    existed: bool


@attrs.frozen
class Found:
    """Answer to Lookup."""

    id: int
    node: NodeInfo | None


@attrs.frozen
class NodeList:
    """Answer to ListNodes, newest registration first (as epmd lists them)."""

    id: int
    nodes: tuple[NodeInfo, ...] = attrs.field(converter=_node_tuple)


@attrs.frozen
class Pong:
    """Answer to Ping."""

    id: int


@attrs.frozen
class Alive:
    """Answer to KeepAlive: the names this connection no longer holds."""

    id: int
    unknown: tuple[str, ...] = attrs.field(default=(), converter=_str_tuple)


@attrs.frozen
class Refused:
    """A request the daemon would not do; `code` is machine-readable."""

    id: int
    code: str
    message: str


NativeRequest = Register | Unregister | Lookup | ListNodes | Ping | KeepAlive
NativeResponse = Registered | Unregistered | Found | NodeList | Pong | Alive | Refused


def encode_message(msg: NativeRequest | NativeResponse) -> bytes:
    """One complete frame (length prefix included) carrying `msg`."""
    body: list[Any]
    if isinstance(msg, Register):
        body = [
            "register", msg.id, msg.name, msg.host, msg.port, msg.protocol_version,
            list(msg.capabilities), dict(msg.metadata), msg.token,
        ]  # fmt: skip
    elif isinstance(msg, Unregister):
        body = ["unregister", msg.id, msg.name]
    elif isinstance(msg, Lookup):
        body = ["lookup", msg.id, msg.name]
    elif isinstance(msg, ListNodes):
        body = ["list", msg.id]
    elif isinstance(msg, Ping):
        body = ["ping", msg.id]
    elif isinstance(msg, KeepAlive):
        body = ["keepalive", msg.id, list(msg.names)]
    elif isinstance(msg, Registered):
        body = ["registered", msg.id, msg.node.to_wire()]
    elif isinstance(msg, Unregistered):
        body = ["unregistered", msg.id, msg.existed]
    elif isinstance(msg, Found):
        body = ["found", msg.id, None if msg.node is None else msg.node.to_wire()]
    elif isinstance(msg, NodeList):
        body = ["nodes", msg.id, [n.to_wire() for n in msg.nodes]]
    elif isinstance(msg, Pong):
        body = ["pong", msg.id]
    elif isinstance(msg, Alive):
        body = ["alive", msg.id, list(msg.unknown)]
    else:
        body = ["refused", msg.id, msg.code, msg.message]
    return encode_frame(dumps(body))


def decode_message(body: bytes) -> NativeRequest | NativeResponse:
    """The message in one frame body; `ProtocolError` for anything malformed."""
    value = loads(body)
    if not isinstance(value, list) or len(value) < 2 or not isinstance(value[0], str):
        raise ProtocolError("a native EPMD message is an array [kind, id, ...]")
    kind, rid, args = value[0], _int(value[1], 2**63 - 1), value[2:]
    try:
        msg: NativeRequest | NativeResponse = _DECODERS[kind](rid, args)
        return msg
    except KeyError:
        raise ProtocolError(f"unknown native EPMD message {kind!r}") from None
    except (TypeError, ValueError) as exc:
        raise ProtocolError(f"malformed {kind!r} message: {exc}") from exc


def _args(args: list[Any], n: int, kind: str) -> list[Any]:
    if len(args) != n:
        raise ProtocolError(f"{kind!r} takes {n} fields, got {len(args)}")
    return args


def _no_args(rid: int, args: list[Any], kind: str) -> int:
    _args(args, 0, kind)
    return rid


def _name(value: Any) -> str:
    if not isinstance(value, str) or valid_node_name(value.encode("utf-8", "replace")) != value:
        raise ProtocolError("node names are 1..255 characters of UTF-8 without NUL")
    return value


def _text(value: Any, limit: int) -> str:
    if not isinstance(value, str) or len(value) > limit:
        raise ProtocolError(f"expected text of at most {limit} characters")
    return value


def _int(value: Any, limit: int) -> int:
    if type(value) is not int or not 0 <= value <= limit:
        raise ProtocolError(f"expected an integer in 0..{limit}")
    return value


def _bytes(value: Any) -> bytes:
    if not isinstance(value, bytes) or len(value) > _MAX_TEXT:
        raise ProtocolError(f"expected bytes of at most {_MAX_TEXT}")
    return value


def _texts(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or len(value) > _MAX_ITEMS:
        raise ProtocolError(f"expected a list of at most {_MAX_ITEMS} texts")
    return tuple(_text(v, _MAX_TEXT) for v in value)


def _names(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or len(value) > 4096:
        raise ProtocolError("expected a list of node names")
    return tuple(_name(v) for v in value)


def _text_map(value: Any) -> dict[str, str]:
    if not isinstance(value, dict) or len(value) > _MAX_ITEMS:
        raise ProtocolError(f"metadata must be a map of at most {_MAX_ITEMS} text pairs")
    return {_text(k, _MAX_TEXT): _text(v, _MAX_TEXT) for k, v in value.items()}


def _dec_register(rid: int, a: list[Any]) -> Register:
    name, host, port, version, caps, meta, token = _args(a, 7, "register")
    return Register(
        rid,
        _name(name),
        _text(host, _MAX_HOST),
        _int(port, 0xFFFF),
        _int(version, 2**32 - 1),
        _texts(caps),
        _text_map(meta),
        _bytes(token),
    )


def _dec_found(rid: int, a: list[Any]) -> Found:
    (node,) = _args(a, 1, "found")
    return Found(rid, None if node is None else NodeInfo.from_wire(node))


def _dec_nodes(rid: int, a: list[Any]) -> NodeList:
    (nodes,) = _args(a, 1, "nodes")
    if not isinstance(nodes, list):
        raise ProtocolError("'nodes' must carry a list")
    return NodeList(rid, tuple(NodeInfo.from_wire(n) for n in nodes))


def _dec_unregistered(rid: int, a: list[Any]) -> Unregistered:
    (existed,) = _args(a, 1, "unregistered")
    if not isinstance(existed, bool):
        raise ProtocolError("'unregistered' carries a bool")
    return Unregistered(rid, existed)


_DECODERS: Final[dict[str, Any]] = {
    "register": _dec_register,
    "unregister": lambda rid, a: Unregister(rid, _name(*_args(a, 1, "unregister"))),
    "lookup": lambda rid, a: Lookup(rid, _name(*_args(a, 1, "lookup"))),
    "list": lambda rid, a: ListNodes(_no_args(rid, a, "list")),
    "ping": lambda rid, a: Ping(_no_args(rid, a, "ping")),
    "keepalive": lambda rid, a: KeepAlive(rid, _names(*_args(a, 1, "keepalive"))),
    "registered": lambda rid, a: Registered(rid, NodeInfo.from_wire(*_args(a, 1, "registered"))),
    "unregistered": _dec_unregistered,
    "found": _dec_found,
    "nodes": _dec_nodes,
    "pong": lambda rid, a: Pong(_no_args(rid, a, "pong")),
    "alive": lambda rid, a: Alive(rid, _texts_any(*_args(a, 1, "alive"))),
    "refused": lambda rid, a: Refused(rid, *(_text(v, _MAX_TEXT) for v in _args(a, 2, "refused"))),
}


def _texts_any(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ProtocolError("expected a list of texts")
    return tuple(_text(v, _MAX_TEXT) for v in value)


class NativeParser:
    """Sans-IO reader of native frames on one connection (after the preamble).

    `feed()` bytes, iterate `messages()` for the decoded records. Raises
    `ProtocolError` (`FrameTooLarge` included) for anything malformed.
    """

    __slots__ = ("_frames",)

    def __init__(self, max_size: int = MAX_REQUEST_SIZE) -> None:
        self._frames = FrameDecoder(max_size)

    @property
    def buffered(self) -> int:
        """Bytes received and not yet returned as a message."""
        return self._frames.buffered

    def feed(self, data: bytes) -> None:
        """Add bytes received from the peer."""
        self._frames.feed(data)

    def messages(self) -> Iterator[NativeRequest | NativeResponse]:
        """Every complete message received so far."""
        for body in self._frames:
            yield decode_message(body)
