"""`ta.ActorSystem` and `ta.Context`: the local runtime with the OTP behaviours.

The runtime (`trioactors.runtime`) knows nothing of gen_servers and
supervisors; this module adds the entry points that start them, so imports
run one way: runtime <- behaviours <- this.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, ClassVar, cast

from ..errors import NoProc
from ..runtime.process import Process
from ..runtime.system import System, open_system
from ..wire.terms import NO_NODE, Pid
from .gen_server import GenServer, _serve
from .supervisor import ChildSpec, Strategy, SupervisorSpec, _supervise, _which_children

__all__ = ["ActorSystem", "Context", "open_actor_system"]


class Context(Process):
    """An actor's view of itself: its pid, mailbox, links, monitors and signals.

    Actor functions get one as their first argument; `system.actor()` gives one
    to any task. All methods except `receive`/`call`/`start_server` are
    synchronous.
    """

    __slots__ = ()

    if TYPE_CHECKING:
        system: ActorSystem

    async def start_server(
        self, cls: type[GenServer], *args: Any, name: str | None = None, link: bool = False
    ) -> Pid:
        """Start a gen_server (see `ActorSystem.start_server`), optionally linked."""
        return await self.system._start(_serve, (cls, args), name=name, parent=self, link=link)


class ActorSystem(System):
    """A set of actors sharing a process table, a registry and timers.

    Made by `open_actor_system()` (or owned by a node); every method is
    synchronous except `join`, `call`, `start_server` and `start_supervisor`.
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

    async def start_server(self, cls: type[GenServer], *args: Any, name: str | None = None) -> Pid:
        """Start gen_server `cls` with ``init(*args)``; returns once `init` has
        returned. `ta.StartFailed` if `init` raises or the server exits."""
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
        proc = self._where(sup)
        if not isinstance(proc, Process):
            raise NoProc(f"{sup!r} is not a live local supervisor")
        return _which_children(proc)


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
