"""The local actor runtime: processes, exit signals, links, monitors, timers.

An `ActorSystem` owns one trio nursery. Every actor is a task of that nursery
running inside its own cancel scope; exit signals that end an actor cancel that
scope. The process table, the registry and the timers belong to the system
object (no module-level state), so several systems can live in one program.

Pids and refs of this system carry `node == 0` and `serial == incarnation`.
Anything addressed elsewhere goes through the `Router` a node installs with
`set_router`; the node calls back through the `RemoteSignals` methods at the
end of `ActorSystem`. This module never imports the distribution layer.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Final, NoReturn, TypeAlias, overload

import outcome
import trio

from ..errors import ActorExited, CallFailed, CallTimeout, NoProc, StartFailed, SystemClosed
from ..wire.terms import LOCAL_NODE, Pid, Ref, _Counter, node_id_for
from .mailbox import Mailbox
from .messages import GEN_CALL, GEN_CAST, Crash, Down, Exit, NodeDown, TimerRef
from .registry import Registry
from .router import RemoteName, RemoteSignals, Router

if TYPE_CHECKING:
    from ..otp.gen_server import GenServer
    from ..otp.supervisor import ChildSpec, Strategy, SupervisorSpec

__all__ = ["ActorFn", "ActorSystem", "Context", "Dest", "open_actor_system"]

logger = logging.getLogger("trioactors")

#: Where a message can go: a Pid, a locally registered name, or ``(name, node_name)``.
Dest: TypeAlias = "Pid | str | tuple[str, str]"
#: An actor: ``async def fn(ctx, *args)``.
ActorFn: TypeAlias = Callable[..., Awaitable[Any]]

_reschedule = trio.lowlevel.reschedule
_Value = outcome.Value

NORMAL: Final = "normal"
KILLED: Final = "killed"
#: First element of the ``("global", name)`` destination.
GLOBAL: Final = "global"
_MISSING: Any = object()


class _ExitActor(BaseException):
    """Raised by `Context.exit(reason)`: ends the actor with `reason`.

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


def _node_of(target: Pid | RemoteName) -> int:
    if isinstance(target, Pid):
        return target.node
    return node_id_for(target[1])


class Context(Mailbox):
    """An actor's view of itself: its pid, mailbox, links, monitors and signals.

    Actor functions get one as their first argument; `system.actor()` gives one
    to any task. All methods except `receive`/`call` are synchronous.
    """

    __slots__ = (
        "_cleanup_scope",
        "_endpoint",
        "_ext",
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

    def __init__(self, system: ActorSystem, pid: Pid) -> None:
        # Mailbox fields set inline: spawning is hot and a super() call costs.
        self._queue = None
        self._saved = None
        self._waiter = None
        self._burst = 0
        self._dying = False
        self.system = system
        self.pid = pid
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
        """
        if self._is_me(dest):
            raise CallFailed("calling_self", dest)
        ref = self.monitor(dest)
        self.system.send(dest, (GEN_CALL, (self.pid, ref), request))

        def match(m: Any) -> bool:
            t = type(m)
            if t is tuple:
                return len(m) == 2 and (m[0] is ref or m[0] == ref)
            return t is Down and m.ref == ref

        try:
            msg = await self.receive(match=match, timeout=timeout)
        except trio.TooSlowError:
            self.demonitor(ref, flush=True)
            raise CallTimeout(dest, timeout or 0.0) from None
        if type(msg) is Down:
            raise CallFailed(msg.reason, dest)
        self.demonitor(ref, flush=True)
        return msg[1]

    def _is_me(self, dest: Any) -> bool:
        if type(dest) is Pid:
            return dest.id == self.pid.id and dest.node == LOCAL_NODE
        if type(dest) is str:
            return self.system.registry.whereis(dest) == self.pid
        return False

    # -- processes

    def spawn(self, fn: ActorFn, *args: Any, link: bool = False, name: str | None = None) -> Pid:
        """Start actor `fn(ctx, *args)`; linked to this actor if `link`."""
        return self.system._spawn(fn, args, name=name, parent=self, link=link).pid

    async def start_server(
        self, cls: type[GenServer], *args: Any, name: str | None = None, link: bool = False
    ) -> Pid:
        """Start a gen_server (see `ActorSystem.start_server`), optionally linked."""
        from ..otp.gen_server import _serve

        return await self.system._start(_serve, (cls, args), name=name, parent=self, link=link)

    def link(self, pid: Pid) -> None:
        """Link to `pid`: when either ends, the other gets an exit signal.

        Linking to a dead pid delivers an exit signal with reason ``noproc``.
        """
        if pid == self.pid:
            return
        system = self.system
        where = system._where(pid)
        if self._links is None:
            self._links = set()
        self._links.add(pid)
        if isinstance(where, Context):
            if where._links is None:
                where._links = set()
            where._links.add(self.pid)
        elif where is None:
            self._exit_signal(pid, "noproc", True)
        elif isinstance(where, Pid) and system._router is not None:
            system._router.link(self.pid, where)
        else:
            self._exit_signal(pid, "noconnection", True)

    def unlink(self, pid: Pid) -> None:
        """Remove a link (both directions); no exit signal will come from it."""
        if self._links is None or pid not in self._links:
            return
        self._links.discard(pid)
        system = self.system
        where = system._where(pid)
        if isinstance(where, Context):
            if where._links is not None:
                where._links.discard(self.pid)
        elif isinstance(where, Pid) and system._router is not None:
            system._router.unlink(self.pid, where)

    def monitor(self, dest: Dest) -> Ref:
        """Watch `dest`: a `ta.Down(ref, dest, reason)` message arrives when it
        ends (at once with ``noproc`` if it is not alive)."""
        system = self.system
        ref = Ref(LOCAL_NODE, system._refs.next(), system.incarnation)
        where = system._where(dest)
        if isinstance(where, Context):
            if self._monitors is None:
                self._monitors = {}
            self._monitors[ref] = where.pid
            if where._monitored_by is None:
                where._monitored_by = {}
            where._monitored_by[ref] = (self.pid, dest)
        elif where is None:
            self._deliver(Down(ref, dest, "noproc"))
        elif system._router is not None:
            if self._monitors is None:
                self._monitors = {}
            self._monitors[ref] = where
            system._router.monitor(self.pid, ref, where)
        else:
            self._deliver(Down(ref, dest, "noconnection"))
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
        if isinstance(target, Pid) and target.node == LOCAL_NODE:
            proc = system._procs.get(target.id)
            if proc is not None and proc._monitored_by is not None:
                proc._monitored_by.pop(ref, None)
        elif system._router is not None:
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
        ``exit(pid, reason)`` sends an exit signal to `pid` from this actor."""
        if b is _MISSING:
            raise _ExitActor(a)
        self.system._send_exit(self.pid, a, b)

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

    def _started_ok(self) -> None:
        if self._started is not None:
            self._started.ok()


class ActorSystem:
    """A set of actors sharing a process table, a registry and timers.

    Made by `open_actor_system()`; every method is synchronous except `join`,
    `call`, `start_server` and `start_supervisor`.
    """

    def __init__(
        self,
        nursery: trio.Nursery,
        *,
        incarnation: int = 0,
        shutdown_timeout: float = 5.0,
    ) -> None:
        self._nursery = nursery
        #: Serial of this system's pids and refs (a node's creation number).
        self.incarnation = incarnation
        #: This node's name once a node owns the system; None for a local system.
        self.node_name: str | None = None
        #: Sender of the exit signals the system itself sends (`system.exit`).
        self.pid = Pid(LOCAL_NODE, 0, incarnation)
        self.shutdown_timeout = shutdown_timeout
        self.registry = Registry()
        self._procs: dict[int, Context] = {}
        self._ids = _Counter(1)
        self._refs = _Counter(1)
        self._timer_ids = _Counter(1)
        self._timers: dict[int, trio.CancelScope] = {}
        self._router: Router | None = None
        self._remote_monitored: dict[Ref, Context] = {}
        self._n_actors = 0
        self._idle: trio.Event | None = None
        self._closing = False
        self._closed = False

    def __repr__(self) -> str:
        return f"<ActorSystem incarnation={self.incarnation} actors={self._n_actors}>"

    def set_router(self, router: Router | None) -> None:
        """Install (or remove) the router that carries non-local destinations."""
        self._router = router

    @property
    def router(self) -> Router | None:
        """The installed router, if any."""
        return self._router

    # -- destinations

    def _where(self, dest: Any) -> Context | Pid | RemoteName | None:
        """Resolve a destination: a live local Context, a non-local target for
        the router (a Pid or ``(name, node)``), or None (local and not alive).

        The one place destinations are parsed: a Pid, a local name, ``(name,
        node_name)``, or ``("global", name)`` for a cluster-wide name (so a
        locally registered ``"global"`` is reachable by its plain name only).
        """
        if isinstance(dest, Pid):
            if dest.node == LOCAL_NODE:
                if dest.serial != self.incarnation:
                    return None
                return self._procs.get(dest.id)
            return dest
        if isinstance(dest, str):
            pid = self.registry.whereis(dest)
            return None if pid is None else self._procs.get(pid.id)
        if (
            isinstance(dest, tuple)
            and len(dest) == 2
            and isinstance(dest[0], str)
            and isinstance(dest[1], str)
        ):
            name, node = dest
            if name == GLOBAL:
                # ("global", name): a cluster-wide name, resolved by the node.
                pid = None if self._router is None else self._router.whereis_global(node)
                return None if pid is None else self._where(pid)
            if self._router is None or self._router.is_self(node):
                pid = self.registry.whereis(name)
                return None if pid is None else self._procs.get(pid.id)
            return (name, node)
        raise TypeError(
            "a destination is a Pid, a registered name (str), (name, node_name) or "
            f'("global", name), not {dest!r}'
        )

    def send(self, dest: Dest, msg: Any) -> None:
        """Send `msg` to `dest`: never blocks, never raises for a dead pid or an
        unknown name (the message is dropped, like Erlang's ``!``)."""
        if type(dest) is Pid and dest.node == LOCAL_NODE:
            if dest.serial == self.incarnation:
                proc = self._procs.get(dest.id)
                if proc is not None:
                    waiter = proc._waiter
                    if waiter is None:
                        queue = proc._queue
                        if queue is None:
                            queue = proc._queue = deque()
                        queue.append(msg)
                    else:
                        proc._waiter = None
                        _reschedule(waiter, _Value(msg))
            return
        where = self._where(dest)
        if where is None:
            return
        if isinstance(where, Context):
            where._deliver(msg)
            return
        router = self._router
        if router is None:
            logger.debug("dropping message for %s: no router installed", where)
        elif isinstance(where, Pid):
            router.send(where, msg)
        else:
            router.send_named(where, msg)

    def cast(self, dest: Dest, request: Any) -> None:
        """Send a gen_server cast."""
        self.send(dest, (GEN_CAST, request))

    # -- processes

    def _spawn(
        self,
        fn: ActorFn,
        args: tuple[Any, ...],
        *,
        name: str | None = None,
        parent: Context | None = None,
        link: bool = False,
        supervised: bool = False,
        started: _Started | None = None,
    ) -> Context:
        if self._closed:
            raise SystemClosed("the actor system has shut down; it starts no new actors")
        pid = Pid(LOCAL_NODE, self._ids.next(), self.incarnation)
        if name is not None:
            self.registry.register(name, pid)
        ctx = Context(self, pid)
        if name is not None:
            ctx._named = True
        if parent is not None:
            ctx._parent = parent.pid
            if link:
                ctx._links = {parent.pid}
                if parent._links is None:
                    parent._links = set()
                parent._links.add(pid)
        ctx._supervised = supervised
        ctx._started = started
        self._procs[pid.id] = ctx
        self._n_actors += 1
        self._nursery.start_soon(self._run, ctx, fn, args)
        return ctx

    def spawn(self, fn: ActorFn, *args: Any, name: str | None = None) -> Pid:
        """Start actor ``fn(ctx, *args)`` and return its pid at once.

        `name` registers it (`ta.NameTaken` if taken). An exception in the actor
        ends it with a `ta.Crash` reason; it never reaches the caller.
        """
        return self._spawn(fn, args, name=name).pid

    async def _start(
        self,
        fn: ActorFn,
        args: tuple[Any, ...],
        *,
        name: str | None = None,
        parent: Context | None = None,
        link: bool = False,
        supervised: bool = False,
        what: str = "server",
        auto: bool = False,
    ) -> Pid:
        """Spawn a process and wait until it has started (`auto`: until its
        function runs; otherwise until it reports); StartFailed if it ends
        first."""
        started = _Started(auto)
        ctx = self._spawn(
            fn, args, name=name, parent=parent, link=link, supervised=supervised, started=started
        )
        await started.event.wait()
        if started.failed:
            if parent is not None and link:
                pid = ctx.pid
                parent._flush(lambda m: type(m) is Exit and m.pid == pid)
            raise StartFailed(started.reason, what)
        return ctx.pid

    async def _run(self, ctx: Context, fn: ActorFn, args: tuple[Any, ...]) -> None:
        reason: Any = NORMAL
        error: BaseException | None = None
        try:
            with trio.CancelScope() as scope:
                ctx._scope = scope
                if not ctx._dying:
                    started = ctx._started
                    if started is not None and started.auto:
                        started.ok()
                    await fn(ctx, *args)
        except BaseException as exc:
            reason, fatal = _classify(exc)
            if fatal:
                error = exc
        if ctx._killed or (ctx._dying and not isinstance(reason, Crash)):
            reason = ctx._reason
        elif isinstance(reason, Crash):
            # Also an error raised by cleanup code while ending for a signal:
            # it is reported rather than lost.
            self._log_crash(ctx, reason)
        hook = ctx._on_exit
        if hook is not None and not ctx._killed:
            ctx._on_exit = None
            with trio.CancelScope(shield=True) as cleanup:
                ctx._cleanup_scope = cleanup
                try:
                    await hook(reason)
                except BaseException as exc:
                    new, fatal = _classify(exc)
                    if fatal:
                        error = exc
                    if not ctx._killed and new != KILLED:
                        reason = new
                        if isinstance(new, Crash):
                            self._log_crash(ctx, new, during="terminate")
            if ctx._killed:
                reason = KILLED
        self._finish(ctx, reason)
        if error is not None:
            raise error

    def _log_crash(self, ctx: Context, crash: Crash, during: str = "") -> None:
        name = self.registry.name_of(ctx.pid)
        who = f"{ctx.pid} ({name})" if name else str(ctx.pid)
        when = f" in {during}" if during else ""
        logger.error("actor %s crashed%s: %s\n%s", who, when, crash, crash.traceback.rstrip())

    def _finish(self, ctx: Context, reason: Any) -> None:
        """The process has ended with `reason`: tell everyone, forget it."""
        ctx.alive = False
        pid = ctx.pid
        del self._procs[pid.id]
        if ctx._named:
            self.registry.forget(pid)
        if ctx._started is not None:
            ctx._started.fail(reason)
        router = self._router
        if ctx._links:
            for other in ctx._links:
                if other.node == LOCAL_NODE:
                    proc = self._procs.get(other.id)
                    if proc is not None:
                        proc._exit_signal(pid, reason, True)
                elif router is not None:
                    router.exit(pid, other, reason, link=True)
            ctx._links = None
        if ctx._monitored_by:
            for ref, (watcher, label) in ctx._monitored_by.items():
                if watcher.node == LOCAL_NODE:
                    proc = self._procs.get(watcher.id)
                    if proc is not None and proc._monitors and proc._monitors.pop(ref, None):
                        proc._deliver(Down(ref, label, reason))
                else:
                    self._remote_monitored.pop(ref, None)
                    if router is not None:
                        router.send(watcher, Down(ref, label, reason))
            ctx._monitored_by = None
        if ctx._monitors:
            for ref, target in ctx._monitors.items():
                if isinstance(target, Pid) and target.node == LOCAL_NODE:
                    proc = self._procs.get(target.id)
                    if proc is not None and proc._monitored_by:
                        proc._monitored_by.pop(ref, None)
                elif router is not None:
                    router.demonitor(pid, ref, target)
            ctx._monitors = None
        if ctx._node_monitors and router is not None:
            for node_name in ctx._node_monitors:
                router.demonitor_node(pid, node_name)
        if not ctx._endpoint:
            self._n_actors -= 1
            if self._n_actors == 0 and self._idle is not None:
                self._idle.set()

    def _new_endpoint(self) -> Context:
        if self._closed:
            raise SystemClosed("the actor system has shut down")
        ctx = Context(self, Pid(LOCAL_NODE, self._ids.next(), self.incarnation))
        ctx._endpoint = True
        self._procs[ctx.pid.id] = ctx
        return ctx

    @asynccontextmanager
    async def actor(
        self, *, name: str | None = None, trap_exits: bool = False
    ) -> AsyncIterator[Context]:
        """Let the current task act as an actor for the duration of the block.

        If an exit signal ends it (a linked actor crashed, `exit(pid, ...)`),
        the block is cancelled and `ta.ActorExited(reason)` raised; with
        `trap_exits=True` signals arrive as `ta.Exit` messages instead.
        """
        ctx = self._new_endpoint()
        ctx.trap_exits = trap_exits
        try:
            if name is not None:
                self.register(name, ctx.pid)
            with trio.CancelScope() as scope:
                ctx._scope = scope
                yield ctx
        except BaseException as exc:
            if ctx.alive:
                reason, _ = _classify(exc)
                self._finish(ctx, ctx._reason if ctx._dying else reason)
            raise
        if ctx._dying:
            self._finish(ctx, ctx._reason)
            raise ActorExited(ctx._reason, ctx.pid)
        self._finish(ctx, NORMAL)

    async def join(self, pid: Pid) -> Any:
        """Wait until `pid` ends and return its exit reason (``noproc`` if it
        is not alive)."""
        ep = self._new_endpoint()
        try:
            ref = ep.monitor(pid)
            msg = await ep.receive(match=lambda m: type(m) is Down and m.ref == ref)
            return msg.reason
        finally:
            self._finish(ep, NORMAL)

    def is_alive(self, pid: Pid) -> bool:
        """True while the local actor `pid` runs (also while it is ending)."""
        proc = self._where(pid)
        return isinstance(proc, Context) and proc.alive

    def processes(self) -> list[Pid]:
        """The pids of every live local actor, in spawn order."""
        return [c.pid for c in self._procs.values() if not c._endpoint]

    def _send_exit(self, sender: Pid, target: Any, reason: Any) -> None:
        where = self._where(target)
        if isinstance(where, Context):
            where._exit_signal(sender, reason, False)
        elif isinstance(where, Pid) and self._router is not None:
            self._router.exit(sender, where, reason, link=False)

    def exit(self, pid: Pid, reason: Any) -> None:
        """Send exit signal `reason` to `pid` (from the system).

        ``"kill"`` cannot be trapped and ends the target with ``"killed"``;
        ``"normal"`` is ignored unless the target traps exits; anything else
        ends the target, or arrives as `ta.Exit` if it traps exits.
        """
        self._send_exit(self.pid, pid, reason)

    # -- registry

    def register(self, name: str, pid: Pid) -> None:
        """Register live local actor `pid` as `name` (`ta.NameTaken` if either
        already has a name, `ta.NoProc` if it is not alive)."""
        proc = self._where(pid) if isinstance(pid, Pid) else None
        if not isinstance(proc, Context):
            raise NoProc(f"cannot register {name!r}: {pid} is not a live local actor")
        self.registry.register(name, pid)
        proc._named = True

    def unregister(self, name: str) -> bool:
        """Remove a name; True if it was registered."""
        return self.registry.unregister(name)

    def whereis(self, name: str) -> Pid | None:
        """The pid registered as `name`, or None."""
        return self.registry.whereis(name)

    def registered(self) -> list[str]:
        """Every registered name, sorted."""
        return self.registry.names()

    # -- timers

    def send_after(self, seconds: float, dest: Dest, msg: Any) -> TimerRef:
        """Send `msg` to `dest` after `seconds`; returns a ref for `cancel_timer`."""
        if self._closed:
            raise SystemClosed("the actor system has shut down")
        tref = TimerRef(self._timer_ids.next())
        scope = trio.CancelScope()
        self._timers[tref.id] = scope
        deadline = trio.current_time() + max(0.0, seconds)
        self._nursery.start_soon(self._timer, tref.id, scope, deadline, dest, msg)
        return tref

    async def _timer(
        self, tid: int, scope: trio.CancelScope, deadline: float, dest: Any, msg: Any
    ) -> None:
        with scope:
            await trio.sleep_until(deadline)
        if self._timers.pop(tid, None) is not None:
            self.send(dest, msg)

    def cancel_timer(self, ref: TimerRef) -> bool:
        """Stop a timer; True if it was still pending (its message not sent)."""
        scope = self._timers.pop(ref.id, None)
        if scope is None:
            return False
        scope.cancel()
        return True

    # -- gen_server and supervisor entry points

    async def call(self, dest: Dest, request: Any, timeout: float | None = 5.0) -> Any:  # noqa: ASYNC109
        """Call a gen_server from any task (see `Context.call`)."""
        ep = self._new_endpoint()
        try:
            return await ep.call(dest, request, timeout)
        finally:
            self._finish(ep, NORMAL)

    async def start_server(self, cls: type[GenServer], *args: Any, name: str | None = None) -> Pid:
        """Start gen_server `cls` with ``init(*args)``; returns once `init` has
        returned. `ta.StartFailed` if `init` raises or the server exits."""
        from ..otp.gen_server import _serve

        return await self._start(_serve, (cls, args), name=name)

    async def start_supervisor(
        self,
        children: Iterable[ChildSpec] | SupervisorSpec,
        *,
        strategy: Strategy = "one_for_one",
        max_restarts: int = 3,
        max_seconds: float = 5.0,
        name: str | None = None,
    ) -> Pid:
        """Start a supervisor; returns once every child has started in order.

        `ta.StartFailed` if a child fails to start (the ones started are
        stopped first).
        """
        from ..otp.supervisor import SupervisorSpec, _supervise

        if isinstance(children, SupervisorSpec):
            spec = children
        else:
            spec = SupervisorSpec(
                tuple(children),
                strategy=strategy,
                max_restarts=max_restarts,
                max_seconds=max_seconds,
            )
        return await self._start(_supervise, (spec,), name=name, what="supervisor")

    def which_children(self, sup: Pid | str) -> list[tuple[Any, Pid | None, str]]:
        """``[(id, pid or None, restart), ...]`` of a local supervisor, in start order."""
        from ..otp.supervisor import _which_children

        proc = self._where(sup)
        if not isinstance(proc, Context):
            raise NoProc(f"{sup!r} is not a live local supervisor")
        return _which_children(proc)

    # -- shutdown

    async def _shutdown(self) -> None:
        self._closing = True
        roots = [c for c in reversed(self._procs.values()) if not c._supervised]
        for ctx in roots:
            if not ctx._endpoint:
                ctx._exit_signal(self.pid, "shutdown", False)
        if self._n_actors:
            self._idle = trio.Event()
            with trio.move_on_after(self.shutdown_timeout):
                await self._idle.wait()
        if self._n_actors:
            left = [c for c in self._procs.values() if not c._endpoint]
            logger.warning(
                "%d actor(s) did not stop within %s s of shutdown; killing them",
                len(left),
                self.shutdown_timeout,
            )
            for ctx in reversed(left):
                ctx._die(KILLED, kill=True)
            with trio.move_on_after(1.0):
                await self._idle.wait()  # type: ignore[union-attr]
        self._closed = True
        for scope in self._timers.values():
            scope.cancel()
        self._timers.clear()

    # -- RemoteSignals: called by a node for signals arriving from peers

    def _local(self, pid: Pid) -> Context | None:
        if pid.node != LOCAL_NODE or pid.serial != self.incarnation:
            return None
        return self._procs.get(pid.id)

    def deliver(self, to: Pid, msg: Any) -> None:
        """A message from a peer for local pid `to` (dropped if not alive)."""
        proc = self._local(to)
        if proc is None:
            return
        if type(msg) is Down:
            # The Down of a remote monitor: it must not outlive a demonitor.
            if not proc._monitors or proc._monitors.pop(msg.ref, None) is None:
                return
        proc._deliver(msg)

    def deliver_named(self, name: str, msg: Any) -> None:
        """A message from a peer for the locally registered `name`."""
        pid = self.registry.whereis(name)
        if pid is not None:
            self.deliver(pid, msg)

    def remote_link(self, local: Pid, remote: Pid) -> None:
        """A peer linked `remote` to `local` (answers ``noproc`` if `local` is dead)."""
        proc = self._local(local)
        if proc is None:
            if self._router is not None:
                self._router.exit(local, remote, "noproc", link=True)
            return
        if proc._links is None:
            proc._links = set()
        proc._links.add(remote)

    def remote_unlink(self, local: Pid, remote: Pid) -> None:
        """A peer removed its link between `remote` and `local`."""
        proc = self._local(local)
        if proc is not None and proc._links:
            proc._links.discard(remote)

    def remote_exit(self, sender: Pid, local: Pid, reason: Any, *, link: bool) -> None:
        """An exit signal from remote `sender` for `local`."""
        proc = self._local(local)
        if proc is not None:
            proc._exit_signal(sender, reason, link)

    def remote_monitor(self, watcher: Pid, ref: Ref, target: Pid | str) -> None:
        """Remote `watcher` monitors local `target` (a pid or a registered name)."""
        if isinstance(target, str):
            label: Any = (target, self.node_name or "nonode@nohost")
            pid = self.registry.whereis(target)
            proc = None if pid is None else self._procs.get(pid.id)
        else:
            label = target
            proc = self._local(target)
        if proc is None:
            if self._router is not None:
                self._router.send(watcher, Down(ref, label, "noproc"))
            return
        if proc._monitored_by is None:
            proc._monitored_by = {}
        proc._monitored_by[ref] = (watcher, label)
        self._remote_monitored[ref] = proc

    def remote_demonitor(self, ref: Ref) -> None:
        """A remote watcher cancelled monitor `ref`."""
        proc = self._remote_monitored.pop(ref, None)
        if proc is not None and proc._monitored_by:
            proc._monitored_by.pop(ref, None)

    def remote_down(self, watcher: Pid, ref: Ref, target: Pid | RemoteName, reason: Any) -> None:
        """Remote monitored `target` ended (or its node is unreachable)."""
        proc = self._local(watcher)
        if proc is not None and proc._monitors and proc._monitors.pop(ref, None) is not None:
            proc._deliver(Down(ref, target, reason))

    def node_down(self, node_id: int, reason: Any = "noconnection") -> None:
        """The connection to node `node_id` is lost: links to its pids fire,
        monitors of its pids deliver `Down`, its monitors on us are dropped."""
        for proc in list(self._procs.values()):
            if proc._links:
                for other in [p for p in proc._links if p.node == node_id]:
                    proc._exit_signal(other, reason, True)
            if proc._monitors:
                for ref, target in list(proc._monitors.items()):
                    if _node_of(target) == node_id:
                        del proc._monitors[ref]
                        proc._deliver(Down(ref, target, reason))
            if proc._monitored_by:
                for ref, (watcher, _label) in list(proc._monitored_by.items()):
                    if watcher.node == node_id:
                        del proc._monitored_by[ref]
                        self._remote_monitored.pop(ref, None)


@asynccontextmanager
async def open_actor_system(
    *, incarnation: int = 0, shutdown_timeout: float = 5.0
) -> AsyncIterator[ActorSystem]:
    """Run an actor system for the duration of the block.

    Leaving the block (normally or by an exception) sends ``shutdown`` to every
    actor not under a supervisor (supervisors stop their children in reverse
    start order), waits up to `shutdown_timeout` seconds for them to end, kills
    what is left, and leaves no task behind. An exception from the block is
    re-raised unchanged.
    """
    if not isinstance(incarnation, int) or incarnation < 0 or math.isnan(shutdown_timeout):
        raise ValueError("incarnation must be an int >= 0 and shutdown_timeout a number")
    error: BaseException | None = None
    async with trio.open_nursery() as nursery:
        system = ActorSystem(nursery, incarnation=incarnation, shutdown_timeout=shutdown_timeout)
        try:
            yield system
        except BaseException as exc:
            error = exc
        finally:
            with trio.CancelScope(shield=True):
                await system._shutdown()
            nursery.cancel_scope.cancel()
    if error is not None:
        try:
            raise error
        finally:
            error = None


if TYPE_CHECKING:

    def _implements_remote_signals(system: ActorSystem) -> RemoteSignals:
        # mypy proves here that ActorSystem satisfies the node's protocol.
        return system
