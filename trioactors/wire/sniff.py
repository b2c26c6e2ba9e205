"""What protocol a peer speaks, judged from the first bytes it sent us.

A trioactors listener expects a node handshake: a 4-byte frame length and
then a CBOR `Hello` record. Other clients dial node ports too: an Erlang node
after an EPMD lookup, a TLS client, a browser, an EPMD client sent to the
wrong port. Their first bytes read as an absurd frame length, and the user
gets "frame of 1265152 bytes exceeds the maximum", which says nothing about
what went wrong. `identify_peer` names the protocol instead, and `describe`
gives the line to log, such as "an Erlang node ('e1@host') dialled us ...".
"""

from __future__ import annotations

import enum
import struct
from typing import Final

import attrs

__all__ = ["SNIFF_BYTES", "PeerProtocol", "Sniffed", "identify_peer"]

#: Enough bytes to tell every protocol below apart (the longest check reads
#: an Erlang send_name up to the start of the name).
SNIFF_BYTES: Final = 17

_HANDSHAKE_MAX_FRAME: Final = 4096  # mirrors wire.handshake (not imported: no cbor here)
_HTTP_METHODS: Final = (b"GET ", b"POST", b"PUT ", b"HEAD", b"DELE", b"OPTI", b"PATC", b"CONN")
_EPMD_REQUESTS: Final = {
    120: "ALIVE2_REQ",
    122: "PORT_PLEASE2_REQ",
    110: "NAMES_REQ",
    100: "DUMP_REQ",
}


class PeerProtocol(enum.Enum):
    """The protocol `identify_peer` recognised."""

    TRIOACTORS = "trioactors"
    ERLANG_DIST = "erlang-dist"
    TLS = "tls"
    HTTP = "http"
    EPMD = "epmd"
    UNKNOWN = "unknown"
    #: Too few bytes to tell yet: read more (up to `SNIFF_BYTES`) and ask again.
    INCOMPLETE = "incomplete"


@attrs.frozen
class Sniffed:
    """The verdict on a connection's first bytes."""

    protocol: PeerProtocol
    #: Erlang: the node name from the send_name (when it is complete).
    #: EPMD: the request name.
    detail: str | None = None

    def describe(self, listener: str = "this node") -> str:
        """A log line for a connection that did not speak our protocol."""
        if self.protocol is PeerProtocol.ERLANG_DIST:
            who = f" ({self.detail!r})" if self.detail else ""
            return (
                f"an Erlang node{who} dialled {listener} (Erlang distribution handshake); "
                "trioactors nodes speak their own protocol here, so the connection is closed"
            )
        if self.protocol is PeerProtocol.TLS:
            return (
                f"a TLS client dialled {listener}, which does not use TLS here; "
                "connect without TLS or give the node a TLS listener"
            )
        if self.protocol is PeerProtocol.HTTP:
            return f"an HTTP client dialled {listener}, a trioactors node port, not a web server"
        if self.protocol is PeerProtocol.EPMD:
            return (
                f"an EPMD client ({self.detail}) dialled {listener}; "
                "point it at the EPMD port (4369 unless configured) instead"
            )
        if self.protocol is PeerProtocol.TRIOACTORS:
            return f"a trioactors node dialled {listener}"
        if self.protocol is PeerProtocol.INCOMPLETE:
            return f"a peer dialled {listener} and sent too few bytes to identify"
        return f"a peer dialled {listener} speaking an unknown protocol"


def _erlang_name(data: bytes, size: int) -> Sniffed | None:
    """An Erlang send_name: 'N' (version 6) or 'n' (version 5) after a 2-byte length."""
    tag = data[2:3]
    if tag == b"N":
        # 'N' flags:8 creation:4 nlen:2 name; the length must add up.
        if size < 15:
            return None
        if len(data) < 17:
            return Sniffed(PeerProtocol.INCOMPLETE)
        (nlen,) = struct.unpack_from(">H", data, 15)
        if size != 15 + nlen:
            return None
        name = data[17 : 17 + nlen]
    elif tag == b"n":
        # 'n' version:2 flags:4 name; version is 5 since R6B.
        if size < 8:
            return None
        if len(data) < 5:
            return Sniffed(PeerProtocol.INCOMPLETE)
        if data[3:5] != b"\x00\x05":
            return None
        name = data[9 : 2 + size]
        nlen = size - 7
    else:
        return None
    text = name.decode("utf-8", "replace") if len(name) == nlen else None
    return Sniffed(PeerProtocol.ERLANG_DIST, text)


def identify_peer(data: bytes) -> Sniffed:
    """Which protocol `data` (the first bytes from a peer) belongs to.

    Returns `PeerProtocol.INCOMPLETE` while the bytes cannot tell yet. The
    Erlang node name is filled in once the whole send_name has arrived.
    """
    if len(data) < 2:
        return Sniffed(PeerProtocol.INCOMPLETE)
    if data[0] == 0x16 and data[1] == 0x03:
        # TLS record: handshake (22), version 3.x, 2-byte length, ClientHello (1).
        if len(data) < 6:
            return Sniffed(PeerProtocol.INCOMPLETE)
        if data[2] <= 4 and data[5] == 1:
            return Sniffed(PeerProtocol.TLS)
        return Sniffed(PeerProtocol.UNKNOWN)
    if data[:4].upper() in _HTTP_METHODS or (len(data) < 4 and data[:2].isalpha()):
        if len(data) < 4:
            return Sniffed(PeerProtocol.INCOMPLETE)
        return Sniffed(PeerProtocol.HTTP)
    if len(data) < 3:
        return Sniffed(PeerProtocol.INCOMPLETE)
    (size,) = struct.unpack_from(">H", data)
    if size:
        erlang = _erlang_name(data, size)
        if erlang is not None:
            return erlang
        request = _EPMD_REQUESTS.get(data[2])
        if request is not None:
            return Sniffed(PeerProtocol.EPMD, request)
        return Sniffed(PeerProtocol.UNKNOWN)
    # A trioactors Hello: a small 4-byte length, then the CBOR array
    # [1, version, name, creation] (0x84 = array of 4, 0x01 = record code 1).
    if len(data) < 6:
        return Sniffed(PeerProtocol.INCOMPLETE)
    (frame,) = struct.unpack_from(">I", data)
    if 0 < frame <= _HANDSHAKE_MAX_FRAME and data[4] == 0x84 and data[5] == 0x01:
        return Sniffed(PeerProtocol.TRIOACTORS)
    return Sniffed(PeerProtocol.UNKNOWN)
