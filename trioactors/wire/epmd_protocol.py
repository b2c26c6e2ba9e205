"""One daemon port, two protocols: which one a connection speaks, sans-IO.

The rule: a connection whose first two bytes are ``b"TA"`` speaks the native
protocol (`native.py`) and must go on with the rest of the 8-byte preamble
``b"TAEPMD" + u16 version``. Anything else is Erlang's EPMD protocol
(`erlang.py`). The rule cannot misread a valid Erlang request: Erlang's first
two bytes are the request length, and ``b"TA"`` reads as 21569 bytes, far above
the largest request epmd accepts (`erlang.INBUF_SIZE` - 3 = 3057), so a real
epmd closes such a connection without an answer (which is how the client
detects a real epmd).

`ServerConnection` is the daemon's whole per-connection parser: feed it bytes,
take events out; `ProtocolError` means close this connection (and only it).
"""

from __future__ import annotations

from typing import Final

import attrs

from ..errors import ProtocolError
from .epmd_erlang import ErlangRequest, ErlangRequestParser
from .epmd_native import (
    MAGIC,
    MAX_REQUEST_SIZE,
    PREAMBLE_SIZE,
    KeepAlive,
    ListNodes,
    Lookup,
    NativeParser,
    NativeRequest,
    Ping,
    Register,
    Unregister,
    parse_preamble,
)

__all__ = [
    "ERLANG",
    "NATIVE",
    "NATIVE_REQUESTS",
    "NativeHello",
    "ServerConnection",
    "ServerEvent",
    "detect_protocol",
]

NATIVE: Final = "native"
ERLANG: Final = "erlang"

NATIVE_REQUESTS: Final = (Register, Unregister, Lookup, ListNodes, Ping, KeepAlive)


def detect_protocol(prefix: bytes) -> str | None:
    """`NATIVE`, `ERLANG`, or None until 2 bytes are in."""
    if len(prefix) < 2:
        return None
    return NATIVE if prefix[:2] == MAGIC[:2] else ERLANG


@attrs.frozen
class NativeHello:
    """A native client opened the connection with protocol `version`."""

    version: int


ServerEvent = NativeHello | NativeRequest | ErlangRequest


class ServerConnection:
    """Sans-IO state of one daemon connection.

    `feed()` received bytes, then `events()` returns what they completed: a
    `NativeHello` then native requests, or exactly one Erlang request. An
    Erlang connection carries one request; bytes after it raise
    `ProtocolError` (for an ALIVE2 connection that means: unregister).
    """

    __slots__ = ("_buf", "_done", "_erlang", "_native", "protocol")

    def __init__(self, max_request_size: int = MAX_REQUEST_SIZE) -> None:
        self.protocol: str | None = None
        self._buf = bytearray()
        self._erlang: ErlangRequestParser | None = None
        self._native = NativeParser(max_request_size)
        self._done = False

    @property
    def buffered(self) -> int:
        """Bytes received that did not complete an event yet."""
        if self._erlang is not None:
            return 0 if self._done else self._erlang.buffered
        if self.protocol == NATIVE and not self._buf:
            return self._native.buffered
        return len(self._buf)

    def feed(self, data: bytes) -> None:
        """Add bytes received from the peer; `ProtocolError` if they break the protocol."""
        if self._done:
            if data:
                raise ProtocolError(f"got {len(data)} bytes more than expected")
            return
        if self.protocol == NATIVE and not self._buf:
            self._native.feed(data)
            return
        if self._erlang is not None:
            self._erlang.feed(data)
            return
        self._buf += data
        if self.protocol is None:
            self.protocol = detect_protocol(bytes(self._buf[:2]))
            if self.protocol == ERLANG:
                self._erlang = ErlangRequestParser()
                buf, self._buf = bytes(self._buf), bytearray()
                self._erlang.feed(buf)
        if self.protocol == NATIVE:
            n = min(len(self._buf), len(MAGIC))
            if self._buf[:n] != MAGIC[:n]:
                raise ProtocolError("bad native EPMD preamble")

    def events(self) -> list[ServerEvent]:
        """Events the bytes fed so far complete (possibly none).

        A `NativeHello` comes alone: call again for the requests behind it.
        """
        out: list[ServerEvent] = []
        if self._erlang is not None:
            if not self._done:
                req = self._erlang.request()
                if req is not None:
                    self._done = True
                    out.append(req)
            return out
        if self.protocol != NATIVE:
            return out
        if self._buf:
            if len(self._buf) < PREAMBLE_SIZE:
                return out
            version = parse_preamble(bytes(self._buf[:PREAMBLE_SIZE]))
            rest, self._buf = bytes(self._buf[PREAMBLE_SIZE:]), bytearray()
            self._native.feed(rest)
            # Alone, so the daemon answers the preamble before it looks at
            # (and maybe refuses) the first frame; call events() again.
            return [NativeHello(version)]
        for msg in self._native.messages():
            if not isinstance(msg, NATIVE_REQUESTS):
                raise ProtocolError(f"{type(msg).__name__} is not a request")
            out.append(msg)
        return out
