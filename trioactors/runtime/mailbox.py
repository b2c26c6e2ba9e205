"""An actor's mailbox: an unbounded queue with ordered selective receive.

Built directly on trio's low-level parking primitive (`wait_task_rescheduled`
and `reschedule`) rather than on a memory channel: an actor's mailbox has
exactly one reader, so it needs a deque and at most one parked task, not a
channel's send/receive halves, task tables and statistics. That halves the
memory of an idle actor and makes a send a deque append (or a direct hand-off
to the parked reader). See CHANGELOG for the measurements.

Sending never blocks. Receiving takes queued messages without a trio
checkpoint, so a busy actor does not pay a scheduler round per message; to
stay fair to other tasks it still yields every `_BURST` messages, and it
checks that it has not been told to end (`_dying`) before taking each one.
Messages skipped by a selective receive wait in a save queue, in order, and
are looked at first by the next receive (Erlang's save queue). Once the owner
has been told to end, no receive hands out another message (the next one
checkpoints, which delivers the cancellation), whatever is queued.

A pending `call` parks its task here too, with `_call_ref` set to the call's
ref: the call's reply (or the `Down` of its monitor) is handed straight to
that task, every other message is queued. That is the reply slot that makes a
call cost the same whatever the mailbox holds (no selective receive scan).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any, Final

import outcome
import trio

from ..wire.terms import Ref
from .messages import Down

__all__ = ["Mailbox"]

# Messages taken without blocking before a real checkpoint: large enough that the
# checkpoint is amortised, small enough that other tasks are never starved.
_BURST: Final = 128

_checkpoint = trio.lowlevel.checkpoint
_current_task = trio.lowlevel.current_task
_reschedule = trio.lowlevel.reschedule
_wait_task_rescheduled = trio.lowlevel.wait_task_rescheduled
_SUCCEEDED = trio.lowlevel.Abort.SUCCEEDED
_Value = outcome.Value
_WouldBlock = trio.WouldBlock
_EMPTY: Final = object()


class _CallExpired(Exception):
    """Thrown into a parked call by the system's call timer: it timed out."""


class _CallDown(Exception):
    """Thrown into a parked call: the server's monitor fired (`down`)."""

    def __init__(self, down: Any) -> None:
        super().__init__(down)
        self.down = down


class Mailbox:
    """A queue of messages with ordered selective receive (base of `Context`)."""

    __slots__ = ("_burst", "_call_ref", "_dying", "_queue", "_received", "_saved", "_waiter")

    def __init__(self) -> None:
        # Both queues are made on first use: most actors idle with none.
        self._queue: deque[Any] | None = None
        self._saved: deque[Any] | None = None
        self._waiter: trio.lowlevel.Task | None = None
        self._burst = 0
        # Set when the owner has been told to end: stop taking messages.
        self._dying = False
        # Messages delivered so far (process_info's `received`).
        self._received = 0
        # The ref of the call `_waiter` is parked in (None: parked in receive).
        self._call_ref: Ref | None = None

    def _deliver(self, msg: Any) -> None:
        self._received += 1
        waiter = self._waiter
        if waiter is not None:
            if self._call_ref is None:
                # Hand the message straight to the parked reader.
                self._waiter = None
                _reschedule(waiter, _Value(msg))
                return
            if self._answer(msg):
                return
        queue = self._queue
        if queue is None:
            queue = self._queue = deque()
        queue.append(msg)

    def _answer(self, msg: Any) -> bool:
        """Wake the parked call if `msg` is its reply ``(ref, value)`` (sent to
        the pid by hand, not to the alias) or its monitor's `Down`."""
        ref = self._call_ref
        t = type(msg)
        if t is tuple:
            if len(msg) != 2 or not (msg[0] is ref or (type(msg[0]) is Ref and msg[0] == ref)):
                return False
            result: outcome.Outcome[Any] = _Value(msg[1])
        elif t is Down and msg.ref == ref:
            result = outcome.Error(_CallDown(msg))
        else:
            return False
        self._resume_call(result)
        return True

    def _resume_call(self, result: outcome.Outcome[Any]) -> None:
        """Wake the parked call with `result`; its alias is inactive from now."""
        waiter = self._waiter
        assert waiter is not None  # a call ref is set only while its task waits
        self._waiter = None
        self._call_ref = None
        _reschedule(waiter, result)

    def _is_call(self, ref: Ref) -> bool:
        """True while a call with ref `ref` waits (its alias is active)."""
        call_ref = self._call_ref
        return call_ref is not None and (call_ref is ref or call_ref == ref)

    def _abort(self, raise_cancel: Any) -> trio.lowlevel.Abort:
        self._waiter = None
        self._call_ref = None
        return _SUCCEEDED

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
            # Fast path: no checkpoint per message, a real one every _BURST
            # (and at once when told to end: that raises the cancellation).
            self._burst += 1
            if self._burst >= _BURST or self._dying:
                self._burst = 0
                await _checkpoint()
            saved = self._saved
            if saved:
                return saved.popleft()
            queue = self._queue
            if queue:
                return queue.popleft()
            self._burst = 0
            if self._waiter is not None:
                raise trio.BusyResourceError("another task is already receiving on this mailbox")
            self._waiter = _current_task()
            return await _wait_task_rescheduled(self._abort)
        return await self._receive_slow(timeout, match)

    async def _receive_slow(
        self,
        timeout: float | None,  # noqa: ASYNC109
        match: Callable[[Any], bool] | None,
    ) -> Any:
        if self._dying:
            # Told to end: not one more message, even one already queued.
            await _checkpoint()
        msg = self._scan(match)
        if msg is not _EMPTY:
            return msg
        if timeout is None:
            return await self._take(match)
        # A bare cancel scope: cheaper than fail_after's generator-based wrapper.
        with trio.CancelScope(deadline=trio.current_time() + timeout):
            return await self._take(match)
        raise trio.TooSlowError

    async def _take(self, match: Callable[[Any], bool] | None) -> Any:
        # Only the live queue: callers have already looked at the save queue.
        while True:
            self._burst += 1
            if self._burst >= _BURST or self._dying:
                self._burst = 0
                await _checkpoint()
            queue = self._queue
            if queue:
                msg = queue.popleft()
            else:
                self._burst = 0
                if self._waiter is not None:
                    raise trio.BusyResourceError(
                        "another task is already receiving on this mailbox"
                    )
                self._waiter = _current_task()
                msg = await _wait_task_rescheduled(self._abort)
            if match is None or match(msg):
                return msg
            self._save(msg)

    def _save(self, msg: Any) -> None:
        if self._saved is None:
            self._saved = deque()
        self._saved.append(msg)

    def _scan(self, match: Callable[[Any], bool] | None) -> Any:
        saved = self._saved
        if saved:
            if match is None:
                return saved.popleft()
            for i, msg in enumerate(saved):
                if match(msg):
                    del saved[i]
                    return msg
        queue = self._queue
        while queue:
            msg = queue.popleft()
            if match is None or match(msg):
                return msg
            self._save(msg)
        return _EMPTY

    def receive_nowait(self, *, match: Callable[[Any], bool] | None = None) -> Any:
        """The next (matching) message if one is queued; else `trio.WouldBlock`
        (also once this actor has been told to end, outside its cleanup)."""
        if self._dying and not self._cleaning_up():
            raise _WouldBlock
        msg = self._scan(match)
        if msg is _EMPTY:
            raise _WouldBlock
        return msg

    def _cleaning_up(self) -> bool:
        """True while the owner runs its exit hook (a gen_server's terminate),
        which may still take messages after it was told to end."""
        return False

    def _flush(self, match: Callable[[Any], bool]) -> bool:
        """Drop the first queued message `match` accepts; True if one was dropped."""
        return self._scan(match) is not _EMPTY

    def pending(self) -> int:
        """How many messages are queued."""
        return len(self._saved or ()) + len(self._queue or ())
