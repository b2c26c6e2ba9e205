"""An actor's mailbox: an unbounded trio memory channel plus selective receive.

Sending is `send_nowait` (never blocks). Receiving takes queued messages with
`receive_nowait`, so a busy actor does not pay a trio checkpoint per message;
to stay fair to other tasks it still yields every `_BURST` messages, and it
notices that it has been told to die (`_dying`) before taking each message.
Messages skipped by a selective receive wait in a save queue, in order, and are
looked at first by the next receive (Erlang's save queue).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from typing import Any, Final

import trio

__all__ = ["Mailbox"]

# Messages taken without blocking before a real checkpoint: large enough that the
# checkpoint is amortised, small enough that other tasks are never starved.
_BURST: Final = 128

_checkpoint = trio.lowlevel.checkpoint
_WouldBlock = trio.WouldBlock


class Mailbox:
    """A queue of messages with ordered selective receive (base of `Context`)."""

    __slots__ = ("_burst", "_dying", "_inbox", "_outbox", "_saved")

    def __init__(self) -> None:
        self._outbox, self._inbox = trio.open_memory_channel[Any](math.inf)
        self._saved: deque[Any] | None = None
        self._burst = 0
        # Set when the owner has been told to end: stop taking messages.
        self._dying = False

    def _deliver(self, msg: Any) -> None:
        self._outbox.send_nowait(msg)

    async def receive(
        self,
        *,
        timeout: float | None = None,  # noqa: ASYNC109
        match: Callable[[Any], bool] | None = None,
    ) -> Any:
        """The next message (the next one `match` accepts, if given).

        Messages `match` rejects stay queued, in order, for later receives.
        Raises `trio.TooSlowError` if nothing (suitable) arrives within `timeout`
        seconds.
        """
        if match is None and timeout is None:
            saved = self._saved
            if saved:
                return saved.popleft()
            # Fast path: no checkpoint per message, a real one every _BURST.
            self._burst += 1
            if self._burst >= _BURST or self._dying:
                self._burst = 0
                await _checkpoint()
            try:
                return self._inbox.receive_nowait()
            except _WouldBlock:
                self._burst = 0
                return await self._inbox.receive()
        return await self._receive_slow(timeout, match)

    async def _receive_slow(
        self,
        timeout: float | None,  # noqa: ASYNC109
        match: Callable[[Any], bool] | None,
    ) -> Any:
        saved = self._saved
        if saved:
            if match is None:
                return saved.popleft()
            for i, msg in enumerate(saved):
                if match(msg):
                    del saved[i]
                    return msg
        try:
            return self._take_nowait(match)
        except _WouldBlock:
            pass
        if timeout is None:
            return await self._take(match)
        with trio.fail_after(timeout):
            return await self._take(match)

    def _take_nowait(self, match: Callable[[Any], bool] | None) -> Any:
        # Only the channel: callers have already looked at the save queue.
        inbox = self._inbox
        while True:
            msg = inbox.receive_nowait()
            if match is None or match(msg):
                return msg
            self._save(msg)

    async def _take(self, match: Callable[[Any], bool] | None) -> Any:
        inbox = self._inbox
        while True:
            self._burst += 1
            if self._burst >= _BURST or self._dying:
                self._burst = 0
                await _checkpoint()
            try:
                msg = inbox.receive_nowait()
            except _WouldBlock:
                self._burst = 0
                msg = await inbox.receive()
            if match is None or match(msg):
                return msg
            self._save(msg)

    def _save(self, msg: Any) -> None:
        if self._saved is None:
            self._saved = deque()
        self._saved.append(msg)

    def receive_nowait(self, *, match: Callable[[Any], bool] | None = None) -> Any:
        """The next (matching) message if one is queued; else `trio.WouldBlock`."""
        saved = self._saved
        if saved:
            if match is None:
                return saved.popleft()
            for i, msg in enumerate(saved):
                if match(msg):
                    del saved[i]
                    return msg
        return self._take_nowait(match)

    def _flush(self, match: Callable[[Any], bool]) -> bool:
        """Drop the first queued message `match` accepts; True if one was dropped."""
        try:
            self.receive_nowait(match=match)
        except _WouldBlock:
            return False
        return True

    def pending(self) -> int:
        """How many messages are queued (saved and not yet looked at)."""
        return len(self._saved or ()) + self._inbox.statistics().current_buffer_used
