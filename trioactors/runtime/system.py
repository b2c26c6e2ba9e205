"""The local actor runtime: the process table, exit signals, links, monitors, timers.

A `System` owns one trio nursery. Every actor is a task of that nursery
running inside its own cancel scope; exit signals that end an actor cancel that
scope. The process table, the registry and the timers belong to the system
object (no module-level state), so several systems can live in one program.

A system has a node name (``nonode@nohost`` until a node owns it) and a
creation; its pids and refs carry both, so they are absolute (see
`trioactors.wire.terms`). Anything addressed to another node goes through
the `Router` a node installs with `set_router`; the node calls back through
the `RemoteSignals` methods at the end of `System`. This module never imports
the distribution layer, nor the OTP behaviours (`trioactors.otp` builds
`ta.ActorSystem` on top of `System`).
"""

from __future__ import annotations

import itertools
import logging
import math
import secrets
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, ClassVar, Final, TypeVar

import outcome
import trio

from ..errors import ActorExited, NoProc, NotLocalPid, StartFailed, SystemClosed
from ..wire.terms import NO_NODE, Pid, Ref, fresh_ref, intern_node
from .introspection import ProcessInfo, process_info
from .messages import GEN_CAST, Crash, Down, Exit, TimerRef
from .process import KILLED, NORMAL, ActorFn, Dest, Process, _classify, _ExitActor, _Started
from .registry import Registry
from .router import RemoteName, RemoteSignals, Router

__all__ = ["GLOBAL", "System", "open_system"]

logger = logging.getLogger("trioactors")

_reschedule = trio.lowlevel.reschedule
_Value = outcome.Value

#: First element of the ``("global", name)`` destination.
GLOBAL: Final = "global"
_WORD: Final = 2**32
_S = TypeVar("_S", bound="System")


def _node_of(target: Pid | RemoteName) -> str:
    return target.node if isinstance(target, Pid) else target[1]


class System:
    """A set of actors sharing a process table, a registry and timers.

    The runtime core of `ta.ActorSystem` (which adds the OTP behaviours);
    every method is synchronous except `join`, `call` and `actor()`.
    """

    #: The class of the processes this system makes (the OTP layer's `ta.Context`).
    process_class: ClassVar[type[Process]] = Process

    def __init__(
        self,
        nursery: trio.Nursery,
        *,
        node_name: str = NO_NODE,
        creation: int | None = None,
        shutdown_timeout: float = 5.0,
    ) -> None:
        if creation is None:
            # Two local systems of one program must not make equal pids.
            creation = secrets.randbits(32) or 1
        if not isinstance(creation, int) or not 0 <= creation < 2**32:
            raise ValueError(f"creation must be an int in 0..2**32-1, got {creation!r}")
        self._nursery = nursery
        #: The name of the node this system is (``nonode@nohost`` when local only).
        self.node_name = intern_node(node_name)
        #: Which incarnation of the node this is: part of every pid and ref.
        self.creation = creation
        #: Sender of the exit signals the system itself sends (`system.exit`).
        self.pid = Pid(self.node_name, 0, 0, creation)
        self.shutdown_timeout = shutdown_timeout
        self.registry = Registry()
        # The registry's name table, read directly where every remote named
        # message passes (deliver_named): a method call there costs ~5%.
        self._names = self.registry._by_name
        self._procs: dict[int, Process] = {}
        self._ids = itertools.count(1)
        self._refs = itertools.count(1)
        self._timer_ids = itertools.count(1)
        self._timers: dict[int, trio.CancelScope] = {}
        # Pending calls with a timeout: ref -> (deadline, caller). One task
        # (_expire_calls) sleeps until the earliest; a reply just drops the entry.
        self._call_deadlines: dict[Ref, tuple[float, Process]] = {}
        self._next_expiry = math.inf
        self._expiry_scope: trio.CancelScope | None = None
        self._expiring = False
        self._router: Router | None = None
        self._remote_monitored: dict[Ref, Process] = {}
        self._n_actors = 0
        self._idle: trio.Event | None = None
        self._closing = False
        self._closed = False

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.node_name} actors={self._n_actors}>"

    def set_router(self, router: Router | None) -> None:
        """Install (or remove) the router that carries non-local destinations."""
        self._router = router

    @property
    def router(self) -> Router | None:
        """The installed router, if any."""
        return self._router

    # -- pids and refs

    def process_info(self, pid: Pid | str) -> ProcessInfo | None:
        """A `ta.ProcessInfo` snapshot of a local process (a pid or a
        registered name), or None if it is not alive (Erlang's
        ``process_info/1``). Raises `ta.NotLocalPid` for another node's pid:
        ask that node (``node.rpc(node, "trioactors.process_info", pid)``)."""
        if isinstance(pid, Pid) and not self.is_local(pid):
            raise NotLocalPid(pid, "read process_info")
        proc = self._where(pid) if isinstance(pid, str) else self._local_process(pid)
        if not isinstance(proc, Process) or not proc.alive:
            return None
        return process_info(self, proc)

    def is_local(self, pid: Pid) -> bool:
        """True when `pid` names an actor of this system (alive or not): same
        node name and same creation."""
        return pid.creation == self.creation and pid.node == self.node_name

    def _new_pid(self) -> tuple[Pid, int]:
        n = next(self._ids)
        if n < _WORD:
            return Pid(self.node_name, n, 0, self.creation), n
        # Erlang's pid fields are 32 bits: the serial carries the high part.
        return Pid(self.node_name, n % _WORD, n // _WORD, self.creation), n

    def _new_ref(self) -> Ref:
        n = next(self._refs)
        if n < _WORD:
            return fresh_ref(self.node_name, self.creation, (n,))
        return Ref.of(self.node_name, self.creation, n)

    def _local_process(self, pid: Pid) -> Process | None:
        """The live local process `pid` names, if any (None for another node's
        pid, an earlier incarnation's, or a dead actor's)."""
        if pid.creation != self.creation or pid.node != self.node_name:
            return None
        return self._procs.get(pid.id + pid.serial * _WORD if pid.serial else pid.id)

    # -- destinations

    def _where(self, dest: Any) -> Process | Pid | RemoteName | None:
        """Resolve a destination: a live local process, a non-local target for
        the router (a Pid or ``(name, node)``), or None (local and not alive).

        The one place destinations are parsed: a Pid, a local name, ``(name,
        node_name)``, or ``("global", name)`` for a cluster-wide name (so a
        locally registered ``"global"`` is reachable by its plain name only).
        """
        if isinstance(dest, Pid):
            if dest.node == self.node_name:
                if dest.creation != self.creation:
                    logger.debug("%r is a pid of an earlier incarnation of this node", dest)
                    return None
                return self._local_process(dest)
            return dest
        if isinstance(dest, str):
            pid = self.registry.whereis(dest)
            return None if pid is None else self._local_process(pid)
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
            if node == self.node_name or (self._router is not None and self._router.is_self(node)):
                pid = self.registry.whereis(name)
                return None if pid is None else self._local_process(pid)
            return (name, node)
        raise TypeError(
            "a destination is a Pid, a registered name (str), (name, node_name) or "
            f'("global", name), not {dest!r}'
        )

    def _monitor_label(self, dest: Any, pid: Pid | None) -> Any:
        """What the `Down` of a monitor of `dest` names: ``(name, node_name)``
        for a registered name (a local one too, as in Erlang), the holder's
        pid for ``("global", name)`` (None: not registered, named as given)."""
        if type(dest) is str:
            return (dest, self.node_name)
        if pid is not None and type(dest) is tuple and dest[0] == GLOBAL:
            return pid
        return dest

    def send(self, dest: Dest, msg: Any) -> None:
        """Send `msg` to `dest`: never blocks, never raises for a dead pid or an
        unknown name (the message is dropped, like Erlang's ``!``)."""
        if (
            type(dest) is Pid
            and dest.node is self.node_name
            and dest.creation == self.creation
            and not dest.serial
        ):
            proc = self._procs.get(dest.id)
            if proc is not None:
                proc._received += 1
                waiter = proc._waiter
                if waiter is not None:
                    if proc._call_ref is None:
                        proc._waiter = None
                        _reschedule(waiter, _Value(msg))
                        return
                    if proc._answer(msg):
                        return
                queue = proc._queue
                if queue is None:
                    queue = proc._queue = deque()
                queue.append(msg)
            return
        router = self._router
        if router is not None:
            # Another node's pid or (name, node): straight to the router (the
            # common remote sends), without the general resolution below.
            if type(dest) is Pid:
                if dest.node != self.node_name:
                    router.send(dest, msg)
                    return
            elif type(dest) is tuple and len(dest) == 2:
                name, node = dest
                if (
                    type(node) is str
                    and type(name) is str
                    and name != GLOBAL
                    and node != self.node_name
                    and not router.is_self(node)
                ):
                    router.send_named(dest, msg)
                    return
        where = self._where(dest)
        if where is None:
            return
        if isinstance(where, Process):
            where._deliver(msg)
            return
        if router is None:
            logger.debug("dropping message for %s: this system is not a cluster node", where)
        elif isinstance(where, Pid):
            router.send(where, msg)
        else:
            router.send_named(where, msg)

    def cast(self, dest: Dest, request: Any) -> None:
        """Send a gen_server cast."""
        self.send(dest, (GEN_CAST, request))

    def _reply(self, to: Pid, ref: Ref, value: Any) -> None:
        """Answer call `ref` of `to` through its alias: the reply reaches the
        call while it waits and is dropped after it ended (OTP 25's gen:reply
        to an alias), never left in the caller's mailbox."""
        if to.node is self.node_name and to.creation == self.creation and not to.serial:
            proc = self._procs.get(to.id)
        elif self.is_local(to):
            proc = self._local_process(to)
        else:
            router = self._router
            if router is not None:
                router.reply(to, ref, value)
            return
        if proc is not None:
            proc._take_reply(ref, value)

    # -- processes

    def _spawn(
        self,
        fn: ActorFn,
        args: tuple[Any, ...],
        *,
        name: str | None = None,
        parent: Process | None = None,
        link: bool = False,
        supervised: bool = False,
        started: _Started | None = None,
    ) -> Process:
        if self._closed:
            raise SystemClosed("the actor system has shut down; it starts no new actors")
        pid, key = self._new_pid()
        if name is not None:
            self.registry.register(name, pid)
        ctx = self.process_class(self, pid, key)
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
        self._procs[key] = ctx
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
        parent: Process | None = None,
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

    async def _run(self, ctx: Process, fn: ActorFn, args: tuple[Any, ...]) -> None:
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

    def _log_crash(self, ctx: Process, crash: Crash, during: str = "") -> None:
        name = self.registry.name_of(ctx.pid)
        who = f"{ctx.pid} ({name})" if name else str(ctx.pid)
        when = f" in {during}" if during else ""
        logger.error("actor %s crashed%s: %s\n%s", who, when, crash, crash.traceback.rstrip())

    def _finish(self, ctx: Process, reason: Any) -> None:
        """The process has ended with `reason`: tell everyone, forget it."""
        ctx.alive = False
        pid = ctx.pid
        del self._procs[ctx._key]
        if ctx._named:
            self.registry.forget(pid)
        if ctx._started is not None:
            ctx._started.fail(reason)
        router = self._router
        local = self._local_process
        if ctx._links:
            for other in ctx._links:
                proc = local(other)
                if proc is not None:
                    proc._exit_signal(pid, reason, True)
                elif router is not None and not self.is_local(other):
                    router.exit(pid, other, reason, link=True)
            ctx._links = None
        if ctx._monitored_by:
            for ref, (watcher, label) in ctx._monitored_by.items():
                if self.is_local(watcher):
                    proc = local(watcher)
                    if proc is not None and proc._monitors and proc._monitors.pop(ref, None):
                        proc._deliver(Down(ref, label, reason))
                else:
                    self._remote_monitored.pop(ref, None)
                    if router is not None:
                        router.down(watcher, ref, label, reason)
            ctx._monitored_by = None
        if ctx._monitors:
            for ref, target in ctx._monitors.items():
                if isinstance(target, Pid) and self.is_local(target):
                    proc = local(target)
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

    def _new_endpoint(self) -> Process:
        if self._closed:
            raise SystemClosed("the actor system has shut down")
        pid, key = self._new_pid()
        ctx = self.process_class(self, pid, key)
        ctx._endpoint = True
        self._procs[key] = ctx
        return ctx

    @asynccontextmanager
    async def actor(
        self, *, name: str | None = None, trap_exits: bool = False
    ) -> AsyncIterator[Process]:
        """Let the current task act as an actor for the duration of the block
        (yields its `ta.Context`).

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
            if isinstance(exc, _ExitActor) and ctx._dying:
                # ctx.exit(ctx.pid, reason): the block ends as for any signal.
                raise ActorExited(ctx._reason, ctx.pid) from None
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
        return isinstance(proc, Process) and proc.alive

    def processes(self) -> list[Pid]:
        """The pids of every live local actor, in spawn order."""
        return [c.pid for c in self._procs.values() if not c._endpoint]

    def _send_exit(self, sender: Pid, target: Any, reason: Any) -> None:
        where = self._where(target)
        if isinstance(where, Process):
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
        if not isinstance(proc, Process):
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
        tref = TimerRef(next(self._timer_ids))
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

    def _expire_call_in(self, timeout: float, ref: Ref, caller: Process) -> None:
        """Time out call `ref` of `caller` in `timeout` seconds unless it ends first."""
        deadline = trio.current_time() + timeout
        self._call_deadlines[ref] = (deadline, caller)
        if deadline < self._next_expiry:
            self._next_expiry = deadline
            scope = self._expiry_scope
            if scope is not None:
                scope.deadline = deadline
            elif not self._expiring:
                self._expiring = True
                self._nursery.start_soon(self._expire_calls)

    async def _expire_calls(self) -> None:
        # The next expiry only ever moves earlier while this sleeps (a later
        # deadline is found on waking), so most calls never touch the scope.
        deadlines = self._call_deadlines
        while True:
            with trio.CancelScope(deadline=self._next_expiry) as scope:
                self._expiry_scope = scope
                await trio.sleep_forever()
            now = trio.current_time()
            nearest = math.inf
            for ref, (deadline, caller) in list(deadlines.items()):
                if deadline <= now:
                    del deadlines[ref]
                    caller._call_expired(ref)
                elif deadline < nearest:
                    nearest = deadline
            self._next_expiry = nearest

    def cancel_timer(self, ref: TimerRef) -> bool:
        """Stop a timer; True if it was still pending (its message not sent)."""
        scope = self._timers.pop(ref.id, None)
        if scope is None:
            return False
        scope.cancel()
        return True

    # -- calls

    async def call(self, dest: Dest, request: Any, timeout: float | None = 5.0) -> Any:  # noqa: ASYNC109
        """Call a gen_server from any task (see `Context.call`)."""
        ep = self._new_endpoint()
        try:
            return await ep.call(dest, request, timeout)
        finally:
            self._finish(ep, NORMAL)

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

    def _addressee(self, pid: Pid) -> Process | None:
        """The live local process a peer's signal is for, or None (logged at
        debug when the pid is of an earlier incarnation of this node)."""
        proc = self._local_process(pid)
        if proc is None and pid.node == self.node_name and pid.creation != self.creation:
            logger.debug(
                "dropping a signal for %r: a pid of an earlier incarnation of node %s",
                pid,
                self.node_name,
            )
        return proc

    def deliver(self, to: Pid, msg: Any) -> None:
        """A message from a peer for local pid `to` (dropped if not alive or of
        an earlier incarnation)."""
        if to.node is self.node_name and to.creation == self.creation and not to.serial:
            # The common case, as in `send`: a plain pid of this incarnation.
            proc = self._procs.get(to.id)
        else:
            proc = self._addressee(to)
        if proc is not None:
            proc._deliver(msg)

    def deliver_reply(self, to: Pid, ref: Ref, value: Any) -> None:
        """A peer's reply to call `ref` of local pid `to`: handed to the call
        if it still waits, else dropped (the alias is no longer active)."""
        proc = self._addressee(to)
        if proc is not None:
            proc._take_reply(ref, value)

    def deliver_named(self, name: str, msg: Any) -> None:
        """A message from a peer for the locally registered `name`."""
        pid = self._names.get(name)
        if pid is not None:
            self.deliver(pid, msg)

    def remote_link(self, local: Pid, remote: Pid) -> None:
        """A peer linked `remote` to `local` (answers ``noproc`` if `local` is dead)."""
        proc = self._addressee(local)
        if proc is None:
            if self._router is not None:
                self._router.exit(local, remote, "noproc", link=True)
            return
        if proc._links is None:
            proc._links = set()
        proc._links.add(remote)

    def remote_unlink(self, local: Pid, remote: Pid) -> None:
        """A peer removed its link between `remote` and `local`."""
        proc = self._addressee(local)
        if proc is not None and proc._links:
            proc._links.discard(remote)

    def remote_exit(self, sender: Pid, local: Pid, reason: Any, *, link: bool) -> None:
        """An exit signal from remote `sender` for `local`."""
        proc = self._addressee(local)
        if proc is not None:
            proc._exit_signal(sender, reason, link)

    def remote_monitor(self, watcher: Pid, ref: Ref, target: Pid | str) -> None:
        """Remote `watcher` monitors local `target` (a pid or a registered name)."""
        if isinstance(target, str):
            label: Any = (target, self.node_name)
            pid = self.registry.whereis(target)
            proc = None if pid is None else self._local_process(pid)
        else:
            label = target
            proc = self._addressee(target)
        if proc is None:
            if self._router is not None:
                self._router.down(watcher, ref, label, "noproc")
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
        proc = self._addressee(watcher)
        if proc is not None and proc._monitors and proc._monitors.pop(ref, None) is not None:
            proc._deliver(Down(ref, target, reason))

    def node_down(self, node_name: str, reason: Any = "noconnection") -> None:
        """The connection to node `node_name` is lost: links to its pids fire,
        monitors of its pids deliver `Down`, its monitors on us are dropped."""
        for proc in list(self._procs.values()):
            if proc._links:
                for other in [p for p in proc._links if p.node == node_name]:
                    proc._exit_signal(other, reason, True)
            if proc._monitors:
                for ref, target in list(proc._monitors.items()):
                    if _node_of(target) == node_name:
                        del proc._monitors[ref]
                        proc._deliver(Down(ref, target, reason))
            if proc._monitored_by:
                for ref, (watcher, _label) in list(proc._monitored_by.items()):
                    if watcher.node == node_name:
                        del proc._monitored_by[ref]
                        self._remote_monitored.pop(ref, None)


@asynccontextmanager
async def open_system(
    cls: type[_S],
    *,
    node_name: str = NO_NODE,
    creation: int | None = None,
    shutdown_timeout: float = 5.0,
) -> AsyncIterator[_S]:
    """Run a system of class `cls` for the duration of the block (see
    `ta.open_actor_system`, which is this with the OTP system class).

    Leaving the block (normally or by an exception) sends ``shutdown`` to every
    actor not under a supervisor, waits up to `shutdown_timeout` seconds for
    them to end, kills what is left, and leaves no task behind. An exception
    from the block is re-raised unchanged.
    """
    if not shutdown_timeout >= 0:
        raise ValueError(f"shutdown_timeout must be a number >= 0, got {shutdown_timeout!r}")
    error: BaseException | None = None
    async with trio.open_nursery() as nursery:
        system = cls(
            nursery, node_name=node_name, creation=creation, shutdown_timeout=shutdown_timeout
        )
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

    def _implements_remote_signals(system: System) -> RemoteSignals:
        # mypy proves here that System satisfies the node's protocol.
        return system
