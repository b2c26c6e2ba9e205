"""CBOR encoding and length-prefixed framing: the one place bytes are made.

Frames are a 4-byte big-endian length followed by one CBOR item. The framing
here is sans-IO (h11's lesson): `FrameDecoder` takes bytes and yields frame
bodies, so the EPMD daemon, its client, node connections and the tests share
one parser and every rule is testable without a socket.

Messages between nodes are CBOR with a few private tags: Pid, Ref, tuple and
classes registered with `@message("app.Name")`. Nothing else is accepted in
either direction: cbor2's own semantic tags (datetimes, regexes, decimals...)
are refused on decode so bytes from the network can only ever build plain
data, pids, refs and the attrs classes the application registered.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from typing import Any, Final, TypeVar

import attrs
import cbor2

from .errors import FrameTooLarge, NotSerializable, ProtocolError
from .pid import LOCAL_NODE, Pid, Ref

__all__ = [
    "DEFAULT_MAX_FRAME_SIZE",
    "DEFAULT_REGISTRY",
    "FrameDecoder",
    "MessageCodec",
    "MessageRegistry",
    "dumps",
    "encode_frame",
    "loads",
    "message",
]

DEFAULT_MAX_FRAME_SIZE: Final = 16 * 1024 * 1024

_HEADER = struct.Struct(">I")

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


# --------------------------------------------------------------------------- framing


def encode_frame(body: bytes) -> bytes:
    """`body` behind its 4-byte big-endian length."""
    return _HEADER.pack(len(body)) + body


class FrameDecoder:
    """Sans-IO splitter of a byte stream into frame bodies.

    `feed()` bytes as they arrive, then iterate to get every complete body.
    A length above `max_size` raises `FrameTooLarge` as soon as the 4 header
    bytes are in, before any of the body is buffered.
    """

    __slots__ = ("_buf", "_need", "max_size")

    def __init__(self, max_size: int = DEFAULT_MAX_FRAME_SIZE) -> None:
        self.max_size = max_size
        self._buf = bytearray()
        self._need = -1  # body length of the frame being read, -1 = header pending

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as a frame."""
        return len(self._buf)

    def feed(self, data: bytes) -> None:
        """Add bytes received from the peer."""
        self._buf += data

    def next_frame(self) -> bytes | None:
        """The next complete frame body, or None until more bytes arrive."""
        buf = self._buf
        if self._need < 0:
            if len(buf) < 4:
                return None
            (size,) = _HEADER.unpack_from(buf)
            if size > self.max_size:
                raise FrameTooLarge(size, self.max_size)
            self._need = size
        need = self._need
        if len(buf) < 4 + need:
            return None
        body = bytes(buf[4 : 4 + need])
        del buf[: 4 + need]
        self._need = -1
        return body

    def __iter__(self) -> Iterator[bytes]:
        while (body := self.next_frame()) is not None:
            yield body

    def detach(self) -> bytes:
        """Hand over every buffered byte (starting at a frame boundary) and
        empty the decoder: a protocol switching parsers mid-stream (a handshake
        followed by node traffic) passes the rest on without losing a byte."""
        data = bytes(self._buf)
        self._buf.clear()
        self._need = -1
        return data


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

    Pids travel with real node ids: a local pid (`node == 0`) is written with
    `local_node_id`, and a pid carrying `local_node_id` is read back as local,
    so pids can be passed around the cluster and replied to from anywhere.
    The serial (incarnation) travels as it is.
    """

    def __init__(self, local_node_id: int, registry: MessageRegistry | None = None) -> None:
        self.local_node_id = local_node_id
        self.registry = registry or DEFAULT_REGISTRY
        encoders: dict[type[Any], Callable[[cbor2.CBOREncoder, Any], Any]] = {
            t: _refuse_encode for t in _rich_types()
        }
        encoders[tuple] = self._enc_tuple
        encoders[Pid] = self._enc_pid
        encoders[Ref] = self._enc_ref
        self._encoders = encoders
        decoders: dict[int, Callable[[Any, bool], Any]] = {t: _refuse for t in _CBOR2_BUILTIN_TAGS}
        decoders[TAG_PID] = self._dec_pid
        decoders[TAG_REF] = self._dec_ref
        decoders[TAG_TUPLE] = self._dec_tuple
        decoders[TAG_MESSAGE] = self._dec_message
        self._decoders = decoders

    # -- encoding

    def _enc_tuple(self, enc: cbor2.CBOREncoder, value: tuple[Any, ...]) -> None:
        enc.encode_semantic(TAG_TUPLE, list(value))

    def _enc_pid(self, enc: cbor2.CBOREncoder, pid: Pid) -> None:
        node = pid.node or self.local_node_id
        enc.encode_semantic(TAG_PID, [node, pid.id, pid.serial])

    def _enc_ref(self, enc: cbor2.CBOREncoder, ref: Ref) -> None:
        node = ref.node or self.local_node_id
        enc.encode_semantic(TAG_REF, [node, ref.id, ref.serial])

    def _default(self, enc: cbor2.CBOREncoder, value: Any) -> None:
        name = getattr(type(value), "__trioactors_message__", None)
        if name is None or self.registry.lookup(name) is not type(value):
            _refuse_encode(enc, value)
            return
        fields = {f.name: getattr(value, f.name) for f in attrs.fields(type(value))}
        enc.encode_semantic(TAG_MESSAGE, [name, fields])

    def encode(self, obj: Any) -> bytes:
        """CBOR bytes of `obj`; `NotSerializable` if it holds anything else."""
        try:
            return cbor2.dumps(obj, encoders=self._encoders, default=self._default)
        except NotSerializable:
            raise
        except cbor2.CBOREncodeError as exc:
            cause = exc.__cause__
            if isinstance(cause, NotSerializable):
                raise cause from None
            raise NotSerializable(f"cannot encode message: {exc}") from exc
        except (TypeError, ValueError, RecursionError) as exc:
            raise NotSerializable(f"cannot encode message: {exc}") from exc

    # -- decoding

    def _ids(self, value: Any) -> tuple[int, int, int]:
        if (
            not isinstance(value, list | tuple)
            or len(value) != 3
            or not all(type(v) is int and 0 <= v < 2**64 for v in value)
        ):
            raise ValueError("malformed pid/ref")
        return value[0], value[1], value[2]

    def _dec_pid(self, value: Any, immutable: bool) -> Pid:
        node, id_, serial = self._ids(value)
        return Pid(LOCAL_NODE if node == self.local_node_id else node, id_, serial)

    def _dec_ref(self, value: Any, immutable: bool) -> Ref:
        node, id_, serial = self._ids(value)
        return Ref(LOCAL_NODE if node == self.local_node_id else node, id_, serial)

    def _dec_tuple(self, value: Any, immutable: bool) -> tuple[Any, ...]:
        if not isinstance(value, list | tuple):
            raise ValueError("malformed tuple")
        return tuple(value)

    def _dec_message(self, value: Any, immutable: bool) -> Any:
        if not isinstance(value, list | tuple) or len(value) != 2:
            raise ValueError("malformed message record")
        name, fields = value
        cls = self.registry.lookup(name) if isinstance(name, str) else None
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
                max_depth=200,
                allow_indefinite=False,
            )
        except (cbor2.CBORDecodeError, ValueError, TypeError, RecursionError) as exc:
            cause = exc.__cause__ or exc
            raise ProtocolError(f"undecodable message: {cause}") from exc


# A codec for records that carry no pids of a particular node (EPMD, handshakes).
_PLAIN: Final = MessageCodec(local_node_id=0)


def dumps(obj: Any) -> bytes:
    """CBOR bytes of a plain wire value (tuples, pids and refs kept as they are)."""
    return _PLAIN.encode(obj)


def loads(data: bytes) -> Any:
    """Decode `dumps()` output; `ProtocolError` for anything malformed."""
    return _PLAIN.decode(data)


# --------------------------------------------------------------------------- records


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

    def encode(self, codec: MessageCodec, record: Any) -> bytes:
        """CBOR bytes of `record`; `NotSerializable` if a field cannot cross nodes."""
        code, names = self._codes[type(record)]
        return codec.encode([code, *[getattr(record, n) for n in names]])

    def frame(self, codec: MessageCodec, record: Any) -> bytes:
        """`encode` behind its frame header, ready for the socket."""
        return encode_frame(self.encode(codec, record))

    def code_of(self, cls: type[Any]) -> int:
        """The wire code of record class `cls`."""
        return self._codes[cls][0]

    def frame_fields(self, codec: MessageCodec, cls: type[Any], *fields: Any) -> bytes:
        """The frame of a `cls` record with `fields`, without building the record
        (the hot path of message sends)."""
        return encode_frame(codec.encode([self._codes[cls][0], *fields]))

    def decode(self, codec: MessageCodec, data: bytes) -> Any:
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
