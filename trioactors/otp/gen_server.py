"""GenServer: a request/response server with call, cast and info callbacks.

The protocol is plain data so it crosses nodes unchanged: a call is
``("$gen_call", (caller_pid, ref), request)``; a cast is ``("$gen_cast",
request)``. Callers monitor the server, so a dead or dying server fails the
call at once. As in OTP 25, the ref is also an alias of the caller: the
server answers to it (`System._reply`), so the reply reaches the waiting call
and is dropped if the call has ended; a hand-written server may instead send
``(ref, reply)`` to ``caller_pid``, which a waiting call also accepts.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Final, NoReturn, TypeAlias

from ..runtime.messages import GEN_CALL, GEN_CAST, Exit
from ..runtime.process import _ExitActor
from ..wire.terms import Pid, Ref

if TYPE_CHECKING:
    from .system import ActorSystem, Context

__all__ = ["NO_REPLY", "Caller", "GenServer"]

logger = logging.getLogger("trioactors")

#: Who made a call: ``(caller_pid, ref)``; pass it to `GenServer.reply`.
Caller: TypeAlias = tuple[Pid, Ref]


class _NoReply:
    __slots__ = ()

    def __repr__(self) -> str:
        return "ta.NO_REPLY"


#: Return this from `handle_call` to answer later with `self.reply(caller, value)`.
NO_REPLY: Final = _NoReply()


class GenServer:
    """Subclass and override the callbacks; start with `system.start_server`.

    One instance serves one process and handles one message at a time.
    `self.ctx` (the server's `ta.Context`) is set before `init` runs.
    """

    ctx: Context

    @property
    def pid(self) -> Pid:
        """The server's pid."""
        return self.ctx.pid

    @property
    def system(self) -> ActorSystem:
        """The system the server runs in."""
        return self.ctx.system

    async def init(self, *args: Any) -> None:
        """Set up state from the `start_server` arguments. An exception here
        makes `start_server` raise `ta.StartFailed`."""

    async def handle_call(self, request: Any, caller: Caller) -> Any:
        """Answer a `call`: the return value is the reply (or `ta.NO_REPLY`)."""
        raise NotImplementedError(
            f"{type(self).__qualname__} got call {request!r} but does not define handle_call"
        )

    async def handle_cast(self, request: Any) -> None:
        """Handle a `cast` (no reply)."""
        raise NotImplementedError(
            f"{type(self).__qualname__} got cast {request!r} but does not define handle_cast"
        )

    async def handle_info(self, msg: Any) -> None:
        """Handle any other message (signals, timers, plain sends)."""
        logger.warning(
            "%s %s ignored unexpected message %r", type(self).__qualname__, self.pid, msg
        )

    async def terminate(self, reason: Any) -> None:
        """Clean up; called when the server ends for any reason except ``killed``
        (a shutdown from its supervisor, `stop`, a crash in a callback)."""

    def reply(self, caller: Caller, value: Any) -> None:
        """Answer a call whose `handle_call` returned `ta.NO_REPLY` (dropped if
        the caller has stopped waiting, like a reply to an inactive alias)."""
        self.ctx.system._reply(caller[0], caller[1], value)

    def stop(self, reason: Any = "normal") -> NoReturn:
        """End the server with `reason` (from inside a callback; never returns)."""
        raise _ExitActor(reason)


async def _serve(ctx: Context, cls: type[GenServer], args: tuple[Any, ...]) -> None:
    server = cls()
    server.ctx = ctx
    await server.init(*args)
    ctx._on_exit = server.terminate
    ctx._started_ok()
    handle_call = server.handle_call
    handle_cast = server.handle_cast
    handle_info = server.handle_info
    receive = ctx.receive
    reply = ctx.system._reply
    parent = ctx._parent
    while True:
        msg = await receive()
        if type(msg) is tuple:
            n = len(msg)
            if n == 3 and msg[0] == GEN_CALL:
                caller = msg[1]
                if (
                    type(caller) is tuple
                    and len(caller) == 2
                    and isinstance(caller[0], Pid)
                    and isinstance(caller[1], Ref)
                ):
                    result = await handle_call(msg[2], caller)
                    if result is not NO_REPLY:
                        reply(caller[0], caller[1], result)
                    continue
            elif n == 2 and msg[0] == GEN_CAST:
                await handle_cast(msg[1])
                continue
        elif type(msg) is Exit and msg.pid == parent and ctx.trap_exits and parent is not None:
            # OTP: a trapping server ends (via terminate) when its parent tells it to.
            raise _ExitActor(msg.reason)
        await handle_info(msg)
