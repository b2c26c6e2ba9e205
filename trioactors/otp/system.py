"""`ta.ActorSystem` and `ta.Context`: the local runtime with the OTP behaviours.

The runtime (`trioactors.runtime`) knows nothing of gen_servers and
supervisors; this module adds the entry points that start them, so imports
run one way: runtime <- behaviours <- this.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, ClassVar, cast

from ..errors import NoProc, StartFailed
from ..runtime.process import NORMAL, ActorFn, Dest, Process
from ..runtime.system import System, open_system
from ..wire.terms import NO_NODE, Pid
from .gen_server import IGNORE, GenServer, _serve, _stop
from .supervisor import (
    ChildCounts,
    ChildSpec,
    Strategy,
    SupervisorSpec,
    _admin,
    _count_children,
    _supervise,
    _which_children,
    dynamic_supervisor,
)
from .tree import SupervisionNode, supervision_trees

__all__ = ["ActorSystem", "Context", "open_actor_system"]


async def _start_server(
    system: System,
    cls: type[GenServer],
    args: tuple[Any, ...],
    name: str | None,
    parent: Process | None = None,
    link: bool = False,
) -> Pid | None:
    try:
        return await system._start(_serve, (cls, args), name=name, parent=parent, link=link)
    except StartFailed as exc:
        if exc.reason is IGNORE:
            return None
        raise


class Context(Process):
    """An actor's view of itself: its pid, mailbox, links, monitors and signals.

    Actor functions get one as their first argument; `system.actor()` gives one
    to any task. All methods except `receive`, `call` and the gen_server and
    supervisor requests (`start_server`, `stop`, `start_child`, ...) are
    synchronous.
    """

    __slots__ = ()

    if TYPE_CHECKING:
        system: ActorSystem

    async def start_server(
        self, cls: type[GenServer], *args: Any, name: str | None = None, link: bool = False
    ) -> Pid | None:
        """Start a gen_server (see `ActorSystem.start_server`), optionally linked."""
        return await _start_server(self.system, cls, args, name, self, link)

    async def stop(self, server: Dest, reason: Any = NORMAL, timeout: float | None = None) -> None:  # noqa: ASYNC109
        """Stop a gen_server from this actor (see `ActorSystem.stop`)."""
        await _stop(self, server, reason, timeout)

    async def start_child(self, sup: Dest, *args: Any) -> Pid | None:
        """Add a child to a supervisor (see `ActorSystem.start_child`)."""
        return await _admin(self.system, self.call, sup, "start_child", args)  # type: ignore[no-any-return]

    async def terminate_child(self, sup: Dest, child: Any) -> None:
        """Stop a supervisor's child (see `ActorSystem.terminate_child`)."""
        await _admin(self.system, self.call, sup, "terminate_child", child)

    async def restart_child(self, sup: Dest, child_id: Any) -> Pid | None:
        """Start a stopped child again (see `ActorSystem.restart_child`)."""
        return await _admin(self.system, self.call, sup, "restart_child", child_id)  # type: ignore[no-any-return]

    async def delete_child(self, sup: Dest, child_id: Any) -> None:
        """Forget a stopped child (see `ActorSystem.delete_child`)."""
        await _admin(self.system, self.call, sup, "delete_child", child_id)

    def which_children(self, sup: Pid | str) -> list[tuple[Any, Pid | str | None, str]]:
        """A local supervisor's children (see `ActorSystem.which_children`)."""
        return self.system.which_children(sup)

    def count_children(self, sup: Pid | str) -> ChildCounts:
        """A local supervisor's child counts (see `ActorSystem.count_children`)."""
        return self.system.count_children(sup)


class ActorSystem(System):
    """A set of actors sharing a process table, a registry and timers.

    Made by `open_actor_system()` (or owned by a node); every method is
    synchronous except `join`, `call` and the gen_server and supervisor
    requests (`start_server`, `stop`, `start_supervisor`, `start_child`, ...).
    """

    process_class: ClassVar[type[Process]] = Context

    @asynccontextmanager
    async def actor(
        self, *, name: str | None = None, trap_exits: bool = False
    ) -> AsyncIterator[Context]:
        """Let the current task act as an actor for the duration of the block.

        If an exit signal ends it (a linked actor crashed, `exit(pid, ...)`),
        the block is cancelled and `ta.ActorExited(reason)` raised; with
        `trap_exits=True` signals arrive as `ta.Exit` messages instead.
        """
        async with super().actor(name=name, trap_exits=trap_exits) as ctx:
            yield cast(Context, ctx)

    async def start_server(
        self, cls: type[GenServer], *args: Any, name: str | None = None
    ) -> Pid | None:
        """Start gen_server `cls` with ``init(*args)``; returns its pid once
        `init` has returned, or None if `init` returned `ta.IGNORE` (the
        server has ended). `ta.StartFailed` if `init` raises or the server
        exits."""
        return await _start_server(self, cls, args, name)

    async def stop(self, server: Dest, reason: Any = NORMAL, timeout: float | None = None) -> None:  # noqa: ASYNC109
        """Stop gen_server `server` with `reason` and wait until it has ended
        (OTP's ``gen_server:stop/3``): its `terminate(reason)` runs whether
        or not it traps exits.

        Raises `ta.NoProc` if no such server is alive, `ta.StopTimeout` if it
        has not ended after `timeout` seconds (None, the default, waits as
        long as it takes; the server keeps running), and `ta.StopFailed` if
        it ended with another reason (e.g. its terminate raised).
        """
        ep = self._new_endpoint()
        try:
            await _stop(ep, server, reason, timeout)
        finally:
            self._finish(ep, NORMAL)

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

    async def start_dynamic_supervisor(
        self,
        child: ChildSpec | ActorFn | type[GenServer] | SupervisorSpec,
        *,
        max_restarts: int = 3,
        max_seconds: float = 5.0,
        max_children: int | None = None,
        name: str | None = None,
    ) -> Pid:
        """Start a dynamic supervisor (OTP's ``simple_one_for_one``, Elixir's
        DynamicSupervisor) for children made from the template `child`; see
        `ta.dynamic_supervisor`. It starts with no child:
        ``start_child(sup, *extra_args)`` adds one."""
        spec = dynamic_supervisor(
            child, max_restarts=max_restarts, max_seconds=max_seconds, max_children=max_children
        )
        return await self._start(_supervise, (spec,), name=name, what="supervisor")

    async def start_child(self, sup: Dest, *args: Any) -> Pid | None:
        """Add a child to supervisor `sup` and start it (OTP's
        ``supervisor:start_child/2``); returns its pid, or None if its
        ``init`` returned `ta.IGNORE`.

        For a supervisor with ids, pass one `ta.ChildSpec`: the child is
        started last and stopped first; an ignoring child is kept as not
        running (unless temporary). Raises `ta.ChildAlreadyStarted` /
        `ta.ChildAlreadyPresent` if the id is taken by a running / stopped
        child, `ta.StartFailed` if it fails to start (the spec is not kept).

        For a dynamic supervisor, pass the extra arguments appended to the
        template's `args`; `ta.MaxChildren` if it has `max_children` already.
        """
        return await _admin(self, self.call, sup, "start_child", args)  # type: ignore[no-any-return]

    async def terminate_child(self, sup: Dest, child: Any) -> None:
        """Stop a child of `sup` as the supervisor would (its shutdown
        policy) and wait until it has ended (OTP's ``terminate_child/2``).

        `child` is the child's id, or its pid for a dynamic supervisor. The
        spec is kept, not running (`restart_child` starts it again), except
        for a temporary or dynamic child, which is forgotten. A child that
        is not running is fine. `ta.ChildNotFound` if there is no such child.
        """
        await _admin(self, self.call, sup, "terminate_child", child)

    async def restart_child(self, sup: Dest, child_id: Any) -> Pid | None:
        """Start again a child of `sup` that is not running (OTP's
        ``restart_child/2``); returns its pid, or None if it ignored.

        `ta.ChildRunning` if it runs, `ta.ChildRestarting` while the
        supervisor retries a failed restart, `ta.ChildNotFound` if there is
        no such child, `ta.StartFailed` if it fails to start (it stays not
        running); `ta.SupervisorError` (reason ``simple_one_for_one``) for
        a dynamic supervisor.
        """
        return await _admin(self, self.call, sup, "restart_child", child_id)  # type: ignore[no-any-return]

    async def delete_child(self, sup: Dest, child_id: Any) -> None:
        """Forget the spec of a child of `sup` that is not running (OTP's
        ``delete_child/2``); same errors as `restart_child`."""
        await _admin(self, self.call, sup, "delete_child", child_id)

    def which_children(self, sup: Pid | str) -> list[tuple[Any, Pid | str | None, str]]:
        """``[(id, pid, restart), ...]`` of a local supervisor, in start order.

        The pid is None for a child that is not running (OTP's
        ``undefined``) and ``ta.RESTARTING`` while a failed restart is being
        retried. A dynamic supervisor's children have id None.
        """
        return _which_children(self._supervisor(sup))

    def count_children(self, sup: Pid | str) -> ChildCounts:
        """How many children a local supervisor has (OTP's ``count_children/1``):
        a `ta.ChildCounts` with `specs`, `active`, `supervisors`, `workers`."""
        return _count_children(self._supervisor(sup))

    def supervision_trees(self) -> list[SupervisionNode]:
        """Every local supervision tree: the supervisors no local supervisor
        supervises, each a `ta.SupervisionNode` with its children, nested."""
        return supervision_trees(self)

    def _supervisor(self, sup: Pid | str) -> Process:
        proc = self._where(sup)
        if not isinstance(proc, Process):
            raise NoProc(f"{sup!r} is not a live local supervisor")
        return proc


@asynccontextmanager
async def open_actor_system(
    *, node_name: str = NO_NODE, creation: int | None = None, shutdown_timeout: float = 5.0
) -> AsyncIterator[ActorSystem]:
    """Run an actor system for the duration of the block.

    Leaving the block (normally or by an exception) sends ``shutdown`` to every
    actor not under a supervisor (supervisors stop their children in reverse
    start order), waits up to `shutdown_timeout` seconds for them to end, kills
    what is left, and leaves no task behind. An exception from the block is
    re-raised unchanged.

    A local system is node ``nonode@nohost`` (Erlang's name for a node that
    is not distributed) unless `node_name` says otherwise; `creation` (random
    by default) tells its pids from those of any other system in the program.
    """
    async with open_system(
        ActorSystem, node_name=node_name, creation=creation, shutdown_timeout=shutdown_timeout
    ) as system:
        yield system
