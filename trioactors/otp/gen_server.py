"""GenServer: a request/response server with call, cast and info callbacks.

The protocol is plain data so it crosses nodes unchanged: a call is
``("$gen_call", (caller_pid, ref), request)``; a cast is ``("$gen_cast",
request)``; `stop` sends ``("$gen_stop", reason)``. Callers monitor the
server, so a dead or dying server fails the call at once. As in OTP 25, the
ref is also an alias of the caller: the server answers to it
(`System._reply`), so the reply reaches the waiting call and is dropped if the
call has ended; a hand-written server may instead send ``(ref, reply)`` to
``caller_pid``, which a waiting call also accepts.

`terminate` runs as in OTP's gen_server: when a callback raises or calls
`stop`, when `stop(server)` is asked, and when a server that traps exits is
told to end by its parent. An exit signal the server does not trap ends it
at once, without `terminate` (so does ``kill``, always).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, ClassVar, Final, NoReturn, TypeAlias

import trio

from ..errors import NoProc, StopFailed, StopTimeout
from ..runtime.messages import GEN_CALL, GEN_CAST, Down, Exit
from ..runtime.process import Dest, Process, _ExitActor
from ..wire.terms import Pid, Ref

if TYPE_CHECKING:
    from .system import ActorSystem, Context

__all__ = ["IGNORE", "NO_REPLY", "Caller", "GenServer"]

logger = logging.getLogger("trioactors")

#: Who made a call: ``(caller_pid, ref)``; pass it to `GenServer.reply`.
Caller: TypeAlias = tuple[Pid, Ref]


class _NoReply:
    __slots__ = ()

    def __repr__(self) -> str:
        return "ta.NO_REPLY"


#: Return this from `handle_call` to answer later with `self.reply(caller, value)`.
NO_REPLY: Final = _NoReply()


class _Ignore:
    __slots__ = ()

    def __repr__(self) -> str:
        return "ta.IGNORE"


#: Return this from `GenServer.init` to start nothing (OTP's ``ignore``):
#: `start_server` returns None and a supervisor keeps the child as not running.
IGNORE: Final = _Ignore()

#: First element of the stop request ``("$gen_stop", reason)`` sent by `stop`.
GEN_STOP: Final = "$gen_stop"


class GenServer:
    """Subclass and override the callbacks; start with `system.start_server`.

    One instance serves one process and handles one message at a time.
    `self.ctx` (the server's `ta.Context`) is set before `init` runs.

    Set ``trap_exits = True`` on the class to trap exits from the start (as
    ``process_flag(trap_exit, true)`` in an Erlang ``init``): exit signals
    then arrive in `handle_info` as `ta.Exit`, except one from the server's
    parent (its supervisor, or the system as it shuts down), which ends the
    server through `terminate` with the signal's reason. A server that does
    not trap exits is ended by such a signal at once, without `terminate`.
    """

    #: Trap exits from before `init` runs (see the class docstring).
    trap_exits: ClassVar[bool] = False

    ctx: Context

    @property
    def pid(self) -> Pid:
        """The server's pid."""
        return self.ctx.pid

    @property
    def system(self) -> ActorSystem:
        """The system the server runs in."""
        return self.ctx.system

    async def init(self, *args: Any) -> Any:
        """Set up state from the `start_server` arguments. An exception here
        makes `start_server` raise `ta.StartFailed`; returning `ta.IGNORE`
        ends the server at once (reason ``normal``) and `start_server`
        returns None instead of a pid. Any other return value is ignored."""

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
        """Clean up, as OTP's ``terminate/2``: called when a callback raises or
        calls `stop`, when `stop(server, reason)` is asked, and (only if the
        server traps exits) when its parent tells it to end, e.g. a shutdown
        from its supervisor. Not called when an untrapped exit signal or
        ``kill`` ends the server."""

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
    if server.trap_exits:
        ctx.trap_exits = True
    if await server.init(*args) is IGNORE:
        if ctx._started is not None:
            ctx._started.fail(IGNORE)
        return
    terminate = server.terminate

    async def on_exit(reason: Any) -> None:
        # `_dying` is set only by an exit signal that ended the server
        # untrapped: Erlang runs no terminate then.
        if not ctx._dying:
            await terminate(reason)

    ctx._on_exit = on_exit
    ctx._started_ok()
    handle_call = server.handle_call
    handle_cast = server.handle_cast
    handle_info = server.handle_info
    receive = ctx.receive
    system = ctx.system
    reply = system._reply
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
            elif n == 2:
                tag = msg[0]
                if tag == GEN_CAST:
                    await handle_cast(msg[1])
                    continue
                if tag == GEN_STOP:
                    raise _ExitActor(msg[1])
        elif (
            type(msg) is Exit
            and ctx.trap_exits
            and (
                (parent is not None and msg.pid == parent)
                # A server outside any supervisor: the system shutting down
                # stands for its parent.
                or (msg.pid == system.pid and system._closing)
            )
        ):
            # OTP: a trapping server ends (via terminate) when its parent tells it to.
            raise _ExitActor(msg.reason)
        await handle_info(msg)


async def _stop(proc: Process, server: Dest, reason: Any, timeout: float | None) -> None:  # noqa: ASYNC109
    """OTP's ``gen_server:stop/3`` from `proc`: ask `server` to end with
    `reason` (its terminate runs) and wait until it has."""
    if proc._is_me(server):
        raise StopFailed("calling_self", server)
    ref = proc.monitor(server)
    proc.send(server, (GEN_STOP, reason))
    try:
        msg = await proc.receive(match=lambda m: type(m) is Down and m.ref == ref, timeout=timeout)
    except trio.TooSlowError:
        proc.demonitor(ref, flush=True)
        raise StopTimeout(server, timeout or 0.0) from None
    if msg.reason == reason:
        return
    if msg.reason == "noproc":
        raise NoProc(f"cannot stop {server!r}: no such process is alive")
    raise StopFailed(msg.reason, server)
