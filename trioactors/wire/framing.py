"""Length-prefixed framing, sans-IO: a 4-byte big-endian length, then the body.

`FrameDecoder` takes bytes and yields frame bodies (h11's lesson), so the EPMD
daemon, its client, node connections and the tests share one parser and
every rule is testable without a socket.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Final

from ..errors import FrameTooLarge

__all__ = ["DEFAULT_MAX_FRAME_SIZE", "FrameDecoder", "encode_frame", "frame_header"]

DEFAULT_MAX_FRAME_SIZE: Final = 16 * 1024 * 1024

_HEADER = struct.Struct(">I")


#: The 4-byte header of a frame whose body has this many bytes.
frame_header: Final = _HEADER.pack


def encode_frame(body: bytes) -> bytes:
    """`body` behind its 4-byte big-endian length."""
    return frame_header(len(body)) + body


class FrameDecoder:
    """Sans-IO splitter of a byte stream into frame bodies.

    `feed()` bytes as they arrive, then iterate to get every complete body.
    A length above `max_size` raises `FrameTooLarge` as soon as the 4 header
    bytes are in, before any of the body is buffered.
    """

    # Bytes are kept as an immutable buffer read at an offset plus the chunks
    # fed since, joined only when a frame spans them: a body is then a single
    # slice of the buffer (one copy), and a large frame arriving in many
    # chunks is joined once, not once per chunk.
    __slots__ = ("_buf", "_chunks", "_need", "_pending", "_pos", "max_size")

    def __init__(self, max_size: int = DEFAULT_MAX_FRAME_SIZE) -> None:
        self.max_size = max_size
        self._buf = b""
        self._pos = 0
        self._chunks: list[bytes] = []
        self._pending = 0  # bytes in _chunks
        self._need = -1  # body length of the frame being read, -1 = header pending

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as a frame."""
        return len(self._buf) - self._pos + self._pending

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Add bytes received from the peer."""
        if data:
            self._chunks.append(data if type(data) is bytes else bytes(data))
            self._pending += len(data)

    def _join(self) -> None:
        chunks = self._chunks
        if self._pos == len(self._buf) and len(chunks) == 1:
            self._buf = chunks[0]  # the usual read: nothing left over, no copy
        else:
            self._buf = self._buf[self._pos :] + b"".join(chunks)
        self._pos = 0
        self._chunks.clear()
        self._pending = 0

    def next_frame(self) -> bytes | None:
        """The next complete frame body, or None until more bytes arrive."""
        pos = self._pos
        have = len(self._buf) - pos
        need = self._need
        if need < 0:
            if have < 4:
                if have + self._pending < 4:
                    return None
                self._join()
                pos, have = 0, len(self._buf)
            (need,) = _HEADER.unpack_from(self._buf, pos)
            if need > self.max_size:
                raise FrameTooLarge(need, self.max_size)
            self._need = need
        end = pos + 4 + need
        if have < 4 + need:
            if have + self._pending < 4 + need:
                return None
            self._join()
            end = 4 + need
            pos = 0
        self._pos = end
        self._need = -1
        return self._buf[pos + 4 : end]

    def take(self, data: bytes | bytearray | memoryview) -> list[bytes]:
        """`feed(data)`, then `bodies()`; a read that is exactly one frame
        (request/reply traffic) costs no buffering at all."""
        if (
            type(data) is bytes
            and self._need < 0
            and not self._chunks
            and self._pos == len(self._buf)
        ):
            size = len(data)
            if size > 4:
                (length,) = _HEADER.unpack_from(data)
                if length + 4 == size and length <= self.max_size:
                    return [data[4:]]
        self.feed(data)
        return self.bodies()

    def bodies(self) -> list[bytes]:
        """Every complete frame body buffered, in order (empty if none).

        The same frames as calling `next_frame` until None, in one pass (the
        node's reader takes a whole read's worth of small frames at once). A
        length above `max_size` raises `FrameTooLarge` once the frames before
        it have been taken, on the next call.
        """
        need = self._need
        if need >= 0 and len(self._buf) - self._pos + self._pending < 4 + need:
            return []  # still inside a big frame: no join per chunk
        if self._chunks:
            self._join()
        buf = self._buf
        pos = self._pos
        size = len(buf)
        max_size = self.max_size
        unpack = _HEADER.unpack_from
        out: list[bytes] = []
        need = -1
        while size - pos >= 4:
            (length,) = unpack(buf, pos)
            if length > max_size:
                if out:
                    break
                raise FrameTooLarge(length, max_size)
            end = pos + 4 + length
            if end > size:
                need = length
                break
            out.append(buf[pos + 4 : end])
            pos = end
        if pos == size:
            # Everything taken: let go of the read buffer now.
            self._buf = b""
            pos = 0
        self._pos = pos
        self._need = need
        return out

    def __iter__(self) -> Iterator[bytes]:
        while (body := self.next_frame()) is not None:
            yield body

    def detach(self) -> bytes:
        """Hand over every buffered byte (starting at a frame boundary) and
        empty the decoder: a protocol switching parsers mid-stream (a handshake
        followed by node traffic) passes the rest on without losing a byte."""
        self._join()
        data = self._buf
        self._buf = b""
        self._need = -1
        return data
