"""Erlang's EPMD wire protocol, sans-IO, as OTP 25's `epmd` speaks it.

Every request is a 2-byte big-endian length and that many bytes, the first
of which is the request tag. `epmd` answers one request per connection and
closes it, except after ALIVE2_REQ: that connection stays open as long as the
node is registered, and closing it (or sending anything more on it)
unregisters the node.

The limits below are epmd's own (erts/epmd/src/epmd_int.h): a request of
length 0 or of `INBUF_SIZE - 2` bytes or more is refused before its body is
read, node names are 1..255 characters of valid UTF-8 (up to `MAXSYMLEN`
bytes) without NUL, the extra field is at most `MAXSYMLEN` bytes.

trioactors nodes registered through ALIVE2 mark themselves in the extra
field: ``b"trioactors/"`` followed by the decimal trioactors distribution
protocol version (e.g. ``b"trioactors/2"``), then, for a node whose full name
differs from the registered one (``alpha@h2`` registered as ``alpha``), a
space and that full name: ``b"trioactors/2 alpha@h2"``; see
`trioactors_extra`, `parse_trioactors_extra` and `parse_trioactors_node`.
Erlang nodes send an empty extra field and ignore other nodes' (OTP 25
neither reads nor checks it), so the marker is how a trioactors node tells
its kind apart from an Erlang node's in a PORT2_RESP.

This module only turns bytes into request records and records into bytes;
the daemon (`server.py`) and the client (`client.py`) do the I/O.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from typing import Final

import attrs

from ..errors import ProtocolError

__all__ = [
    "ALIVE2_REQ",
    "ALIVE2_RESP",
    "ALIVE2_X_RESP",
    "DUMP_REQ",
    "INBUF_SIZE",
    "KILL_REQ",
    "MAXSYMLEN",
    "NAMES_REQ",
    "NODE_TYPE_HIDDEN",
    "NODE_TYPE_NORMAL",
    "PORT2_NOT_FOUND",
    "PORT2_REQ",
    "PORT2_RESP",
    "STOP_REQ",
    "TRIOACTORS_EXTRA_PREFIX",
    "Alive2Req",
    "DumpReq",
    "ErlangNodeFields",
    "ErlangRequest",
    "ErlangRequestParser",
    "KillReq",
    "NamesReq",
    "Port2Req",
    "Port2Result",
    "StopReq",
    "alive2_refusal",
    "encode_alive2_req",
    "encode_alive2_resp",
    "encode_dump_line",
    "encode_names_header",
    "encode_names_line",
    "encode_port2_req",
    "encode_port2_resp",
    "encode_request",
    "names_response",
    "parse_alive2_resp",
    "parse_names_resp",
    "parse_port2_resp",
    "parse_request",
    "parse_trioactors_extra",
    "parse_trioactors_node",
    "trioactors_extra",
    "valid_node_name",
]

ALIVE2_REQ: Final = 120  # 'x'
ALIVE2_RESP: Final = 121  # 'y': 16-bit creation, answers highvsn < 6
ALIVE2_X_RESP: Final = 118  # 'v': 32-bit creation, answers highvsn >= 6
PORT2_REQ: Final = 122  # 'z'
PORT2_RESP: Final = 119  # 'w'
NAMES_REQ: Final = 110  # 'n'
DUMP_REQ: Final = 100  # 'd'
KILL_REQ: Final = 107  # 'k'
STOP_REQ: Final = 115  # 's'

NODE_TYPE_NORMAL: Final = 77  # an Erlang node
NODE_TYPE_HIDDEN: Final = 72  # a hidden node (C node, or a trioactors node)

MAXSYMLEN: Final = 255 * 4  # bytes: 255 characters of UTF-8
INBUF_SIZE: Final = 3 * MAXSYMLEN  # epmd's read buffer; bounds the request size
MAX_NAME_CHARS: Final = 255
ERROR_CREATION: Final = 99  # what epmd puts in a refused ALIVE2 response

#: How the extra field of a trioactors node's ALIVE2_REQ starts.
TRIOACTORS_EXTRA_PREFIX: Final = b"trioactors/"

_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")


@attrs.frozen
class ErlangNodeFields:
    """What an Erlang node told EPMD about itself in ALIVE2_REQ."""

    node_type: int = NODE_TYPE_HIDDEN
    protocol: int = 0  # 0 = TCP/IPv4
    highest_version: int = 6
    lowest_version: int = 5
    extra: bytes = b""


def trioactors_extra(protocol_version: int, node: str | None = None) -> bytes:
    """The ALIVE2 extra field marking a trioactors node of `protocol_version`,
    with its full `node` name when given (left out if it would not fit)."""
    marker = TRIOACTORS_EXTRA_PREFIX + str(protocol_version).encode("ascii")
    if node:
        longer = marker + b" " + node.encode("utf-8")
        if len(longer) <= MAXSYMLEN:
            return longer
    return marker


def _split_marker(extra: bytes) -> tuple[int, str | None] | None:
    if not extra.startswith(TRIOACTORS_EXTRA_PREFIX):
        return None
    digits, space, node = extra[len(TRIOACTORS_EXTRA_PREFIX) :].partition(b" ")
    if not digits or len(digits) > 10 or not digits.isdigit():
        return None
    if not space:
        return int(digits), None
    try:
        text = node.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if not text or not text.isprintable() or " " in text:
        return None
    return int(digits), text


def parse_trioactors_extra(extra: bytes) -> int | None:
    """The protocol version in a trioactors marker; None for anything else
    (an Erlang node's empty extra field, or another tool's)."""
    marker = _split_marker(extra)
    return None if marker is None else marker[0]


def parse_trioactors_node(extra: bytes) -> str | None:
    """The full node name in a trioactors marker, if it carries one."""
    marker = _split_marker(extra)
    return None if marker is None else marker[1]


# --------------------------------------------------------------------------- requests


@attrs.frozen
class Alive2Req:
    """ALIVE2_REQ: register `name` (raw bytes, validated by the registry)."""

    port: int
    node_type: int
    protocol: int
    highest_version: int
    lowest_version: int
    name: bytes
    extra: bytes

    @property
    def fields(self) -> ErlangNodeFields:
        """The node's Erlang fields as stored by the daemon."""
        return ErlangNodeFields(
            self.node_type, self.protocol, self.highest_version, self.lowest_version, self.extra
        )


@attrs.frozen
class Port2Req:
    """PORT_PLEASE2_REQ: where does `name` listen?"""

    name: str


@attrs.frozen
class NamesReq:
    """NAMES_REQ: list every registered name and port."""


@attrs.frozen
class DumpReq:
    """DUMP_REQ: list registered and remembered names (loopback peers only)."""


@attrs.frozen
class KillReq:
    """KILL_REQ: stop the daemon, refused with "NO" while names are registered."""


@attrs.frozen
class StopReq:
    """STOP_REQ: forcibly unregister `name` (needs relaxed command checking)."""

    name: bytes


ErlangRequest = Alive2Req | Port2Req | NamesReq | DumpReq | KillReq | StopReq


def valid_node_name(raw: bytes) -> str | None:
    """The name if `raw` is 1..255 characters of valid UTF-8 without NUL, else None."""
    if not raw or b"\x00" in raw or len(raw) > MAXSYMLEN:
        return None
    try:
        name = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return name if len(name) <= MAX_NAME_CHARS else None


def alive2_refusal(req: Alive2Req) -> str | None:
    """Why epmd would answer this ALIVE2_REQ with an error (before the name-taken
    check), or None when the request is acceptable.

    epmd accepts an empty name here (it only checks the length and encoding),
    and so do we: the registry compares names exactly as epmd does.
    """
    if len(req.name) > MAXSYMLEN:
        return f"node name is too long ({len(req.name)} bytes)"
    try:
        name = req.name.decode("utf-8")
    except UnicodeDecodeError:
        return "invalid node name encoding"
    if len(name) > MAX_NAME_CHARS:
        return f"node name is too long ({len(name)} characters)"
    if len(req.extra) > MAXSYMLEN:
        return f"extra data is too long ({len(req.extra)} bytes)"
    return None


def parse_request(body: bytes) -> ErlangRequest:
    """The request in one packet body (without its length header).

    Raises `ProtocolError` for every packet epmd drops without an answer:
    unknown tags, truncated fields, NUL in a name, invalid PORT2 names.
    """
    if not body:
        raise ProtocolError("empty request")
    tag = body[0]
    if tag == ALIVE2_REQ:
        return _parse_alive2(body)
    if tag == PORT2_REQ:
        raw = body[1:]
        if raw.endswith(b"\x00"):  # tolerated, as epmd does
            raw = raw[:-1]
        if not raw:
            raise ProtocolError("packet too small for PORT2_REQ")
        if b"\x00" in raw:
            raise ProtocolError("node name contains NUL in PORT2_REQ")
        name = valid_node_name(raw)
        if name is None:
            raise ProtocolError("invalid node name in PORT2_REQ")
        return Port2Req(name)
    if tag == NAMES_REQ:
        return NamesReq()
    if tag == DUMP_REQ:
        return DumpReq()
    if tag == KILL_REQ:
        return KillReq()
    if tag == STOP_REQ:
        if len(body) <= 1:
            raise ProtocolError("packet too small for STOP_REQ")
        # epmd reads the name as a C string: it ends at the first NUL.
        return StopReq(body[1:].split(b"\x00", 1)[0])
    raise ProtocolError(f"unknown request tag {tag}")


def _parse_alive2(body: bytes) -> Alive2Req:
    size = len(body)
    if size <= 13:
        raise ProtocolError(f"packet too small for ALIVE2_REQ ({size} bytes)")
    port, node_type, protocol, high, low, namelen = struct.unpack_from(">HBBHHH", body, 1)
    if namelen + 13 > size:
        raise ProtocolError("node name size error in ALIVE2_REQ")
    (extralen,) = _U16.unpack_from(body, 11 + namelen)
    if extralen + namelen + 13 > size:
        raise ProtocolError("extra info size error in ALIVE2_REQ")
    name = body[11 : 11 + namelen]
    if b"\x00" in name:
        raise ProtocolError("node name contains NUL in ALIVE2_REQ")
    extra = body[13 + namelen : 13 + namelen + extralen]
    return Alive2Req(port, node_type, protocol, high, low, name, extra)


class ErlangRequestParser:
    """Sans-IO reader of the one request an Erlang EPMD connection carries.

    `feed()` bytes; `request()` returns the request once it is complete, or
    None while more bytes are needed. `ProtocolError` for a bad length (0, or
    too large: checked as soon as the 2 length bytes are in, before the body
    is buffered), for bytes beyond the announced length, and for a malformed
    body.
    """

    __slots__ = ("_buf", "_want")

    def __init__(self) -> None:
        self._buf = bytearray()
        self._want = -1

    @property
    def buffered(self) -> int:
        """Bytes received so far."""
        return len(self._buf)

    def feed(self, data: bytes) -> None:
        """Add bytes received from the peer; refuses a bad length at once."""
        self._buf += data
        if self._want < 0 and len(self._buf) >= 2:
            (size,) = _U16.unpack_from(self._buf)
            if size < 1 or size + 2 >= INBUF_SIZE:
                raise ProtocolError(f"invalid packet size ({size})")
            self._want = size
        if self._want >= 0 and len(self._buf) > self._want + 2:
            raise ProtocolError(f"got {len(self._buf) - 2} bytes in packet, expected {self._want}")

    def request(self) -> ErlangRequest | None:
        """The complete request, or None until all its bytes are in."""
        if self._want < 0 or len(self._buf) < self._want + 2:
            return None
        return parse_request(bytes(self._buf[2:]))


# --------------------------------------------------------------------------- responses (daemon)


def encode_alive2_resp(ok: bool, creation: int, highest_version: int) -> bytes:
    """ALIVE2_X_RESP (32-bit creation) for highvsn >= 6, else ALIVE2_RESP."""
    result = 0 if ok else 1
    if not ok:
        creation = ERROR_CREATION
    if highest_version >= 6:
        return bytes((ALIVE2_X_RESP, result)) + _U32.pack(creation & 0xFFFFFFFF)
    return bytes((ALIVE2_RESP, result)) + _U16.pack(creation & 0xFFFF)


def encode_port2_resp(name: str, port: int, fields: ErlangNodeFields | None) -> bytes:
    """PORT2_RESP for a found node; the extra field is returned exactly."""
    f = fields or ErlangNodeFields()
    raw = name.encode("utf-8")
    return (
        struct.pack(
            ">BBHBBHHH",
            PORT2_RESP,
            0,
            port & 0xFFFF,
            f.node_type & 0xFF,
            f.protocol & 0xFF,
            f.highest_version & 0xFFFF,
            f.lowest_version & 0xFFFF,
            len(raw),
        )
        + raw
        + _U16.pack(len(f.extra))
        + f.extra
    )


PORT2_NOT_FOUND: Final = bytes((PORT2_RESP, 1))


def encode_names_header(daemon_port: int) -> bytes:
    """The 4-byte daemon port that starts NAMES and DUMP responses."""
    return _U32.pack(daemon_port & 0xFFFFFFFF)


def encode_names_line(name: str, port: int) -> bytes:
    """One NAMES line, exactly as epmd prints it (parsed by net_adm:names/0)."""
    return b"name " + name.encode("utf-8") + f" at port {port}\n".encode()


def encode_dump_line(name: str, port: int, fd: int, *, active: bool) -> bytes:
    """One DUMP line; epmd sends each with its terminating NUL."""
    raw = name.encode("utf-8")
    if active:
        return b"active name     <" + raw + f"> at port {port}, fd = {fd}\n\x00".encode()
    return b"old/unused name <" + raw + f">, port = {port}, fd = {fd} \n\x00".encode()


# --------------------------------------------------------------------------- client side


def encode_request(body: bytes) -> bytes:
    """`body` behind its 2-byte length."""
    if not 0 < len(body) < INBUF_SIZE - 2:
        raise ValueError(f"EPMD request of {len(body)} bytes is out of range")
    return _U16.pack(len(body)) + body


def encode_alive2_req(name: str, port: int, fields: ErlangNodeFields | None = None) -> bytes:
    """A complete ALIVE2_REQ packet (length included)."""
    f = fields or ErlangNodeFields()
    raw = name.encode("utf-8")
    body = (
        struct.pack(
            ">BHBBHHH",
            ALIVE2_REQ,
            port,
            f.node_type,
            f.protocol,
            f.highest_version,
            f.lowest_version,
            len(raw),
        )
        + raw
        + _U16.pack(len(f.extra))
        + f.extra
    )
    return encode_request(body)


def encode_port2_req(name: str) -> bytes:
    """A complete PORT_PLEASE2_REQ packet."""
    return encode_request(bytes((PORT2_REQ,)) + name.encode("utf-8"))


def parse_alive2_resp(data: bytes) -> tuple[bool, int] | None:
    """(ok, creation) from an ALIVE2_RESP/ALIVE2_X_RESP, or None if incomplete."""
    if not data:
        return None
    if data[0] == ALIVE2_X_RESP:
        if len(data) < 6:
            return None
        return data[1] == 0, _U32.unpack_from(data, 2)[0]
    if data[0] == ALIVE2_RESP:
        if len(data) < 4:
            return None
        return data[1] == 0, _U16.unpack_from(data, 2)[0]
    raise ProtocolError(f"unexpected ALIVE2 response tag {data[0]}")


@attrs.frozen
class Port2Result:
    """A decoded PORT2_RESP for a found node."""

    name: str
    port: int
    fields: ErlangNodeFields


def parse_port2_resp(data: bytes) -> Port2Result | None:
    """Decode a complete PORT2_RESP (the daemon closes after it).

    None when the node is not registered; `ProtocolError` when malformed.
    """
    if len(data) < 2 or data[0] != PORT2_RESP:
        raise ProtocolError("malformed PORT2_RESP")
    if data[1] != 0:
        return None
    if len(data) < 12:
        raise ProtocolError("truncated PORT2_RESP")
    port, node_type, protocol, high, low, nlen = struct.unpack_from(">HBBHHH", data, 2)
    if len(data) < 14 + nlen:
        raise ProtocolError("truncated PORT2_RESP")
    try:
        name = data[12 : 12 + nlen].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProtocolError("PORT2_RESP name is not UTF-8") from exc
    (elen,) = _U16.unpack_from(data, 12 + nlen)
    extra = data[14 + nlen : 14 + nlen + elen]
    if len(extra) != elen:
        raise ProtocolError("truncated PORT2_RESP")
    return Port2Result(name, port, ErlangNodeFields(node_type, protocol, high, low, extra))


def parse_names_resp(data: bytes) -> tuple[int, list[tuple[str, int]]]:
    """(daemon port, [(name, port)]) from a complete NAMES response.

    Lines that are not `name N at port P` are skipped, as net_adm:names/0 does.
    """
    if len(data) < 4:
        raise ProtocolError("truncated NAMES response")
    (daemon_port,) = _U32.unpack_from(data, 0)
    found: list[tuple[str, int]] = []
    for line in data[4:].split(b"\n"):
        if not line.startswith(b"name ") or b" at port " not in line:
            continue
        raw, _, port_text = line[5:].rpartition(b" at port ")
        try:
            found.append((raw.decode("utf-8"), int(port_text)))
        except (UnicodeDecodeError, ValueError):
            continue
    return daemon_port, found


def names_response(daemon_port: int, nodes: Iterable[tuple[str, int]]) -> bytes:
    """A whole NAMES response (header and lines)."""
    return encode_names_header(daemon_port) + b"".join(encode_names_line(n, p) for n, p in nodes)
