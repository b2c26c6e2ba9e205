"""Supervisors: start children in order, restart them by strategy, stop them
in reverse order, give up when restarts come too fast.

A supervisor is an actor that traps exits and is linked to its children. Its
state (the children and their pids) lives in the supervisor's context so that
`system.which_children` can read it synchronously.

A child may run on other nodes (``ChildSpec(..., nodes=["beta", "gamma"])``):
it is started through the system's router (`Router.spawn_remote`, which a
node installs), so this module never imports the distribution layer. The
remote child is linked like a local one; when its node is lost the link
fires with ``noconnection`` and the restart picks the first candidate node
that is up again.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterable
from typing import Any, Final, Literal, TypeAlias

import attrs
import trio

from ..errors import (
    ConnectionFailed,
    NameTaken,
    NoProc,
    NotSerializable,
    SpawnFailed,
    StartFailed,
)
from ..runtime.messages import GEN_CALL, Down, Exit
from ..runtime.process import ActorFn, Process, _ExitActor
from ..wire.names import parse_node
from ..wire.terms import Pid
from .gen_server import GenServer, _serve

__all__ = ["ChildSpec", "Restart", "Shutdown", "Strategy", "SupervisorSpec", "supervisor"]

logger = logging.getLogger("trioactors")

#: When a child is restarted: always, only after an abnormal exit, never.
Restart: TypeAlias = Literal["permanent", "transient", "temporary"]
#: Which children a crash restarts: the one, all of them, it and those after it.
Strategy: TypeAlias = Literal["one_for_one", "one_for_all", "rest_for_one"]
#: Seconds to wait for a child to stop before killing it, or a policy.
Shutdown: TypeAlias = "float | Literal['brutal_kill', 'infinity']"

_RESTARTS: Final = ("permanent", "transient", "temporary")
_STRATEGIES: Final = ("one_for_one", "one_for_all", "rest_for_one")
_DEFAULT_SHUTDOWN: Final = 5.0


def _check_restart(inst: Any, attr: Any, value: Any) -> None:
    if value not in _RESTARTS:
        raise ValueError(f"restart must be one of {', '.join(_RESTARTS)}, not {value!r}")


def _check_shutdown(inst: Any, attr: Any, value: Any) -> None:
    if value is None or value in ("brutal_kill", "infinity"):
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise ValueError(
            f"shutdown must be seconds >= 0, 'brutal_kill' or 'infinity', not {value!r}"
        )


def _check_start(inst: Any, attr: Any, value: Any) -> None:
    if isinstance(value, SupervisorSpec | str):
        return  # a str (a spawnable's name) is checked against `nodes` later
    if isinstance(value, type):
        if not issubclass(value, GenServer):
            raise TypeError(f"start class {value.__qualname__} must subclass ta.GenServer")
        return
    if not callable(value):
        raise TypeError(
            f"start must be an actor function, a GenServer subclass or ta.supervisor(...), "
            f"not {value!r}"
        )


def _to_tuple(value: Iterable[Any]) -> tuple[Any, ...]:
    return tuple(value)


def _to_nodes(value: str | Iterable[str] | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    nodes = (value,) if isinstance(value, str) else tuple(value)
    if not nodes or not all(isinstance(n, str) for n in nodes):
        raise ValueError(f"nodes must be a node name or a non-empty list of them, not {value!r}")
    for node in nodes:
        try:
            if parse_node(node).alive is None:
                raise ValueError(f"{node!r} names no node")
        except ValueError as exc:
            raise ValueError(f"nodes: {exc}") from None
    return nodes


@attrs.frozen
class ChildSpec:
    """How a supervisor starts, restarts and stops one child.

    - `id`: unique among the supervisor's children.
    - `start`: an actor function ``async def fn(ctx, *args)``, a `ta.GenServer`
      subclass (started with ``init(*args)``), or `ta.supervisor(...)`.
    - `restart`: ``"permanent"`` (always), ``"transient"`` (unless it ends with
      ``normal``/``shutdown``), ``"temporary"`` (never; removed when it ends).
    - `shutdown`: seconds to wait after ``shutdown`` before killing it,
      ``"brutal_kill"``, or ``"infinity"``. Default 5.0 for workers and
      ``"infinity"`` for supervisors, as in OTP.
    - `name`: register the child under this name (on every restart).
    - `nodes`: run the child on another node: a node name or a list of
      candidates in order of preference (``"name"`` found through EPMD, or
      ``"name@host:port"``). `start` is then the name of a spawnable
      registered on those nodes with ``node.register_spawnable(start, fn)``
      and `args` must be serialisable. The child is started, and restarted
      after every exit, on the first candidate that is reachable and starts
      it; a candidate that is down, shutting down or refuses (no such
      spawnable, a failing ``init``) is skipped. When its node goes down the
      supervisor gets ``noconnection`` from the link and restarts it like any
      other exit (restart type, strategy and intensity apply). If no
      candidate starts it, that is a failed start (see `ta.supervisor`).
      The supervisor must run on a node (`ta.open_node`); a remote child
      cannot be registered with `name` (let it register itself, e.g. with
      ``register_global`` in its ``init``).
    """

    id: Any
    start: ActorFn | type[GenServer] | SupervisorSpec | str = attrs.field(validator=_check_start)
    args: tuple[Any, ...] = attrs.field(default=(), converter=_to_tuple)
    restart: Restart = attrs.field(default="permanent", validator=_check_restart)
    shutdown: Shutdown | None = attrs.field(default=None, validator=_check_shutdown)
    name: str | None = None
    nodes: tuple[str, ...] | None = attrs.field(default=None, converter=_to_nodes)

    def __attrs_post_init__(self) -> None:
        if self.nodes is not None:
            if not isinstance(self.start, str):
                raise TypeError(
                    f"child {self.id!r}: with nodes=, start is the name (a str) of a spawnable "
                    f"registered on those nodes with node.register_spawnable(name, fn), "
                    f"not {self.start!r}"
                )
            if self.name is not None:
                raise ValueError(
                    f"child {self.id!r}: name= registers a local child; a child on another "
                    "node registers itself (e.g. with register_global in its init)"
                )
        elif isinstance(self.start, str):
            raise TypeError(
                f"child {self.id!r}: start {self.start!r} names a spawnable; give "
                "nodes=[...] listing the nodes where it is registered"
            )

    @property
    def shutdown_policy(self) -> float | str:
        """`shutdown` with its default resolved."""
        if self.shutdown is not None:
            return self.shutdown
        return "infinity" if isinstance(self.start, SupervisorSpec) else _DEFAULT_SHUTDOWN


def _to_children(value: Iterable[ChildSpec]) -> tuple[ChildSpec, ...]:
    return tuple(value)


@attrs.frozen
class SupervisorSpec:
    """A supervisor's configuration; made by `ta.supervisor(...)`."""

    children: tuple[ChildSpec, ...] = attrs.field(converter=_to_children)
    strategy: Strategy = "one_for_one"
    max_restarts: int = 3
    max_seconds: float = 5.0

    def __attrs_post_init__(self) -> None:
        if self.strategy not in _STRATEGIES:
            raise ValueError(
                f"strategy must be one of {', '.join(_STRATEGIES)}, not {self.strategy!r}"
            )
        if not isinstance(self.max_restarts, int) or self.max_restarts < 0:
            raise ValueError(f"max_restarts must be an int >= 0, not {self.max_restarts!r}")
        if not self.max_seconds > 0:
            raise ValueError(f"max_seconds must be > 0, not {self.max_seconds!r}")
        seen: set[Any] = set()
        for child in self.children:
            if not isinstance(child, ChildSpec):
                raise TypeError(f"children must be ta.ChildSpec, not {child!r}")
            if child.id in seen:
                raise ValueError(f"duplicate child id {child.id!r}")
            seen.add(child.id)


def supervisor(
    children: Iterable[ChildSpec],
    *,
    strategy: Strategy = "one_for_one",
    max_restarts: int = 3,
    max_seconds: float = 5.0,
) -> SupervisorSpec:
    """A supervisor to start as a child: ``ChildSpec("sub", ta.supervisor([...]))``.

    A child that cannot be restarted (its ``init`` fails; for a remote child,
    no candidate node is reachable or willing) counts as a restart and is
    tried again at once, as OTP does, until the intensity (`max_restarts`
    in `max_seconds`) is used up; then the supervisor stops its children and
    ends with ``shutdown``. A child that fails to start while the supervisor
    itself starts fails the supervisor's start (`ta.StartFailed`).
    """
    return SupervisorSpec(
        tuple(children), strategy=strategy, max_restarts=max_restarts, max_seconds=max_seconds
    )


class _Child:
    __slots__ = ("pid", "spec")

    def __init__(self, spec: ChildSpec) -> None:
        self.spec = spec
        self.pid: Pid | None = None


class _State:
    __slots__ = ("children", "restarts", "spec")

    def __init__(self, spec: SupervisorSpec) -> None:
        self.spec = spec
        self.children = [_Child(c) for c in spec.children]
        self.restarts: deque[float] = deque()

    def find(self, pid: Pid) -> _Child | None:
        for child in self.children:
            if child.pid == pid:
                return child
        return None

    def note_restart(self) -> bool:
        """Count a restart; False once there were more than allowed."""
        now = trio.current_time()
        window = now - self.spec.max_seconds
        times = self.restarts
        times.append(now)
        while times and times[0] < window:
            times.popleft()
        return len(times) <= self.spec.max_restarts


def _which_children(ctx: Process) -> list[tuple[Any, Pid | None, str]]:
    state = ctx._ext
    if not isinstance(state, _State):
        raise NoProc(f"{ctx.pid} is not a supervisor")
    return [(c.spec.id, c.pid, c.spec.restart) for c in state.children]


def _clean(reason: Any) -> bool:
    return reason in ("normal", "shutdown") or (
        type(reason) is tuple and len(reason) == 2 and reason[0] == "shutdown"
    )


async def _start_remote(ctx: Process, spec: ChildSpec) -> Pid:
    """Start a child on the first candidate node that is up and starts it."""
    assert isinstance(spec.start, str) and spec.nodes is not None
    what = f"child {spec.id!r}"
    router = ctx.system.router
    if router is None:
        error = SpawnFailed(
            f"{what} is to run on node(s) {', '.join(spec.nodes)} but supervisor {ctx.pid} "
            "is in an actor system that is not a node; start it on ta.open_node(...)"
        )
        raise StartFailed(("spawn_failed", str(error)), what) from error
    problems: list[str] = []
    for node in spec.nodes:
        try:
            pid = await router.spawn_remote(node, spec.start, spec.args, ctx.pid)
        except ConnectionFailed as exc:
            problems.append(f"{node}: unreachable ({exc})")
        except SpawnFailed as exc:
            problems.append(f"{node}: {exc}")
        except NotSerializable as exc:
            raise StartFailed(("spawn_failed", str(exc)), what) from exc
        else:
            if problems:
                logger.warning(
                    "supervisor %s: child %r started on %s as %s after skipping %s",
                    ctx.pid,
                    spec.id,
                    node,
                    pid,
                    "; ".join(problems),
                )
            return pid
    raise StartFailed(("spawn_failed", "; ".join(problems)), what)


async def _start_child(ctx: Process, child: _Child) -> None:
    spec = child.spec
    system = ctx.system
    start = spec.start
    if isinstance(start, str):  # a spawnable on other nodes (`nodes` is set)
        child.pid = await _start_remote(ctx, spec)
        return
    try:
        if isinstance(start, SupervisorSpec):
            pid = await system._start(
                _supervise,
                (start,),
                name=spec.name,
                parent=ctx,
                link=True,
                supervised=True,
                what="supervisor",
            )
        elif isinstance(start, type):
            pid = await system._start(
                _serve, (start, spec.args), name=spec.name, parent=ctx, link=True, supervised=True
            )
        else:
            # Wait until it runs, so children really start one after another.
            pid = await system._start(
                start,
                spec.args,
                name=spec.name,
                parent=ctx,
                link=True,
                supervised=True,
                what="child",
                auto=True,
            )
    except NameTaken as exc:
        raise StartFailed(("already_registered", exc.name), f"child {spec.id!r}") from exc
    child.pid = pid


async def _stop_child(ctx: Process, child: _Child) -> None:
    """Stop one child and wait until it has really ended."""
    pid = child.pid
    if pid is None:
        return
    child.pid = None
    policy = child.spec.shutdown_policy
    system = ctx.system
    mref = ctx.monitor(pid)

    def ended(m: Any) -> bool:
        t = type(m)
        return (t is Exit and m.pid == pid) or (t is Down and m.ref == mref)

    if policy == "brutal_kill":
        system._send_exit(ctx.pid, pid, "kill")
        await ctx.receive(match=ended)
    else:
        system._send_exit(ctx.pid, pid, "shutdown")
        if policy == "infinity":
            await ctx.receive(match=ended)
        else:
            assert isinstance(policy, int | float)
            try:
                await ctx.receive(match=ended, timeout=policy)
            except trio.TooSlowError:
                logger.warning(
                    "child %r (%s) did not stop within %s s of shutdown; killing it",
                    child.spec.id,
                    pid,
                    policy,
                )
                system._send_exit(ctx.pid, pid, "kill")
                await ctx.receive(match=ended)
    ctx.demonitor(mref, flush=True)
    ctx._flush(lambda m: type(m) is Exit and m.pid == pid)


async def _stop_all(ctx: Process, state: _State) -> None:
    for child in reversed(state.children):
        await _stop_child(ctx, child)
    state.children = [c for c in state.children if c.spec.restart != "temporary"]


async def _give_up(ctx: Process, state: _State) -> None:
    await _stop_all(ctx, state)
    raise _ExitActor("shutdown")


async def _restart(ctx: Process, state: _State, children: list[_Child]) -> None:
    for child in children:
        while True:
            try:
                await _start_child(ctx, child)
                break
            except StartFailed as exc:
                logger.error(
                    "supervisor %s: restarting child %r failed: %s", ctx.pid, child.spec.id, exc
                )
                if not state.note_restart():
                    logger.error("supervisor %s: restart intensity reached; shutting down", ctx.pid)
                    await _give_up(ctx, state)


async def _child_exited(ctx: Process, state: _State, child: _Child, reason: Any) -> None:
    child.pid = None
    restart = child.spec.restart
    if restart == "temporary":
        state.children.remove(child)
        return
    if restart == "transient" and _clean(reason):
        return
    if not state.note_restart():
        logger.error(
            "supervisor %s: more than %d restarts in %s s (child %r ended with %r); shutting down",
            ctx.pid,
            state.spec.max_restarts,
            state.spec.max_seconds,
            child.spec.id,
            reason,
        )
        await _give_up(ctx, state)
    strategy = state.spec.strategy
    if strategy == "one_for_one":
        await _restart(ctx, state, [child])
        return
    index = state.children.index(child)
    group = state.children if strategy == "one_for_all" else state.children[index:]
    # Only the ones still running are restarted along with the failed child;
    # temporary ones are stopped for good.
    running = [c for c in group if c.pid is not None]
    for other in reversed(group):
        await _stop_child(ctx, other)
    again = [c for c in group if c is child or (c in running and c.spec.restart != "temporary")]
    state.children = [
        c for c in state.children if not (c.spec.restart == "temporary" and c in running)
    ]
    await _restart(ctx, state, again)


async def _supervise(ctx: Process, spec: SupervisorSpec) -> None:
    ctx.trap_exits = True
    state = _State(spec)
    ctx._ext = state
    try:
        for child in list(state.children):
            try:
                await _start_child(ctx, child)
            except StartFailed as exc:
                logger.error(
                    "supervisor %s: child %r failed to start: %s", ctx.pid, child.spec.id, exc
                )
                await _stop_all(ctx, state)
                raise _ExitActor(("failed_to_start_child", child.spec.id, exc.reason)) from None
        ctx._started_ok()
        while True:
            msg = await ctx.receive()
            t = type(msg)
            if t is Exit:
                found = state.find(msg.pid)
                if found is not None:
                    await _child_exited(ctx, state, found, msg.reason)
                elif msg.reason != "normal":
                    # Our parent (or the system) tells us to stop.
                    await _stop_all(ctx, state)
                    raise _ExitActor(msg.reason)
            elif (
                t is tuple
                and len(msg) == 3
                and msg[0] == GEN_CALL
                and msg[2] == "which_children"
                and type(msg[1]) is tuple
                and len(msg[1]) == 2
            ):
                ctx.send(msg[1][0], (msg[1][1], _which_children(ctx)))
            else:
                logger.debug("supervisor %s ignored unexpected message %r", ctx.pid, msg)
    finally:
        # Killed or crashed: nothing can be awaited, but no child may outlive us.
        for child in reversed(state.children):
            if child.pid is not None:
                ctx.system._send_exit(ctx.pid, child.pid, "kill")
