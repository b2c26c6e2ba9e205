"""CBOR: the encoding of messages and node records (the one place CBOR bytes are made).

Messages between nodes are CBOR with a few private tags: Pid, Ref, tuple and
classes registered with `@message("app.Name")`. Nothing else is accepted in
either direction: cbor2's own semantic tags (datetimes, regexes, decimals...)
are refused on decode so bytes from the network can only ever build plain
data, pids, refs and the attrs classes the application registered."""

from __future__ import annotations

import functools
import io
from collections.abc import Callable
from typing import Any, Final, NoReturn, Protocol, TypeVar

import attrs
import cbor2

from ..errors import NotSerializable, ProtocolError
from .framing import encode_frame, frame_header
from .terms import Pid, Ref, intern_node

__all__ = [
    "DEFAULT_REGISTRY",
    "MessageCodec",
    "MessageRegistry",
    "dumps",
    "loads",
    "message",
]

# Private-use tag numbers (unassigned in the IANA CBOR tag registry).
TAG_PID: Final = 40001
TAG_REF: Final = 40002
TAG_TUPLE: Final = 40003
TAG_MESSAGE: Final = 40004

# Tags cbor2 decodes natively into rich Python objects; all refused.
_CBOR2_BUILTIN_TAGS: Final = (
    0, 1, 2, 3, 4, 5, 25, 28, 29, 30, 35, 36, 37, 100, 256, 258, 260, 261,
    1004, 55799,
)  # fmt: skip


# --------------------------------------------------------------------------- registry

_T = TypeVar("_T")


class MessageRegistry:
    """Maps stable names to the attrs classes allowed to cross nodes.

    `@ta.message("app.Name")` registers into `DEFAULT_REGISTRY` (like `copyreg`,
    a process-wide table of types is the one piece of shared state here: classes
    are themselves process-wide). Nodes accept another registry for isolation.
    """

    def __init__(self) -> None:
        self._by_name: dict[str, type[Any]] = {}

    def register(self, name: str, cls: type[Any]) -> None:
        """Allow instances of attrs class `cls` to cross nodes as `name`."""
        if not attrs.has(cls):
            raise TypeError(f"{cls.__qualname__} must be an attrs class to be a message")
        old = self._by_name.get(name)
        if old is not None and old is not cls and old.__qualname__ != cls.__qualname__:
            raise ValueError(f"message name {name!r} is already used by {old.__qualname__}")
        self._by_name[name] = cls
        setattr(cls, "__trioactors_message__", name)  # noqa: B010

    def lookup(self, name: str) -> type[Any] | None:
        """The class registered as `name`, if any."""
        return self._by_name.get(name)

    def names(self) -> list[str]:
        """All registered names."""
        return sorted(self._by_name)


DEFAULT_REGISTRY: Final = MessageRegistry()


def message(
    name: str, *, registry: MessageRegistry | None = None
) -> Callable[[type[_T]], type[_T]]:
    """Class decorator: let instances of this attrs class cross nodes as `name`.

    ```python
    @ta.message("shop.Order")
    @attrs.frozen
    class Order:
        item: str
        qty: int
    ```
    The name, not the Python module path, goes on the wire: nothing received
    is ever imported.
    """

    def deco(cls: type[_T]) -> type[_T]:
        (registry or DEFAULT_REGISTRY).register(name, cls)
        return cls

    return deco


# --------------------------------------------------------------------------- codec


def _refuse(value: Any, immutable: bool) -> Any:
    raise ValueError("CBOR tag not allowed")


def _one_stage(decode: Callable[[Any], Any], name: str) -> Any:
    """`decode(value)` as a cbor2 semantic decoder for our own tags, in
    cbor2's two-stage form (`shareable_decoder`: called with `immutable`, it
    returns ``(container, callback)``) with no container to share.

    Why not a plain ``decode(value, immutable)``: for that form cbor2 6 first
    looks for the two-stage attributes and, on a plain function, pays for
    the AttributeError; the first stage here is C code (a dict lookup) and
    the attributes are there, so a tag costs one Python call, not three
    times that: a small message decodes in ~0.75x the time.
    """
    stages = (None, decode)
    table = {False: stages, True: stages}
    # A partial (unlike a bound method) takes the attributes cbor2 sets.
    first = functools.partial(table.__getitem__)
    return cbor2.shareable_decoder(name=name)(first)


def _refuse_encode(encoder: cbor2.CBOREncoder, value: Any) -> None:
    raise NotSerializable(
        f"{type(value).__qualname__} cannot be sent to another node; send plain data "
        "(None, bool, int, float, str, bytes, list, tuple, dict), Pid, Ref or a "
        "@ta.message class"
    )


def _unknown_tag(tag: cbor2.CBORTag, immutable: bool) -> Any:
    raise ValueError(f"unknown CBOR tag {tag.tag}")


def _rich_types() -> list[type[Any]]:
    import datetime
    import decimal
    import fractions
    import ipaddress
    import re
    import uuid
    from email.message import Message

    return [
        datetime.datetime, datetime.date, decimal.Decimal, fractions.Fraction,
        uuid.UUID, re.Pattern, Message, set, frozenset,
        ipaddress.IPv4Address, ipaddress.IPv6Address, ipaddress.IPv4Network,
        ipaddress.IPv6Network, ipaddress.IPv4Interface, ipaddress.IPv6Interface,
        cbor2.CBORTag, cbor2.CBORSimpleValue, type(cbor2.undefined),
    ]  # fmt: skip


class MessageCodec:
    """Encodes and decodes message payloads for one node.

    Pids and refs are absolute (`trioactors.wire.terms`): they travel as
    they are, node name and creation included, so a pid can be passed around
    the cluster and replied to from anywhere.

    A codec keeps one cbor2 encoder and small bounded caches of the bytes of
    pids and message envelopes it has written and of the pids it has read;
    they are memos only, the bytes are the same with or without them. Each
    node owns its codec (nothing is shared between nodes of one process).
    """

    def __init__(self, registry: MessageRegistry | None = None) -> None:
        self.registry = registry or DEFAULT_REGISTRY
        encoders: dict[type[Any], Callable[[cbor2.CBOREncoder, Any], Any]] = {
            t: _refuse_encode for t in _rich_types()
        }
        encoders[tuple] = _enc_tuple
        encoders[Pid] = self._enc_pid
        encoders[Ref] = _enc_ref
        # One encoder for every message: cbor2.dumps() would set up its
        # encoder (hooks included) again for each one.
        self._encoder = cbor2.CBOREncoder(io.BytesIO(), encoders=encoders, default=self._default)
        self._to_bytes = self._encoder.encode_to_bytes
        self._pid_bytes: dict[Pid, bytes] = {}
        self._heads: dict[tuple[int, Pid | str], bytes] = {}
        self._pids: dict[tuple[str, int, int, int], Pid] = {}
        decoders: dict[int, Callable[..., Any]] = {t: _refuse for t in _CBOR2_BUILTIN_TAGS}
        decoders[TAG_PID] = _one_stage(self._dec_pid, "pid")
        decoders[TAG_REF] = _one_stage(_dec_ref, "ref")
        decoders[TAG_TUPLE] = _one_stage(_dec_tuple, "tuple")
        decoders[TAG_MESSAGE] = _one_stage(self._dec_message, "message")
        self._decoders = decoders

    # -- encoding

    def _enc_pid(self, enc: cbor2.CBOREncoder, pid: Pid) -> None:
        # Actors send to and carry the same few pids over and over: their
        # bytes are worth remembering.
        data = self._pid_bytes.get(pid)
        if data is None:
            data = cbor2.dumps(cbor2.CBORTag(TAG_PID, [pid.node, pid.id, pid.serial, pid.creation]))
            _remember(self._pid_bytes, pid, data)
        enc.write(data)

    def _lookup(self, name: str) -> type[Any] | None:
        # trioactors' own records (signals, cluster services) live in the
        # default registry; a node given its own registry still needs them.
        cls = self.registry.lookup(name)
        if cls is None and name.startswith("trioactors."):
            cls = DEFAULT_REGISTRY.lookup(name)
        return cls

    def _default(self, enc: cbor2.CBOREncoder, value: Any) -> None:
        name = getattr(type(value), "__trioactors_message__", None)
        if name is None or self._lookup(name) is not type(value):
            _refuse_encode(enc, value)
            return
        fields = {f.name: getattr(value, f.name) for f in attrs.fields(type(value))}
        enc.encode_semantic(TAG_MESSAGE, [name, fields])

    def encode(self, obj: Any) -> bytes:
        """CBOR bytes of `obj`; `NotSerializable` if it holds anything else."""
        try:
            return self._to_bytes(obj)
        except NotSerializable:
            raise
        except _ENCODE_ERRORS as exc:
            _raise_not_serializable(exc)

    def frame_addressed(self, code: int, address: Pid | str, payload: Any, limit: int) -> bytes:
        """The frame of the array ``[code, address, payload]``, the shape of a
        message record: `NotSerializable` as `encode`, or if its body is over
        `limit` bytes (the peer would drop the connection for it).

        The bytes of ``[code, address`` are remembered, as one actor sends to
        the same few addresses again and again: only `payload` is encoded
        each time.
        """
        key = (code, address)
        head = self._heads.get(key)
        if head is None:
            # The array with a None (one byte, 0xf6) in place of the payload.
            head = self.encode([code, address, None])[:-1]
            _remember(self._heads, key, head)
        try:
            tail = self._to_bytes(payload)
        except NotSerializable:
            raise
        except _ENCODE_ERRORS as exc:
            _raise_not_serializable(exc)
        size = len(head) + len(tail)
        if size > limit:
            raise NotSerializable(
                f"message of {size} bytes exceeds max_frame_size ({limit}); "
                "send it in parts or raise the limit on every node"
            )
        return frame_header(size) + head + tail

    # -- decoding

    def _dec_pid(self, value: Any) -> Pid:
        kind = type(value)
        # A tuple when the pid is (part of) a dict key.
        if (kind is list or kind is tuple) and len(value) == 4:
            node, id_, serial, creation = value
            if (
                type(node) is str
                and type(id_) is int
                and type(serial) is int
                and type(creation) is int
                and 0 < len(node) <= _MAX_NODE
                and 0 <= id_ < _U64
                and 0 <= serial < _U64
                and 0 <= creation < _U64
            ):
                key = (node, id_, serial, creation)
                pid = self._pids.get(key)
                if pid is None:
                    pid = Pid(intern_node(node), id_, serial, creation)
                    _remember(self._pids, key, pid)
                return pid
        raise ValueError("malformed pid")

    def _dec_message(self, value: Any) -> Any:
        if not isinstance(value, list | tuple) or len(value) != 2:
            raise ValueError("malformed message record")
        name, fields = value
        cls = self._lookup(name) if isinstance(name, str) else None
        if cls is None:
            raise ValueError(f"unknown message class {name!r}: register it with @ta.message")
        if not isinstance(fields, dict) or not all(isinstance(k, str) for k in fields):
            raise ValueError(f"malformed fields for {name!r}")
        return cls(**fields)

    def decode(self, data: bytes) -> Any:
        """The value in `data`; `ProtocolError` for anything malformed or refused."""
        try:
            return cbor2.loads(
                data,
                semantic_decoders=self._decoders,
                tag_hook=_unknown_tag,
                max_depth=_MAX_DEPTH,
                allow_indefinite=False,
            )
        except (cbor2.CBORDecodeError, ValueError, TypeError, RecursionError) as exc:
            cause = exc.__cause__ or exc
            raise ProtocolError(f"undecodable message: {cause}") from exc


_U64: Final = 2**64
_U32: Final = 2**32
_MAX_NODE: Final = 1024
_MAX_DEPTH: Final = 200
#: Entries kept by each of a codec's memo caches.
_CACHE_SIZE: Final = 4096
_K = TypeVar("_K")
_V = TypeVar("_V")


def _remember(cache: dict[_K, _V], key: _K, value: _V) -> None:
    if len(cache) >= _CACHE_SIZE:
        cache.pop(next(iter(cache)), None)  # the oldest entry
    cache[key] = value


_ENCODE_ERRORS: Final = (cbor2.CBOREncodeError, TypeError, ValueError, RecursionError)


def _raise_not_serializable(exc: Exception) -> NoReturn:
    cause = exc.__cause__
    if isinstance(exc, cbor2.CBOREncodeError) and isinstance(cause, NotSerializable):
        raise cause from None
    raise NotSerializable(f"cannot encode message: {exc}") from exc


def _enc_tuple(enc: cbor2.CBOREncoder, value: tuple[Any, ...]) -> None:
    enc.encode_length(6, TAG_TUPLE)  # major type 6: a tag
    enc.encode_array(value)


def _dec_tuple(value: Any) -> tuple[Any, ...]:
    kind = type(value)
    if kind is list or kind is tuple:
        return tuple(value)
    raise ValueError("malformed tuple")


def _enc_ref(enc: cbor2.CBOREncoder, ref: Ref) -> None:
    enc.encode_length(6, TAG_REF)
    enc.encode_array((ref.node, ref.creation, *ref.ids))


def _dec_ref(value: Any) -> Ref:
    if isinstance(value, list | tuple) and 3 <= len(value) <= 7:
        node, creation, *ids = value
        if (
            type(node) is str
            and 0 < len(node) <= _MAX_NODE
            and type(creation) is int
            and 0 <= creation < _U64
            and all(type(w) is int and 0 <= w < _U32 for w in ids)
        ):
            return Ref(intern_node(node), creation, tuple(ids))
    raise ValueError("malformed ref")


#: Every tag cbor2 would decode natively, refused (never mutated).
_PLAIN_DECODERS: Final[dict[int, Callable[[Any, bool], Any]]] = {
    t: _refuse for t in _CBOR2_BUILTIN_TAGS
}


def _plain_default(encoder: cbor2.CBOREncoder, value: Any) -> None:
    raise NotSerializable(f"{type(value).__qualname__} cannot go in a plain wire record")


def dumps(obj: Any) -> bytes:
    """CBOR bytes of a plain wire value (EPMD and handshake records: None,
    bool, int, float, str, bytes, list, dict); `NotSerializable` otherwise."""
    try:
        return cbor2.dumps(obj, default=_plain_default)
    except NotSerializable:
        raise
    except _ENCODE_ERRORS as exc:
        _raise_not_serializable(exc)


def loads(data: bytes) -> Any:
    """Decode `dumps()` output (every CBOR tag refused); `ProtocolError` for
    anything malformed."""
    try:
        return cbor2.loads(
            data,
            semantic_decoders=_PLAIN_DECODERS,
            tag_hook=_unknown_tag,
            max_depth=_MAX_DEPTH,
            allow_indefinite=False,
        )
    except (cbor2.CBORDecodeError, ValueError, TypeError, RecursionError) as exc:
        cause = exc.__cause__ or exc
        raise ProtocolError(f"undecodable record: {cause}") from exc


# --------------------------------------------------------------------------- records


class Codec(Protocol):
    """Anything that turns values into bytes and back (a `MessageCodec`)."""

    def encode(self, obj: Any) -> bytes:
        """The bytes of `obj`."""

    def decode(self, data: bytes) -> Any:
        """The value in `data`."""


class RecordSet:
    """Compact wire form for a fixed family of frozen attrs records.

    A record travels as the CBOR array ``[code, field1, field2, ...]``: no
    class or field names on the wire, so the per-message overhead of the node
    protocol stays a few bytes. Each record class is registered with its code
    and, per field, the type(s) a decoded value must have (`None` = any value
    the `MessageCodec` accepts), so a hostile peer cannot put a string where a
    pid belongs: `decode` raises `ProtocolError` instead.
    """

    def __init__(self) -> None:
        self._by_code: dict[int, tuple[type[Any], tuple[Any, ...]]] = {}
        self._codes: dict[type[Any], tuple[int, tuple[str, ...]]] = {}

    def register(self, code: int, cls: type[Any], *types: Any) -> None:
        """Give attrs class `cls` the wire `code`; `types` lists, per field in
        declaration order, the accepted type (or tuple of types, or None)."""
        names = tuple(f.name for f in attrs.fields(cls))
        if len(names) != len(types):
            raise TypeError(f"{cls.__qualname__}: {len(names)} fields but {len(types)} types")
        if code in self._by_code or cls in self._codes:
            raise ValueError(f"record code {code} or class {cls.__qualname__} registered twice")
        self._by_code[code] = (cls, types)
        self._codes[cls] = (code, names)

    def encode(self, codec: Codec, record: Any) -> bytes:
        """CBOR bytes of `record`; `NotSerializable` if a field cannot cross nodes."""
        code, names = self._codes[type(record)]
        return codec.encode([code, *[getattr(record, n) for n in names]])

    def frame(self, codec: Codec, record: Any) -> bytes:
        """`encode` behind its frame header, ready for the socket."""
        return encode_frame(self.encode(codec, record))

    def code_of(self, cls: type[Any]) -> int:
        """The wire code of record class `cls`."""
        return self._codes[cls][0]

    def frame_fields(self, codec: Codec, cls: type[Any], *fields: Any) -> bytes:
        """The frame of a `cls` record with `fields`, without building the record
        (the hot path of message sends)."""
        return encode_frame(codec.encode([self._codes[cls][0], *fields]))

    def decode(self, codec: Codec, data: bytes) -> Any:
        """The record in `data`; `ProtocolError` for anything malformed."""
        return self.from_value(codec.decode(data))

    def from_value(self, value: Any) -> Any:
        """The record of an already decoded ``[code, fields...]`` value."""
        if not isinstance(value, list) or not value or type(value[0]) is not int:
            raise ProtocolError("malformed record: expected [code, fields...]")
        entry = self._by_code.get(value[0])
        if entry is None:
            raise ProtocolError(f"unknown record code {value[0]!r}")
        cls, types = entry
        fields = value[1:]
        if len(fields) != len(types):
            raise ProtocolError(f"{cls.__name__}: expected {len(types)} fields, got {len(fields)}")
        for field, typ in zip(fields, types, strict=True):
            if typ is not None and not isinstance(field, typ):
                raise ProtocolError(f"{cls.__name__}: unexpected {type(field).__name__} field")
        return cls(*fields)
