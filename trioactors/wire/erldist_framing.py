"""Erlang distribution packets after the handshake, sans-IO.

Once `erldist_handshake` reports `Established`, each side sends packets
behind a 4-byte big-endian length. A zero-length packet is a tick, the
keep-alive. OTP sends one every `net_ticktime / 4` seconds (15 s by default)
whenever it has written nothing else in that interval. It drops a connection
that has been silent for about `net_ticktime` (60 s). A received tick needs
no answer of its own: what keeps OTP happy is that *something* arrives
often enough. Answering each tick with a tick is therefore enough for a
connection that is otherwise idle. A node that sends its own ticks on a
timer when idle, as OTP does, is the full solution.

A non-empty packet is a distribution message. Without the atom cache flags,
which `erldist_handshake.DEFAULT_FLAGS` does not advertise, it starts with
the pass-through byte 112 followed by the control message and payload in the
External Term Format. This decoder only splits packets; it does not decode
them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

import attrs

from .framing import FrameDecoder, encode_frame

__all__ = [
    "DEFAULT_MAX_PACKET_SIZE",
    "PASS_THROUGH",
    "TICK",
    "DistDecoder",
    "DistPacket",
    "Tick",
    "encode_packet",
]

#: The keep-alive packet: a zero length and no body.
TICK: Final = b"\0\0\0\0"
#: First byte of a message sent without the distribution header (no atom cache).
PASS_THROUGH: Final = 112
#: Largest packet accepted by default. OTP has no limit of its own, but a
#: peer that announces more than this is treated as hostile.
DEFAULT_MAX_PACKET_SIZE: Final = 64 * 1024 * 1024


@attrs.frozen
class Tick:
    """The peer sent a keep-alive (zero-length packet)."""


@attrs.frozen
class DistPacket:
    """One distribution message: the packet body without its length."""

    body: bytes


def encode_packet(body: bytes) -> bytes:
    """`body` behind its 4-byte big-endian length (an empty body is a tick)."""
    return encode_frame(body)


class DistDecoder:
    """Splits the bytes that follow the handshake into `Tick` and `DistPacket`.

    `feed()` bytes as they arrive, then call `next_event()` until it returns
    None, or iterate. A packet longer than `max_size` raises `FrameTooLarge`
    (a `ProtocolError`) as soon as its length is in, before any of its body
    is buffered: close that connection.
    """

    __slots__ = ("_frames",)

    def __init__(self, max_size: int = DEFAULT_MAX_PACKET_SIZE) -> None:
        self._frames = FrameDecoder(max_size)

    @property
    def max_size(self) -> int:
        """The largest packet body accepted."""
        return self._frames.max_size

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned."""
        return self._frames.buffered

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Add bytes received from the peer."""
        self._frames.feed(data)

    def next_event(self) -> Tick | DistPacket | None:
        """The next tick or packet, or None until more bytes arrive."""
        body = self._frames.next_frame()
        if body is None:
            return None
        return DistPacket(body) if body else Tick()

    def __iter__(self) -> Iterator[Tick | DistPacket]:
        while (event := self.next_event()) is not None:
            yield event
