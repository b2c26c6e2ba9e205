"""One established connection to a peer node over a trio stream (TCP or TLS).

A `Connection` runs three tasks under its own nursery:

- the reader splits incoming bytes into frames (`FrameDecoder`, the maximum
  frame size checked before a body is buffered) and hands each body to the
  node's dispatcher, which only ever does non-blocking local deliveries, so a
  slow actor can never stall the connection for the others; it lets the
  actors it woke run before it waits for more bytes, so their answers go
  out first;
- the writer takes every frame queued since its last write and sends them in
  one `send_all` (few syscalls under load);
- on a plain TCP stream, a frame sent while the writer is idle and nothing
  is queued is written straight to the socket by the sender (non-blocking;
  what the socket does not take is queued for the writer), which saves a
  task switch per message when traffic is sparse (request/reply). After one
  such write the next frames queue up for the writer, so a burst goes out in
  batches; direct writes resume once the writer has drained the queue or
  bytes have arrived from the peer;
- the ticker, every quarter of `tick_timeout`, sends a tick if the writer had
  nothing to say, and declares the peer down when nothing at all arrived for
  four quarters in a row, even with the socket still open (a frozen process,
  a cut cable), like Erlang's net_ticktime.

The outgoing queue is unbounded: `send_frame` never blocks a sender, like
Erlang's `!`. Anything malformed from the peer ends this connection only.
"""

from __future__ import annotations

import contextlib
import logging
import os
import ssl
from collections import deque
from collections.abc import Callable
from typing import Final

import trio
from trio_util import periodic

from ..errors import ProtocolError, TlsFailed
from ..wire.framing import DEFAULT_MAX_FRAME_SIZE, FrameDecoder
from ..wire.handshake import Established, Handshake, PeerHello, Refused
from ..wire.records import TICK
from ..wire.sniff import SNIFF_BYTES, PeerProtocol, Sniffed, identify_peer

__all__ = ["Connection", "run_handshake", "send_best_effort", "sniff_stream", "wrap_tls"]

log = logging.getLogger("trioactors.cluster")

# Below glibc's initial mmap threshold (128 KiB): every read allocates a
# buffer of this size before shrinking it to what arrived, and a bigger one
# would cost an mmap, a page fault, an mremap and a munmap per read (over 10 us
# each time a 60-byte reply comes in).
_RECEIVE_SIZE: Final = 64 * 1024
#: Upper bound of one socket write; bigger backlogs go out in several.
_BATCH_BYTES: Final = 1024 * 1024

#: Why a connection ended (also the `NodeDown` reason).
CLOSED: Final = "connection_closed"
TICK_TIMEOUT: Final = "net_tick_timeout"
DISCONNECT: Final = "disconnect"
PROTOCOL: Final = "protocol_error"

_BROKEN: Final = (trio.BrokenResourceError, trio.ClosedResourceError, OSError)

_yield: Final = trio.lowlevel.cancel_shielded_checkpoint

# os.write on a socket's descriptor is POSIX only.
_DIRECT_WRITES: Final = os.name == "posix"


async def wrap_tls(
    stream: trio.abc.Stream,
    context: ssl.SSLContext,
    *,
    server_side: bool,
    server_hostname: str | None = None,
) -> trio.SSLStream[trio.abc.Stream]:
    """`stream` inside TLS, with the TLS handshake done. Raises `TlsFailed`
    with a message that says what went wrong."""
    tls = trio.SSLStream(
        stream,
        context,
        server_side=server_side,
        server_hostname=None if server_side else server_hostname,
        https_compatible=False,
    )
    try:
        await tls.do_handshake()
    except (trio.BrokenResourceError, ssl.SSLError) as exc:
        raise TlsFailed(describe_tls_failure(exc, server_hostname, server_side)) from exc
    return tls


def describe_tls_failure(exc: BaseException, server_hostname: str | None, server_side: bool) -> str:
    """What a failed TLS handshake means, in words that say what to fix.

    trio reports a failed handshake as a `BrokenResourceError` whose cause is
    the `ssl.SSLError` (whose own text is often empty or cryptic)."""
    cause = exc if isinstance(exc, ssl.SSLError) else exc.__cause__
    if isinstance(cause, ssl.SSLCertVerificationError):
        detail = cause.verify_message or cause.reason or str(cause)
        if "mismatch" in detail.lower() or "not valid for" in detail.lower():
            return (
                f"TLS: the peer's certificate is not valid for {server_hostname!r} "
                f"({detail}); its subjectAltName must carry the address peers dial "
                "(the advertised host or IP)"
            )
        return (
            f"TLS: the peer's certificate was not accepted ({detail}); is it signed by "
            "a CA this node trusts (--tls-ca / tls_client's verify locations)?"
        )
    if isinstance(cause, ssl.SSLError):
        reason = (cause.reason or "").upper()
        if reason == "UNEXPECTED_EOF_WHILE_READING":
            cause = None  # the peer hung up: the generic words below fit
        elif reason in {"WRONG_VERSION_NUMBER", "HTTP_REQUEST", "UNKNOWN_PROTOCOL"}:
            return (
                "TLS: the peer does not speak TLS (a node without TLS?); every node of "
                "a cluster must use TLS alike"
            )
        elif "CERTIFICATE" in reason or "ALERT" in reason:
            return (
                f"TLS: the peer refused this node's certificate ({cause.reason}); "
                "peers verify each other (mutual TLS): is ours signed by their CA?"
            )
        else:
            return f"TLS handshake failed: {cause.reason or cause}"
    side = "accepting" if server_side else "dialling"
    return (
        f"TLS: the peer closed the connection during the TLS handshake ({side}); "
        "does it use TLS, and does it trust this node's certificate?"
    )


async def sniff_stream(stream: trio.abc.Stream) -> tuple[bytes, Sniffed]:
    """Read a peer's first bytes until `identify_peer` can tell its protocol
    (or the peer stops sending); the bytes read and the verdict."""
    data = b""
    verdict = identify_peer(data)
    while verdict.protocol is PeerProtocol.INCOMPLETE and len(data) < SNIFF_BYTES:
        chunk = await stream.receive_some(4096)
        if not chunk:
            break
        data += chunk
        verdict = identify_peer(data)
        if data[:2] == b"\0\0":
            # A frame length under 64 KiB: our own protocol (or garbage that
            # looks like it), which the node handshake judges on what came.
            break
    return data, verdict


async def run_handshake(
    stream: trio.abc.Stream,
    machine: Handshake,
    decide: Callable[[PeerHello], tuple[str, str] | None] | None = None,
    initial: bytes = b"",
) -> Established | Refused:
    """Drive `machine` over `stream` until it is established or refused.

    `decide` (acceptor) returns None to accept the announced peer or a
    `(reason, detail)` refusal. `initial` are bytes already read from the
    peer (by `sniff_stream`). Errors raised by the machine propagate after
    any refusal frame it queued has been sent (best effort).
    """
    try:
        out = machine.data_to_send()
        if out:
            await stream.send_all(out)
        pending = initial
        while True:
            if pending:
                data: bytes | bytearray = pending
                pending = b""
            else:
                data = await stream.receive_some(4096)
            if not data:
                raise ProtocolError(
                    "the peer closed the connection during the handshake (a node that "
                    "uses TLS closes plain connections: if it does, so must this node)"
                )
            result: Established | Refused | None = None
            for event in machine.receive_data(bytes(data)):
                if isinstance(event, PeerHello):
                    refusal = decide(event) if decide is not None else None
                    if refusal is None:
                        machine.accept()
                    else:
                        machine.refuse(*refusal)
                        result = Refused(*refusal)
                else:
                    result = event
            out = machine.data_to_send()
            if out:
                await stream.send_all(out)
            if result is not None:
                return result
    except Exception:
        await send_best_effort(stream, machine.data_to_send())
        raise


async def send_best_effort(stream: trio.abc.Stream, data: bytes) -> None:
    """Send what a failing handshake still has to say (a refusal), within a
    second; a stream that is already broken is fine."""
    if data:
        with trio.move_on_after(1), contextlib.suppress(*_BROKEN):
            await stream.send_all(data)


class Connection:
    """The established link to one peer; see the module docstring.

    `on_frame(body)` is called for every non-empty frame, in order; it may
    raise `ProtocolError` to close the connection. `outgoing` may hold frames
    queued before the connection existed; they go out first. With
    `answer_ticks` (Erlang peers) each tick received is answered while the
    writer is idle.
    """

    def __init__(
        self,
        stream: trio.abc.Stream,
        *,
        peer: str,
        on_frame: Callable[[bytes], None],
        tick_timeout: float,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        initial: bytes = b"",
        outgoing: deque[bytes] | None = None,
        answer_ticks: bool = False,
    ) -> None:
        self.stream = stream
        # Erlang peers: a tick from the peer is answered by one, so the link
        # stays up whatever the cluster's net_ticktime (OTP drops a peer
        # silent for net_ticktime, which may be shorter than our tick_timeout).
        self._answer_ticks = answer_ticks
        self.peer = peer
        self.tick_timeout = tick_timeout
        self.reason: str | None = None
        self._on_frame = on_frame
        self._decoder = FrameDecoder(max_frame_size)
        self._decoder.feed(initial)
        self._queue: deque[bytes] = outgoing if outgoing is not None else deque()
        self._writer_waiting: trio.Event | None = None
        self._closing = False
        self._final: bytes = b""
        self._peer_closed = trio.Event()
        self._cancel = trio.CancelScope()
        # The descriptor of the socket under a plain TCP stream, else -1 (never
        # under TLS, whose bytes only trio.SSLStream may write): frames may go
        # straight to it.
        self._fd = (
            stream.socket.fileno()
            if _DIRECT_WRITES and isinstance(stream, trio.SocketStream)
            else -1
        )
        self._direct = self._fd >= 0  # armed: the next frame may go directly
        self.bytes_in = 0
        self.bytes_out = 0
        self.writes = 0
        #: Records received and sent (ticks not counted), for introspection.
        self.frames_in = 0
        self.frames_out = 0
        #: trio.current_time() when the connection came up, and when a byte
        #: from the peer was last seen (to the tick checker's quarter-tick).
        self.since = trio.current_time()
        self.last_heard = self.since

    @property
    def queued(self) -> int:
        """Frames waiting for the writer."""
        return len(self._queue)

    @property
    def open(self) -> bool:
        """True until the connection started closing."""
        return self.reason is None and not self._closing

    def send_frame(self, frame: bytes) -> None:
        """Send an already framed record, in order after every earlier one;
        never blocks (dropped once closing)."""
        if self._closing or self.reason is not None:
            return
        self.frames_out += 1
        waiting = self._writer_waiting
        if waiting is None:
            # The writer is busy or about to run: it takes this frame too.
            self._queue.append(frame)
            return
        # The writer is idle, so nothing is queued or being written.
        if self._direct and self._fd >= 0:
            self._direct = False
            try:
                sent = os.write(self._fd, frame)
            except OSError:
                # Full (BlockingIOError) or broken: the writer retries and,
                # if the stream is broken, ends the connection.
                sent = 0
            if sent:
                self.bytes_out += sent
                self.writes += 1
                if sent == len(frame):
                    return
                frame = frame[sent:]
        self._queue.append(frame)
        self._writer_waiting = None
        waiting.set()

    def close(self, final: bytes = b"", reason: str = DISCONNECT) -> None:
        """Graceful close: the writer sends what is queued, then `final`
        (a goodbye), waits briefly for the peer to hang up, and ends."""
        if self._closing or self.reason is not None:
            return
        self._closing = True
        self._final = final
        self._set_reason(reason, only_if_unset=True, keep_running=True)
        waiting = self._writer_waiting
        if waiting is not None:
            self._writer_waiting = None
            waiting.set()

    def abort(self, reason: str) -> None:
        """End the connection now, dropping whatever is queued."""
        self._set_reason(reason, only_if_unset=True)

    def _set_reason(self, reason: str, *, only_if_unset: bool, keep_running: bool = False) -> None:
        if self.reason is None or not only_if_unset:
            self.reason = reason
        if not keep_running:
            self._cancel.cancel()

    async def run(self) -> str:
        """Run until the connection ends; returns why (`connection_closed`,
        `net_tick_timeout`, `disconnect`, `protocol_error`)."""
        try:
            with self._cancel:
                # Frames that arrived with the last handshake bytes come first.
                if self._dispatch_safely():
                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(self._reader)
                        nursery.start_soon(self._writer)
                        nursery.start_soon(self._ticker)
        finally:
            # Never again a direct write: the descriptor is about to be closed
            # (and its number may be reused).
            self._fd = -1
        with trio.CancelScope(shield=True), trio.move_on_after(1):
            await trio.aclose_forcefully(self.stream)
        return self.reason or CLOSED

    def _protocol_error(self, exc: Exception) -> None:
        log.warning("closing connection to node %r: %s", self.peer, exc)
        self._set_reason(PROTOCOL, only_if_unset=False)

    def _dispatch_safely(self, data: bytes | bytearray = b"") -> bool:
        """Dispatch what is buffered and the frames in `data`; False once
        the connection must close."""
        on_frame = self._on_frame
        more = self._decoder.bodies
        try:
            bodies = self._decoder.take(data)
            while bodies:
                self.frames_in += len(bodies)
                for body in bodies:
                    if body:  # empty bodies are ticks
                        on_frame(body)
                        continue
                    self.frames_in -= 1  # a tick is not a record
                    if self._answer_ticks and self._writer_waiting is not None:
                        self.send_frame(TICK)
                        self.frames_out -= 1
                bodies = more()
        except ProtocolError as exc:
            self._protocol_error(exc)
            return False
        except Exception:
            # A record that trips a bug must cost this connection, not the node.
            log.exception("closing connection to node %r: dispatch failed", self.peer)
            self._set_reason(PROTOCOL, only_if_unset=False)
            return False
        return True

    async def _reader(self) -> None:
        stream = self.stream
        wait_readable = trio.lowlevel.wait_readable
        fd = self._fd
        while True:
            try:
                if fd < 0:
                    data: bytes | bytearray = await stream.receive_some(_RECEIVE_SIZE)
                else:
                    # Plain TCP: wait first, then read. In request/reply
                    # traffic the answer is never there yet when the reader
                    # comes back for more, so trio's read-first would only add
                    # a failing read to every message.
                    await wait_readable(fd)
                    try:
                        data = os.read(fd, _RECEIVE_SIZE)
                    except BlockingIOError:
                        continue
            except _BROKEN as exc:
                log.info("connection to node %r lost: %s", self.peer, exc or type(exc).__name__)
                data = b""
            if not data:
                self._peer_closed.set()
                self._set_reason(CLOSED, only_if_unset=True)
                return
            self.bytes_in += len(data)
            self._direct = fd >= 0
            if not self._dispatch_safely(data):
                return
            if fd >= 0:
                # Let the actors this data woke run before the reader re-arms
                # its wait (epoll bookkeeping of a few microseconds): in
                # request/reply traffic their answers then go out first.
                # Twice, as trio runs the tasks of a pass in either order.
                await _yield()
                await _yield()

    async def _ticker(self) -> None:
        # Erlang's net_ticktime scheme: every quarter of the tick timeout, send
        # a tick if the writer had nothing to say, and declare the peer down
        # after four quarters in a row without a byte from it. Counters instead
        # of per-read deadlines keep the hot read and write loops lean.
        interval = self.tick_timeout / 4
        quiet = 0
        seen_in = self.bytes_in
        seen_writes = self.writes
        # periodic() keeps the quarters on absolute deadlines, so a busy loop
        # does not stretch the timeout; aclosing() ends the generator in this
        # task (trio-util's own advice).
        async with contextlib.aclosing(periodic(interval)) as quarters:
            async for _, since_last in quarters:
                if since_last is None:
                    continue  # the first iteration is immediate
                if self.bytes_in == seen_in:
                    quiet += 1
                    if quiet >= 4:
                        log.warning(
                            "node %r sent nothing for %.1f s (tick timeout): considered down",
                            self.peer,
                            self.tick_timeout,
                        )
                        self._set_reason(TICK_TIMEOUT, only_if_unset=True)
                        return
                else:
                    quiet = 0
                    seen_in = self.bytes_in
                    self.last_heard = trio.current_time()
                if self.writes == seen_writes and self._writer_waiting is not None:
                    self.send_frame(TICK)
                    self.frames_out -= 1  # a tick is not a record
                seen_writes = self.writes

    async def _writer(self) -> None:
        stream = self.stream
        queue = self._queue
        try:
            while True:
                if not queue:
                    if self._closing:
                        break
                    self._direct = self._fd >= 0
                    waiting = self._writer_waiting = trio.Event()
                    await waiting.wait()
                    continue
                if len(queue) == 1:
                    batch = queue.popleft()
                else:
                    parts = []
                    size = 0
                    while queue and size < _BATCH_BYTES:
                        frame = queue.popleft()
                        parts.append(frame)
                        size += len(frame)
                    batch = b"".join(parts)
                self.bytes_out += len(batch)
                self.writes += 1
                await stream.send_all(batch)
            if self._final:
                await stream.send_all(self._final)
            # Give the peer a moment to read everything and hang up first, so
            # our close cannot turn into a reset that discards unread data.
            with trio.move_on_after(min(2.0, self.tick_timeout)):
                await self._peer_closed.wait()
            self._set_reason(DISCONNECT, only_if_unset=True)
        except _BROKEN as exc:
            log.info("connection to node %r lost while writing: %s", self.peer, exc)
            self._set_reason(CLOSED, only_if_unset=True)
