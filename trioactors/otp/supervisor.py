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

The restart logic follows OTP's supervisor module: a restart counts toward
the intensity first; if a child's start fails, that child is marked
``restarting`` and the supervisor retries through its own mailbox, so admin
requests (and a shutdown) are served between attempts. With ``one_for_all``
a retry stops the children already restarted and starts the whole group
again; with ``rest_for_one`` it restarts from the child that failed.

Admin requests (`start_child`, `terminate_child`, ...) are calls to the
supervisor with plain-data requests and ``("ok", value)`` / ``("error",
reason)`` replies, as in OTP, so they work for a supervisor on another node
too (given serialisable arguments).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, Final, Literal, TypeAlias

import attrs
import trio

from ..errors import (
    ChildAlreadyPresent,
    ChildAlreadyStarted,
    ChildNotFound,
    ChildRestarting,
    ChildRunning,
    ConnectionFailed,
    MaxChildren,
    NameTaken,
    NoProc,
    NotSerializable,
    SpawnFailed,
    StartFailed,
    SupervisorError,
)
from ..runtime.messages import GEN_CALL, Down, Exit
from ..runtime.process import ActorFn, Dest, Process, _ExitActor
from ..wire.cbor import message
from ..wire.names import parse_node
from ..wire.terms import Pid, Ref
from .gen_server import IGNORE, GenServer, _serve

if TYPE_CHECKING:
    from ..runtime.system import System

__all__ = [
    "RESTARTING",
    "ChildCounts",
    "ChildSpec",
    "Restart",
    "Shutdown",
    "Strategy",
    "SupervisorSpec",
    "dynamic_supervisor",
    "supervisor",
]

logger = logging.getLogger("trioactors")

#: When a child is restarted: always, only after an abnormal exit, never.
Restart: TypeAlias = Literal["permanent", "transient", "temporary"]
#: Which children a crash restarts: the one, all of them, it and those after it;
#: ``simple_one_for_one`` is a dynamic supervisor (see `dynamic_supervisor`).
Strategy: TypeAlias = Literal["one_for_one", "one_for_all", "rest_for_one", "simple_one_for_one"]
#: Seconds to wait for a child to stop before killing it, or a policy.
Shutdown: TypeAlias = "float | Literal['brutal_kill', 'infinity']"

_RESTARTS: Final = ("permanent", "transient", "temporary")
_STRATEGIES: Final = ("one_for_one", "one_for_all", "rest_for_one", "simple_one_for_one")
_DEFAULT_SHUTDOWN: Final = 5.0
#: What `which_children` shows instead of a pid while a child's restart is
#: being retried (OTP's ``restarting``).
RESTARTING: Final = "restarting"


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
      subclass (started with ``init(*args)``; an ``init`` returning
      `ta.IGNORE` leaves the child not running, pid None), `ta.supervisor(...)`
      or `ta.dynamic_supervisor(...)`.
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
    """A supervisor's configuration; made by `ta.supervisor(...)` or
    `ta.dynamic_supervisor(...)` (strategy ``simple_one_for_one``: `children`
    is the one template, `max_children` an optional limit)."""

    children: tuple[ChildSpec, ...] = attrs.field(converter=_to_children)
    strategy: Strategy = "one_for_one"
    max_restarts: int = 3
    max_seconds: float = 5.0
    max_children: int | None = None

    def __attrs_post_init__(self) -> None:
        if self.strategy not in _STRATEGIES:
            raise ValueError(
                f"strategy must be one of {', '.join(_STRATEGIES)}, not {self.strategy!r}"
            )
        if (
            isinstance(self.max_restarts, bool)
            or not isinstance(self.max_restarts, int)
            or self.max_restarts < 0
        ):
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
        if self.strategy == "simple_one_for_one":
            if len(self.children) != 1:
                raise ValueError(
                    "a simple_one_for_one (dynamic) supervisor has exactly one child spec, "
                    f"the template of its children, not {len(self.children)}"
                )
            if self.children[0].name is not None:
                raise ValueError(
                    "a dynamic supervisor's template cannot have name= (every child would "
                    "take the same name); let each child register itself"
                )
            limit = self.max_children
            if limit is not None and (
                isinstance(limit, bool) or not isinstance(limit, int) or limit < 0
            ):
                raise ValueError(f"max_children must be an int >= 0 or None, not {limit!r}")
        elif self.max_children is not None:
            raise ValueError("max_children is for a dynamic (simple_one_for_one) supervisor")

    @property
    def dynamic(self) -> bool:
        """True for a dynamic (``simple_one_for_one``) supervisor."""
        return self.strategy == "simple_one_for_one"


def supervisor(
    children: Iterable[ChildSpec],
    *,
    strategy: Strategy = "one_for_one",
    max_restarts: int = 3,
    max_seconds: float = 5.0,
) -> SupervisorSpec:
    """A supervisor to start as a child: ``ChildSpec("sub", ta.supervisor([...]))``.

    A child that cannot be restarted (its ``init`` fails; for a remote child,
    no candidate node is reachable or willing) is shown as `ta.RESTARTING`
    and tried again, as OTP does, once the supervisor has served what is
    already in its mailbox; each attempt counts as a restart, until the
    intensity (`max_restarts` in `max_seconds`) is used up; then the
    supervisor stops its children and ends with ``shutdown``. With
    ``one_for_all`` each attempt stops the children already restarted and
    starts the whole group again; with ``rest_for_one`` it starts again from
    the child that failed. A child that fails to start while the supervisor
    itself starts fails the supervisor's start (`ta.StartFailed`); one whose
    ``init`` returns `ta.IGNORE` is kept as not running.
    """
    return SupervisorSpec(
        tuple(children), strategy=strategy, max_restarts=max_restarts, max_seconds=max_seconds
    )


def dynamic_supervisor(
    child: ChildSpec | ActorFn | type[GenServer] | SupervisorSpec,
    *,
    max_restarts: int = 3,
    max_seconds: float = 5.0,
    max_children: int | None = None,
) -> SupervisorSpec:
    """A dynamic supervisor (OTP's ``simple_one_for_one``, Elixir's
    DynamicSupervisor) to start as a child or with `start_supervisor`.

    It starts no child by itself: each ``start_child(sup, *extra_args)``
    starts one more from the template `child` (a `ta.ChildSpec`, or just
    what its `start` would be), with the extra arguments appended to the
    template's `args`. Children are restarted one for one by their restart
    type; `terminate_child(sup, pid)` stops one. When the supervisor stops,
    all its children are stopped in parallel (each gets ``shutdown``, and
    ``kill`` once the template's `shutdown` seconds have passed), as OTP
    does. `max_children` (default: no limit) makes `start_child` raise
    `ta.MaxChildren` once that many children exist.
    """
    template = child if isinstance(child, ChildSpec) else ChildSpec(_template_id(child), child)
    return SupervisorSpec(
        (template,),
        strategy="simple_one_for_one",
        max_restarts=max_restarts,
        max_seconds=max_seconds,
        max_children=max_children,
    )


def _template_id(start: Any) -> Any:
    return getattr(start, "__qualname__", None) or repr(start)


#: OTP's ``count_children`` as a record.
@message("trioactors.ChildCounts")
@attrs.frozen(slots=True)
class ChildCounts:
    """What `count_children(sup)` returns (OTP's ``count_children/1``).

    - `specs`: child specs the supervisor holds, running or not (1 for a
      dynamic supervisor: its template);
    - `active`: children running now;
    - `supervisors` / `workers`: children (running or not) that are
      supervisors / anything else.
    """

    specs: int
    active: int
    supervisors: int
    workers: int


class _Child:
    __slots__ = ("last_pid", "pid", "restarting", "spec")

    def __init__(self, spec: ChildSpec) -> None:
        self.spec = spec
        self.pid: Pid | None = None
        # Its start failed and is being retried (OTP's ``{restarting, OldPid}``).
        self.restarting = False
        # A dynamic child being restarted is still known by the pid it had.
        self.last_pid: Pid | None = None


class _TryAgain:
    """A supervisor's note to itself to retry a failed restart (OTP's
    ``try_again_restart`` cast): queued behind what is already in the
    mailbox, so requests and shutdowns are served between attempts."""

    __slots__ = ("child",)

    def __init__(self, child: _Child) -> None:
        self.child = child


class _State:
    __slots__ = ("children", "pids", "restarts", "spec")

    def __init__(self, spec: SupervisorSpec) -> None:
        self.spec = spec
        # In start order; a dynamic supervisor's in the order they were added.
        self.children = [] if spec.dynamic else [_Child(c) for c in spec.children]
        self.pids: dict[Pid, _Child] = {}
        self.restarts: deque[float] = deque()

    def find(self, pid: Pid) -> _Child | None:
        return self.pids.get(pid)

    def by_id(self, child_id: Any) -> _Child | None:
        for child in self.children:
            if child.spec.id == child_id:
                return child
        return None

    def set_pid(self, child: _Child, pid: Pid | None) -> None:
        """Record that `child` runs as `pid` (None: not running)."""
        if child.pid is not None:
            self.pids.pop(child.pid, None)
        child.pid = pid
        child.restarting = False
        if pid is not None:
            self.pids[pid] = child
            child.last_pid = pid

    def remove(self, child: _Child) -> None:
        self.set_pid(child, None)
        self.children.remove(child)

    def forget(self, child: _Child) -> None:
        """OTP's ``del_child``: a child that ended (or was terminated) and is
        not restarted is kept as not running, or dropped when temporary or
        dynamic."""
        if self.spec.dynamic or child.spec.restart == "temporary":
            self.remove(child)
        else:
            self.set_pid(child, None)

    def note_restart(self) -> bool:
        """Count a restart; False once there were more than allowed."""
        now = trio.current_time()
        window = now - self.spec.max_seconds
        times = self.restarts
        times.append(now)
        while times and times[0] < window:
            times.popleft()
        return len(times) <= self.spec.max_restarts


def _state_of(ctx: Process) -> _State:
    state = ctx._ext
    if not isinstance(state, _State):
        raise NoProc(f"{ctx.pid} is not a supervisor")
    return state


def _which_children(ctx: Process) -> list[tuple[Any, Pid | str | None, str]]:
    state = _state_of(ctx)
    dynamic = state.spec.dynamic
    return [
        (None if dynamic else c.spec.id, RESTARTING if c.restarting else c.pid, c.spec.restart)
        for c in state.children
    ]


def _count_children(ctx: Process) -> ChildCounts:
    state = _state_of(ctx)
    system = ctx.system
    active = 0
    supervisors = 0
    for child in state.children:
        pid = child.pid
        # A remote child counts as running until its link says otherwise.
        if pid is not None and (not system.is_local(pid) or system.is_alive(pid)):
            active += 1
        if isinstance(child.spec.start, SupervisorSpec):
            supervisors += 1
    n = len(state.children)
    return ChildCounts(1 if state.spec.dynamic else n, active, supervisors, n - supervisors)


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


async def _start_child(ctx: Process, spec: ChildSpec) -> Pid | None:
    """Start one child, linked; None when its ``init`` returned `ta.IGNORE`."""
    system = ctx.system
    start = spec.start
    if isinstance(start, str):  # a spawnable on other nodes (`nodes` is set)
        return await _start_remote(ctx, spec)
    try:
        if isinstance(start, SupervisorSpec):
            return await system._start(
                _supervise,
                (start,),
                name=spec.name,
                parent=ctx,
                link=True,
                supervised=True,
                what="supervisor",
            )
        if isinstance(start, type):
            return await system._start(
                _serve, (start, spec.args), name=spec.name, parent=ctx, link=True, supervised=True
            )
        # Wait until it runs, so children really start one after another.
        return await system._start(
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
    except StartFailed as exc:
        if exc.reason is IGNORE:
            return None
        raise


async def _stop_child(ctx: Process, state: _State, child: _Child) -> None:
    """Stop one child and wait until it has really ended."""
    pid = child.pid
    if pid is None:
        return
    state.set_pid(child, None)
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


async def _stop_parallel(ctx: Process, state: _State, children: list[_Child]) -> None:
    """Stop many children at once (a dynamic supervisor's, as OTP does): all
    get ``shutdown`` (or ``kill``) together and share one shutdown timeout."""
    system = ctx.system
    refs: dict[Ref, Pid] = {}
    pids: set[Pid] = set()
    policy = children[0].spec.shutdown_policy if children else "infinity"
    how = "kill" if policy == "brutal_kill" else "shutdown"
    for child in children:
        pid = child.pid
        if pid is None:
            continue
        state.set_pid(child, None)
        refs[ctx.monitor(pid)] = pid
        pids.add(pid)
        system._send_exit(ctx.pid, pid, how)
    deadline = trio.current_time() + policy if isinstance(policy, int | float) else None

    # Each child's link Exit arrives before its Down: take both, so that
    # nothing is left behind for a later (quadratic) selective receive.
    def ended(m: Any) -> bool:
        t = type(m)
        return (t is Down and m.ref in refs) or (t is Exit and m.pid in pids)

    while refs:
        timeout = None if deadline is None else max(0.0, deadline - trio.current_time())
        try:
            msg = await ctx.receive(match=ended, timeout=timeout)
        except trio.TooSlowError:
            logger.warning(
                "%d child(ren) of supervisor %s did not stop within %s s of shutdown; killing them",
                len(refs),
                ctx.pid,
                policy,
            )
            for pid in refs.values():
                system._send_exit(ctx.pid, pid, "kill")
            deadline = None
            continue
        if type(msg) is Down:
            pids.discard(refs.pop(msg.ref))


async def _stop_all(ctx: Process, state: _State) -> None:
    if state.spec.dynamic:
        await _stop_parallel(ctx, state, state.children)
        state.children = []
        return
    for child in reversed(state.children):
        await _stop_child(ctx, state, child)
    state.children = [c for c in state.children if c.spec.restart != "temporary"]


async def _give_up(ctx: Process, state: _State) -> None:
    await _stop_all(ctx, state)
    raise _ExitActor("shutdown")


async def _restart(ctx: Process, state: _State, child: _Child, reason: Any = None) -> None:
    """OTP's ``restart/2``: count the restart toward the intensity, then
    restart by strategy. A start that fails leaves that child restarting and
    queues a retry (which counts again), as OTP does."""
    if not state.note_restart():
        why = f" (child {child.spec.id!r} ended with {reason!r})" if reason is not None else ""
        logger.error(
            "supervisor %s: more than %d restarts in %s s%s; shutting down",
            ctx.pid,
            state.spec.max_restarts,
            state.spec.max_seconds,
            why,
        )
        await _give_up(ctx, state)
    strategy = state.spec.strategy
    if strategy in ("one_for_one", "simple_one_for_one"):
        group = [child]
    else:
        index = state.children.index(child)
        group = list(state.children) if strategy == "one_for_all" else state.children[index:]
        # Stop the rest of the group (later ones first); temporary children
        # are stopped for good, the others all start again, running or not.
        for other in reversed(group):
            await _stop_child(ctx, state, other)
            if other.spec.restart == "temporary":
                state.remove(other)
            elif other is not child:  # a retried child shows restarting until it runs
                state.set_pid(other, None)
        group = [c for c in group if c.spec.restart != "temporary"]
    for member in group:
        try:
            pid = await _start_child(ctx, member.spec)
        except StartFailed as exc:
            logger.error(
                "supervisor %s: restarting child %r failed: %s", ctx.pid, member.spec.id, exc
            )
            state.set_pid(member, None)
            member.restarting = True
            ctx.send(ctx.pid, _TryAgain(member))
            return
        if pid is None and state.spec.dynamic:
            state.remove(member)
        else:
            state.set_pid(member, pid)


async def _child_exited(ctx: Process, state: _State, child: _Child, reason: Any) -> None:
    state.set_pid(child, None)
    restart = child.spec.restart
    if restart == "temporary" or (restart == "transient" and _clean(reason)):
        state.forget(child)
        return
    await _restart(ctx, state, child, reason)


# -- admin requests (OTP's supervisor:start_child/2 etc.), served in the loop


async def _start_static(ctx: Process, state: _State, args: tuple[Any, ...]) -> Any:
    if len(args) != 1 or not isinstance(args[0], ChildSpec):
        return ("error", ("bad_child_spec", f"start_child takes one ta.ChildSpec, not {args!r}"))
    spec = args[0]
    existing = state.by_id(spec.id)
    if existing is not None:
        if existing.pid is not None:
            return ("error", ("already_started", existing.pid))
        return ("error", "already_present")
    try:
        pid = await _start_child(ctx, spec)
    except StartFailed as exc:
        return ("error", ("start_failed", exc.reason))
    if pid is None and spec.restart == "temporary":
        return ("ok", None)  # OTP keeps no spec of an ignored temporary child
    child = _Child(spec)
    state.children.append(child)
    state.set_pid(child, pid)
    return ("ok", pid)


async def _start_dynamic(ctx: Process, state: _State, extra: tuple[Any, ...]) -> Any:
    limit = state.spec.max_children
    if limit is not None and len(state.children) >= limit:
        return ("error", ("max_children", limit))
    template = state.spec.children[0]
    try:
        spec = attrs.evolve(template, args=template.args + extra)
        pid = await _start_child(ctx, spec)
    except StartFailed as exc:
        return ("error", ("start_failed", exc.reason))
    if pid is None:
        return ("ok", None)
    child = _Child(spec)
    state.children.append(child)
    state.set_pid(child, pid)
    return ("ok", pid)


async def _terminate_child(ctx: Process, state: _State, which: Any) -> Any:
    if state.spec.dynamic:
        if not isinstance(which, Pid):
            return ("error", "simple_one_for_one")
        child = state.find(which)
        if child is None:
            child = next((c for c in state.children if c.restarting and c.last_pid == which), None)
        if child is None:
            # OTP: a dead pid may be a child whose exit is still in the mailbox.
            if ctx.is_local(which) and not ctx.system.is_alive(which):
                return ("ok", None)
            return ("error", "not_found")
    else:
        child = state.by_id(which)
        if child is None:
            return ("error", "not_found")
    await _stop_child(ctx, state, child)
    state.forget(child)
    return ("ok", None)


async def _restart_or_delete(ctx: Process, state: _State, op: str, child_id: Any) -> Any:
    if state.spec.dynamic:
        return ("error", "simple_one_for_one")
    child = state.by_id(child_id)
    if child is None:
        return ("error", "not_found")
    if child.restarting:
        return ("error", "restarting")
    if child.pid is not None:
        return ("error", "running")
    if op == "delete_child":
        state.children.remove(child)
        return ("ok", None)
    try:
        pid = await _start_child(ctx, child.spec)
    except StartFailed as exc:
        return ("error", ("start_failed", exc.reason))
    state.set_pid(child, pid)
    return ("ok", pid)


async def _handle_call(ctx: Process, state: _State, request: Any) -> Any:
    if request == "which_children":
        return _which_children(ctx)
    if request == "count_children":
        return _count_children(ctx)
    if type(request) in (tuple, list) and len(request) == 2:
        op, arg = request
        if op == "start_child" and type(arg) in (tuple, list):
            if state.spec.dynamic:
                return await _start_dynamic(ctx, state, tuple(arg))
            return await _start_static(ctx, state, tuple(arg))
        if op == "terminate_child":
            return await _terminate_child(ctx, state, arg)
        if op in ("restart_child", "delete_child"):
            return await _restart_or_delete(ctx, state, op, arg)
    logger.error("supervisor %s got an unknown request %r", ctx.pid, request)
    return ("error", ("bad_request", repr(request)))


async def _supervise(ctx: Process, spec: SupervisorSpec) -> None:
    ctx.trap_exits = True
    state = _State(spec)
    ctx._ext = state
    try:
        for child in list(state.children):
            try:
                pid = await _start_child(ctx, child.spec)
            except StartFailed as exc:
                logger.error(
                    "supervisor %s: child %r failed to start: %s", ctx.pid, child.spec.id, exc
                )
                await _stop_all(ctx, state)
                raise _ExitActor(("failed_to_start_child", child.spec.id, exc.reason)) from None
            if pid is None and child.spec.restart == "temporary":
                state.remove(child)
            else:
                state.set_pid(child, pid)
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
            elif t is _TryAgain:
                child = msg.child
                # Unless terminate_child/delete_child came first.
                if child.restarting and child in state.children:
                    await _restart(ctx, state, child)
            elif (
                t is tuple
                and len(msg) == 3
                and msg[0] == GEN_CALL
                and type(msg[1]) is tuple
                and len(msg[1]) == 2
            ):
                reply = await _handle_call(ctx, state, msg[2])
                ctx.send(msg[1][0], (msg[1][1], reply))
            else:
                logger.debug("supervisor %s ignored unexpected message %r", ctx.pid, msg)
    finally:
        # Killed: the links tell each child `killed` (a trapping gen_server
        # runs terminate("killed")), exactly as in Erlang. Crashed: nothing
        # can be awaited, but no child may outlive us.
        if not ctx._killed:
            for child in reversed(state.children):
                if child.pid is not None:
                    ctx.system._send_exit(ctx.pid, child.pid, "kill")


# -- the caller's side of the admin requests

#: ``call(dest, request, timeout)`` of a system or a context.
_Call: TypeAlias = Callable[[Any, Any, "float | None"], Awaitable[Any]]


async def _admin(system: System, call: _Call, sup: Dest, op: str, arg: Any) -> Any:
    """Send admin request ``(op, arg)`` to supervisor `sup` and return the
    value of its ``("ok", value)`` reply; an ``("error", reason)`` reply
    raises the matching exception."""
    where = system._where(sup)
    if where is None:
        raise NoProc(f"supervisor {sup!r} is not alive")
    if isinstance(where, Process) and not isinstance(where._ext, _State):
        raise NoProc(f"{sup!r} is not a supervisor")
    # As OTP: a request may wait on a child's shutdown, so no timeout.
    reply = await call(sup, (op, arg), None)
    if type(reply) in (tuple, list) and len(reply) == 2:
        tag, value = reply
        if tag == "ok":
            return value
        if tag == "error":
            _raise(sup, op, arg, value)
    raise SupervisorError("bad_reply", sup, arg, f"answered {reply!r}; is it a supervisor?")


def _raise(sup: Dest, op: str, arg: Any, reason: Any) -> None:
    child = None if op == "start_child" else arg
    if reason == "not_found":
        raise ChildNotFound(sup, child)
    if reason == "running":
        raise ChildRunning(sup, child)
    if reason == "restarting":
        raise ChildRestarting(sup, child)
    if reason == "simple_one_for_one":
        raise SupervisorError(
            reason,
            sup,
            child,
            f"is a dynamic supervisor: its children have no ids, so {op} cannot take "
            f"{child!r}; stop a child with terminate_child(sup, pid)",
        )
    if type(reason) in (tuple, list) and len(reason) == 2:
        kind, detail = reason
        if kind == "start_failed":
            what = "child of dynamic supervisor"
            if op == "restart_child":
                what = f"child {arg!r}"
            elif op == "start_child" and arg and isinstance(arg[0], ChildSpec):
                what = f"child {arg[0].id!r}"
            raise StartFailed(detail, what)
        if kind == "already_started":
            raise ChildAlreadyStarted(sup, arg[0].id if arg else None, detail)
        if kind == "max_children":
            raise MaxChildren(sup, detail)
        if kind == "bad_child_spec":
            raise TypeError(f"supervisor {sup!r} is not dynamic: {detail}")
    if reason == "already_present":
        raise ChildAlreadyPresent(sup, arg[0].id if arg else None)
    raise SupervisorError(str(reason), sup, child, f"refused {op}: {reason!r}")
