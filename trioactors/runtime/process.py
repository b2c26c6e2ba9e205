"""An actor's own view of itself: pid, mailbox, links, monitors, exit signals.

`Process` is the runtime half of `ta.Context` (the OTP layer adds
`start_server`). Its state lives here, its effects on other actors go
through its `System` (`trioactors.runtime.system`), which owns the process
table and the router for pids of other nodes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final, NoReturn, TypeAlias, overload

import outcome
import trio

from ..errors import CallFailed, CallTimeout, NoProc
from ..wire.terms import Pid, Ref
from .mailbox import (
    Mailbox,
    _CallDown,
    _CallExpired,
    _checkpoint,
    _current_task,
    _Value,
    _wait_task_rescheduled,
)
from .messages import GEN_CALL, GEN_CAST, Crash, Down, Exit, NodeDown, TimerRef
from .router import RemoteName

if TYPE_CHECKING:
    from .system import System

__all__ = ["ActorFn", "Dest", "Process"]

#: Where a message can go: a Pid, a locally registered name, ``(name, node_name)``
#: or ``("global", name)``.
Dest: TypeAlias = "Pid | str | tuple[str, str]"
#: An actor: ``async def fn(ctx, *args)``.
ActorFn: TypeAlias = Callable[..., Awaitable[Any]]

NORMAL: Final = "normal"
KILLED: Final = "killed"
NOCONNECTION: Final = "noconnection"
#: A call whose server's node is down fails with ``CallFailed((NODEDOWN, node))``.
NODEDOWN: Final = "nodedown"
_MISSING: Any = object()


class _ExitActor(BaseException):
    """Raised by `Process.exit(reason)`: ends the actor with `reason`.

    A BaseException so that a user's ``except Exception`` does not swallow it.
    """

    def __init__(self, reason: Any) -> None:
        super().__init__(reason)
        self.reason = reason


class _Started:
    """One-shot report from a starting process (gen_server init, supervisor)."""

    __slots__ = ("auto", "event", "failed", "reason")

    def __init__(self, auto: bool = False) -> None:
        # auto: started as soon as the actor function begins to run (plain
        # actors); otherwise the process reports it (gen_server after init).
        self.auto = auto
        self.event = trio.Event()
        self.failed = False
        self.reason: Any = None

    def ok(self) -> None:
        self.event.set()

    def fail(self, reason: Any) -> None:
        if not self.event.is_set():
            self.failed = True
            self.reason = reason
            self.event.set()


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        out: list[BaseException] = []
        for sub in exc.exceptions:
            out.extend(_leaves(sub))
        return out
    return [exc]


def _classify(exc: BaseException) -> tuple[Any, bool]:
    """(exit reason, must re-raise) of an exception that ended an actor."""
    if isinstance(exc, _ExitActor):
        return exc.reason, False
    leaves = _leaves(exc)
    fatal = any(
        not isinstance(e, Exception | trio.Cancelled | _ExitActor) for e in leaves
    )  # KeyboardInterrupt, SystemExit: the program is going down
    if any(isinstance(e, Exception) for e in leaves):
        return Crash.from_exception(exc), fatal
    for e in leaves:
        if isinstance(e, _ExitActor):
            return e.reason, fatal
    return KILLED, fatal


def _call_failure(down: Down) -> Any:
    """The `CallFailed` reason for the `Down` that ended a call: gen:call's
    ``{nodedown, Node}`` when the server's node is lost or unreachable."""
    if down.reason == NOCONNECTION:
        target = down.pid
        node = target.node if isinstance(target, Pid) else target[1]
        return (NODEDOWN, node)
    return down.reason


class Process(Mailbox):
    """An actor's view of itself: its pid, mailbox, links, monitors and signals.

    Actor functions get one (a `ta.Context`) as their first argument;
    `system.actor()` gives one to any task. All methods except
    `receive`/`call` are synchronous.
    """

    __slots__ = (
        "_cleanup_scope",
        "_endpoint",
        "_ext",
        "_key",
        "_killed",
        "_links",
        "_monitored_by",
        "_monitors",
        "_named",
        "_node_monitors",
        "_on_exit",
        "_parent",
        "_reason",
        "_scope",
        "_started",
        "_supervised",
        "alive",
        "pid",
        "system",
        "trap_exits",
    )

    def __init__(self, system: System, pid: Pid, key: int) -> None:
        # Mailbox fields set inline: spawning is hot and a super() call costs.
        self._queue = None
        self._saved = None
        self._waiter = None
        self._burst = 0
        self._dying = False
        self._received = 0
        self._call_ref = None
        self.system = system
        self.pid = pid
        # The process table's key of this actor (see System._key_of).
        self._key = key
        #: Exit signals (other than `kill`) arrive as `ta.Exit` messages when True.
        self.trap_exits = False
        self.alive = True
        self._links: set[Pid] | None = None
        # Monitors this actor holds: ref -> target (a Pid or a remote name).
        self._monitors: dict[Ref, Pid | RemoteName] | None = None
        # Monitors on this actor: ref -> (watcher, what the Down names).
        self._monitored_by: dict[Ref, tuple[Pid, Any]] | None = None
        self._node_monitors: list[str] | None = None
        self._scope: trio.CancelScope | None = None
        self._cleanup_scope: trio.CancelScope | None = None
        self._reason: Any = None
        self._killed = False
        self._on_exit: Callable[[Any], Awaitable[None]] | None = None
        self._parent: Pid | None = None
        self._supervised = False
        self._endpoint = False
        self._named = False
        self._started: _Started | None = None
        self._ext: Any = None

    def __repr__(self) -> str:
        return f"<Context {self.pid}>"

    def is_local(self, pid: Pid) -> bool:
        """True when `pid` is an actor of this actor's own node (of this
        incarnation of it), alive or not."""
        return self.system.is_local(pid)

    # -- messages

    def send(self, dest: Dest, msg: Any) -> None:
        """Send `msg` to `dest`; never blocks, never raises for a dead pid."""
        self.system.send(dest, msg)

    def cast(self, dest: Dest, request: Any) -> None:
        """Send a gen_server cast (no reply)."""
        self.system.send(dest, (GEN_CAST, request))

    async def call(self, dest: Dest, request: Any, timeout: float | None = 5.0) -> Any:  # noqa: ASYNC109
        """Call a gen_server and return its reply.

        Raises `ta.CallTimeout` after `timeout` seconds (None waits forever) and
        `ta.CallFailed(reason)` as soon as the server is or goes down (or is
        this very actor: ``calling_self``, which could never be answered).
        When the server's node is lost or cannot be reached the reason is
        ``("nodedown", node_name)``, like gen_server:call's ``{nodedown, Node}``.

        Like OTP 25's gen:call, the call's monitor ref is an alias: the reply
        goes to the waiting call itself, not through the mailbox, so a call
        costs the same however many messages are queued, and a reply that
        comes after the call ended (a timeout) is dropped rather than queued.
        """
        if self._dying:
            await _checkpoint()  # told to end: the cancellation, not a call
        if self._waiter is not None:
            raise trio.BusyResourceError("another task is already receiving on this mailbox")
        system = self.system
        me = self.pid
        if (
            type(dest) is Pid
            and dest.node is system.node_name
            and dest.creation == system.creation
            and not dest.serial
        ):
            where: Any = system._procs.get(dest.id)
        else:
            where = system._where(dest)
        if type(where) is not Pid and isinstance(where, Process):
            if where is self:
                raise CallFailed("calling_self", dest)
            ref = system._new_ref()
            # The monitor, inline (monitor() re-resolves and allocates more).
            mons = self._monitors
            if mons is None:
                mons = self._monitors = {}
            mons[ref] = where.pid
            watchers = where._monitored_by
            if watchers is None:
                watchers = where._monitored_by = {}
            watchers[ref] = (me, dest)
            where._deliver((GEN_CALL, (me, ref), request))
        elif where is None:
            raise CallFailed("noproc", dest)
        else:
            ref = self._remote_call(where, dest, request)
        if timeout is not None:
            # The system's call timer, not a cancel scope per call: entering
            # and leaving one costs more than the rest of the call.
            system._expire_call_in(timeout, ref, self)
        self._waiter = _current_task()
        self._call_ref = ref
        try:
            value = await _wait_task_rescheduled(self._abort)
        except _CallDown as down:
            # The monitor has fired (and is gone): the server is down.
            self._end_call(ref, where)
            raise CallFailed(_call_failure(down.down), dest) from None
        except _CallExpired:
            self._end_call(ref, where)
            raise CallTimeout(dest, timeout or 0.0) from None
        except BaseException:
            self._end_call(ref, where)
            raise
        self._end_call(ref, where)
        return value

    def _remote_call(self, where: Pid | RemoteName, dest: Any, request: Any) -> Ref:
        """Monitor a non-local server and send it the call; the ref."""
        router = self.system._router
        if router is None:
            node = where.node if isinstance(where, Pid) else where[1]
            raise CallFailed((NODEDOWN, node), dest)
        ref = self.monitor(dest)
        if not (self._monitors and ref in self._monitors):
            # The router fired the monitor at once (the node cannot be reached).
            down = self.receive_nowait(match=lambda m: type(m) is Down and m.ref == ref)
            raise CallFailed(_call_failure(down), dest)
        msg = (GEN_CALL, (self.pid, ref), request)
        try:
            if isinstance(where, Pid):
                router.send(where, msg)
            else:
                router.send_named(where, msg)
        except BaseException:
            self.demonitor(ref, flush=True)
            raise
        return ref

    def _is_me(self, dest: Any) -> bool:
        if type(dest) is Pid:
            return dest == self.pid
        if type(dest) is str:
            return self.system.registry.whereis(dest) == self.pid
        return False

    def _end_call(self, ref: Ref, where: Any) -> None:
        """Drop a call's timer and monitor (its alias is already inactive)."""
        deadlines = self.system._call_deadlines
        if deadlines:
            deadlines.pop(ref, None)
        mons = self._monitors
        if mons is None or mons.pop(ref, None) is None:
            # Already fired: its Down may be queued; the call has its answer.
            self._flush(lambda m: type(m) is Down and m.ref == ref)
            return
        if type(where) is not Pid and isinstance(where, Process):
            watchers = where._monitored_by
            if watchers is not None:
                watchers.pop(ref, None)
        else:
            router = self.system._router
            if router is not None:
                router.demonitor(self.pid, ref, where)

    # -- processes

    def spawn(self, fn: ActorFn, *args: Any, link: bool = False, name: str | None = None) -> Pid:
        """Start actor `fn(ctx, *args)`; linked to this actor if `link`."""
        return self.system._spawn(fn, args, name=name, parent=self, link=link).pid

    def link(self, pid: Pid) -> None:
        """Link to `pid`: when either ends, the other gets an exit signal.

        Linking to a local pid that is not alive raises `ta.NoProc`, or, while
        trapping exits, delivers ``Exit(pid, "noproc")`` instead (Erlang's
        link/1). For another node's pid the answer comes as an exit signal
        (``noproc``, or ``noconnection`` when the node cannot be reached).
        """
        if pid == self.pid:
            return
        system = self.system
        where = system._where(pid)
        if where is None:
            if not self.trap_exits:
                raise NoProc(
                    f"cannot link to {pid}: it is not alive (trap exits to get "
                    "Exit(pid, 'noproc') instead, or monitor it)"
                )
            if self._links is not None:
                self._links.discard(pid)
            self._deliver(Exit(pid, "noproc"))
            return
        if self._links is None:
            self._links = set()
        self._links.add(pid)
        if isinstance(where, Process):
            if where._links is None:
                where._links = set()
            where._links.add(self.pid)
        elif isinstance(where, Pid) and system._router is not None:
            system._router.link(self.pid, where)
        else:
            self._exit_signal(pid, NOCONNECTION, True)

    def unlink(self, pid: Pid) -> None:
        """Remove a link (both directions); no exit signal will come from it."""
        if self._links is None or pid not in self._links:
            return
        self._links.discard(pid)
        system = self.system
        where = system._where(pid)
        if isinstance(where, Process):
            if where._links is not None:
                where._links.discard(self.pid)
        elif isinstance(where, Pid) and system._router is not None:
            system._router.unlink(self.pid, where)

    def monitor(self, dest: Dest) -> Ref:
        """Watch `dest`: a `ta.Down(ref, target, reason)` message arrives when it
        ends (at once with ``noproc`` if it is not alive). `target` is the pid,
        or ``(name, node_name)`` for a registered name, local ones included
        (Erlang's ``{'DOWN', Ref, process, {Name, Node}, Reason}``); a
        ``("global", name)`` monitor watches the pid holding the name."""
        system = self.system
        ref = system._new_ref()
        where = system._where(dest)
        if isinstance(where, Process):
            if self._monitors is None:
                self._monitors = {}
            self._monitors[ref] = where.pid
            if where._monitored_by is None:
                where._monitored_by = {}
            where._monitored_by[ref] = (self.pid, system._monitor_label(dest, where.pid))
        elif where is None:
            self._deliver(Down(ref, system._monitor_label(dest, None), "noproc"))
        elif system._router is not None:
            if self._monitors is None:
                self._monitors = {}
            self._monitors[ref] = where
            system._router.monitor(self.pid, ref, where)
        else:
            self._deliver(Down(ref, where, NOCONNECTION))
        return ref

    def demonitor(self, ref: Ref, *, flush: bool = False) -> bool:
        """Cancel a monitor; True if it was active. With `flush`, also remove
        its `Down` message if it has already arrived."""
        mons = self._monitors
        target = mons.pop(ref, None) if mons else None
        if target is None:
            if flush:
                self._flush(lambda m: type(m) is Down and m.ref == ref)
            return False
        system = self.system
        proc = system._local_process(target) if isinstance(target, Pid) else None
        if proc is not None:
            if proc._monitored_by is not None:
                proc._monitored_by.pop(ref, None)
        elif system._router is not None and not (
            isinstance(target, Pid) and system.is_local(target)
        ):
            system._router.demonitor(self.pid, ref, target)
        return True

    def monitor_node(self, node_name: str) -> None:
        """Get `ta.NodeDown(node_name, reason)` when the connection to that node
        is lost (at once, ``noconnection``, if it cannot be reached)."""
        router = self.system._router
        if router is None:
            self._deliver(NodeDown(node_name, "noconnection"))
            return
        if self._node_monitors is None:
            self._node_monitors = []
        self._node_monitors.append(node_name)
        router.monitor_node(self.pid, node_name)

    def demonitor_node(self, node_name: str) -> None:
        """Cancel one `monitor_node(node_name)`."""
        if self._node_monitors and node_name in self._node_monitors:
            self._node_monitors.remove(node_name)
            router = self.system._router
            if router is not None:
                router.demonitor_node(self.pid, node_name)

    def register(self, name: str) -> None:
        """Register this actor as `name` (`ta.NameTaken` if taken)."""
        self.system.register(name, self.pid)

    @overload
    def exit(self, reason: Any, /) -> NoReturn: ...

    @overload
    def exit(self, pid: Pid, reason: Any, /) -> None: ...

    def exit(self, a: Any, b: Any = _MISSING, /) -> None:
        """``exit(reason)`` ends this actor with `reason` (raises; never returns).
        ``exit(pid, reason)`` sends an exit signal to `pid` from this actor;
        when `pid` is this actor and the signal ends it (it does not trap
        exits, or the reason is ``"kill"``), nothing after the call runs, as
        with Erlang's ``exit(self(), Reason)``."""
        if b is _MISSING:
            raise _ExitActor(a)
        dying, killed = self._dying, self._killed
        self.system._send_exit(self.pid, a, b)
        if (self._dying and not dying) or (self._killed and not killed):
            # Only a signal to this very actor can end it synchronously.
            raise _ExitActor(self._reason)

    def send_after(self, seconds: float, dest: Dest, msg: Any) -> TimerRef:
        """Send `msg` to `dest` in `seconds` (see `ActorSystem.send_after`)."""
        return self.system.send_after(seconds, dest, msg)

    @property
    def parent(self) -> Pid | None:
        """The pid of the actor that spawned this one, if any."""
        return self._parent

    # -- signals (internal)

    def _exit_signal(self, sender: Pid, reason: Any, link: bool) -> None:
        if not self.alive:
            return
        if link:
            links = self._links
            if not links or sender not in links:
                return  # the link was removed: the signal is void
            links.discard(sender)
        elif reason == "kill":
            self._die(KILLED, kill=True)
            return
        if self.trap_exits:
            self._deliver(Exit(sender, reason))
        elif reason == NORMAL:
            if not link and sender == self.pid:
                self._die(NORMAL)
        else:
            self._die(reason)

    def _die(self, reason: Any, *, kill: bool = False) -> None:
        if kill:
            self._killed = True
            self._reason = KILLED
            self._dying = True
            if self._cleanup_scope is not None:
                self._cleanup_scope.cancel()
        elif self._dying:
            return  # the first reason wins
        else:
            self._dying = True
            self._reason = reason
        if self._scope is not None:
            self._scope.cancel()

    def _take_reply(self, ref: Ref, value: Any) -> None:
        # The alias of call `ref` is active only while the call waits.
        if self._is_call(ref):
            self._resume_call(_Value(value))

    def _call_expired(self, ref: Ref) -> None:
        # The system's call timer: call `ref` has waited its timeout.
        if self._is_call(ref):
            self._resume_call(outcome.Error(_CallExpired()))

    def _cleaning_up(self) -> bool:
        return self._cleanup_scope is not None

    def _started_ok(self) -> None:
        if self._started is not None:
            self._started.ok()
