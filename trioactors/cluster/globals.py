"""Cluster-wide unique names: Erlang's `global`, over a `ClusterTransport`.

Every node keeps a full replica of the name table, so `whereis_global` never
leaves the node. The table holds *claims*: `name -> {owner node: pid}`, where
the owner is the node the pid lives on. Each node is authoritative for the
claims of its own pids: only the owner adds or removes them (a node asked to
register or unregister a remote pid forwards the request to the pid's node),
broadcasts every change, and sends a snapshot of its claims to each node that
connects. Because a peer's stream is ordered, every replica of node X's claims
converges to X's own; a node that goes down takes its claims with it.

Uniqueness among connected nodes comes from a per-name cluster lock, as in
Erlang's `global:set_lock`: a registering node queues for the name's lock on
every connected node and on itself, one node after another in node-name order
(one global order, so two registrants can never deadlock, and queues instead
of refusals, so they cannot livelock), then checks its replica, broadcasts the
claim and unlocks. A node grants a lock only after every claim it broadcast
earlier, so a registrant holding all the locks sees every claim made before
it. Each grant also names the nodes whose claims of the name the granter
knows, so a claim is found even when the connections are not a full mesh (a
node seen only through a node in between). If a node joins or leaves while
the locks are being taken, they are released and taken again over the new set
of nodes.

Two claims on one name can still meet when partitions heal (each side
registered while apart) or when a node connected mid-registration. The
*arbiter* of such a conflict is whichever of the two owner nodes has the name
that sorts first; it alone runs the resolver of its own registration
(`resolve=` of `register_global`, else the registry's, else
`resolve_keep_first_node`), called as `resolve(name, pid_of_first_node,
pid_of_second_node)`. Returning a pid keeps that registration and unregisters
the other pid everywhere; returning None unregisters both; a warning is
logged on both nodes. As in Erlang, what else happens to the loser is the
resolver's business: the default (Erlang's `global:random_exit_name`) kills
it (``exit(pid, "kill")``, so it ends with ``killed``, by its own node),
`resolve_notify_all` (`global:notify_all_name`) sends both pids
``("global_name_conflict", name, other_pid)``, and a resolver of your own
leaves the loser running, only unregistered. Until the arbiter has spoken, a
bystander node answers `whereis_global` with the claim of the first-sorting
node, so the default rule is what everyone sees at once.

`re_register_global` (Erlang's `global:re_register_name`) takes the same
cluster lock, has the owner of any current claim drop it (the old holder
keeps running), then claims the name for the new pid.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

import attrs
import trio

from ..errors import NotLocalPid, ProtocolError
from ..runtime.messages import Down
from ..wire.cbor import message
from ..wire.terms import Pid, Ref

if TYPE_CHECKING:
    from ..otp.system import ActorSystem, Context
    from .services import ClusterTransport

__all__ = [
    "GLOBAL_RECORDS",
    "GlobalDrop",
    "GlobalGrant",
    "GlobalLock",
    "GlobalRegister",
    "GlobalRegistry",
    "GlobalReply",
    "GlobalRequest",
    "GlobalSync",
    "GlobalUnlock",
    "GlobalUnregister",
    "Resolver",
    "resolve_keep_first_node",
    "resolve_notify_all",
]

log = logging.getLogger("trioactors.cluster.globals")

#: `resolve(name, pid1, pid2) -> winner or None`; pid1 is the claim of the node
#: whose name sorts first. Runs on one node (the arbiter), as in Erlang.
Resolver = Callable[[str, Pid, Pid], "Pid | None"]

#: First element of the message `resolve_notify_all` sends the pids of a conflict.
CONFLICT: Final = "global_name_conflict"

#: What happens to the losing pid(s) of a conflict besides being unregistered.
_KILL: Final = "kill"
_NOTIFY_ALL: Final = "notify_all"
_NOTHING: Final = "none"


def resolve_keep_first_node(name: str, pid1: Pid, pid2: Pid) -> Pid | None:
    """The default resolver (Erlang's `global:random_exit_name`, which also
    keeps the pid of the node that sorts first): keep `pid1`, the
    registration of the node whose name sorts first, and kill the other pid
    (it ends with ``killed``)."""
    return pid1


def resolve_notify_all(name: str, pid1: Pid, pid2: Pid) -> Pid | None:
    """Resolver that unregisters both pids and tells each about the other
    (Erlang's `global:notify_all_name`): each gets `("global_name_conflict", name, other)`."""
    return None


def _fate(resolve: Resolver) -> str:
    """What the built-in resolvers do to a loser; a user's resolver decided
    itself (in Erlang it is the resolve function that kills or notifies)."""
    if resolve is resolve_keep_first_node:
        return _KILL
    if resolve is resolve_notify_all:
        return _NOTIFY_ALL
    return _NOTHING


# --------------------------------------------------------------------------- wire records

_str = attrs.validators.instance_of(str)
_int = attrs.validators.instance_of(int)
_pid = attrs.validators.instance_of(Pid)
_bool = attrs.validators.instance_of(bool)


@message("trioactors.global.Lock")
@attrs.frozen
class GlobalLock:
    """Queue the sender's request `req` for the lock on `name`."""

    name: str = attrs.field(validator=_str)
    req: int = attrs.field(validator=_int)


def _tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


@message("trioactors.global.Grant")
@attrs.frozen
class GlobalGrant:
    """The sender's lock on `name` is now held by request `req` of the receiver;
    `owners` are the nodes the sender knows a claim of `name` from."""

    name: str = attrs.field(validator=_str)
    req: int = attrs.field(validator=_int)
    owners: tuple[str, ...] = attrs.field(
        converter=_tuple,
        validator=attrs.validators.deep_iterable(_str, attrs.validators.instance_of(tuple)),
    )


@message("trioactors.global.Unlock")
@attrs.frozen
class GlobalUnlock:
    """Release (or stop waiting for) the lock on `name` taken by request `req`."""

    name: str = attrs.field(validator=_str)
    req: int = attrs.field(validator=_int)


@message("trioactors.global.Register")
@attrs.frozen
class GlobalRegister:
    """The sender now claims `name` for its pid `pid`."""

    name: str = attrs.field(validator=_str)
    pid: Pid = attrs.field(validator=_pid)


@message("trioactors.global.Unregister")
@attrs.frozen
class GlobalUnregister:
    """The sender no longer claims `name` for `pid`."""

    name: str = attrs.field(validator=_str)
    pid: Pid = attrs.field(validator=_pid)


@message("trioactors.global.Sync")
@attrs.frozen
class GlobalSync:
    """Every claim of the sender (sent when a connection comes up)."""

    names: dict[str, Pid] = attrs.field(
        validator=attrs.validators.deep_mapping(_str, _pid, attrs.validators.instance_of(dict))
    )


@message("trioactors.global.Drop")
@attrs.frozen
class GlobalDrop:
    """The arbiter of a conflict tells the owner of `pid` to give up `name`
    (`other` is the pid that conflicted); `fate` says what else happens to
    `pid`: ``"kill"``, ``"notify_all"`` (it gets the conflict message) or
    ``"none"`` (only unregistered)."""

    name: str = attrs.field(validator=_str)
    pid: Pid = attrs.field(validator=_pid)
    other: Pid = attrs.field(validator=_pid)
    fate: str = attrs.field(validator=attrs.validators.in_((_KILL, _NOTIFY_ALL, _NOTHING)))


@message("trioactors.global.Request")
@attrs.frozen
class GlobalRequest:
    """Ask the owner node of `pid` to `register`, `re_register` or
    `unregister` it as `name`."""

    req: int = attrs.field(validator=_int)
    op: str = attrs.field(validator=attrs.validators.in_(("register", "re_register", "unregister")))
    name: str = attrs.field(validator=_str)
    pid: Pid = attrs.field(validator=_pid)


@message("trioactors.global.Reply")
@attrs.frozen
class GlobalReply:
    """The answer to `GlobalRequest` `req`."""

    req: int = attrs.field(validator=_int)
    ok: bool = attrs.field(validator=_bool)


#: Every wire record of the global registry (for dispatching).
GLOBAL_RECORDS: Final = (
    GlobalLock,
    GlobalGrant,
    GlobalUnlock,
    GlobalRegister,
    GlobalUnregister,
    GlobalSync,
    GlobalDrop,
    GlobalRequest,
    GlobalReply,
)


# --------------------------------------------------------------------------- registry


@attrs.define
class _Pending:
    """A request forwarded to another node, waiting for its reply."""

    node: str
    done: trio.Event = attrs.Factory(trio.Event)
    ok: bool = False


class GlobalRegistry:
    """One node's replica of the cluster-wide name table (see the module docs).

    Start it with `await nursery.start(registry.run)`; the node calls
    `peer_up`, `peer_down` and `handle` (all synchronous, never blocking).
    """

    def __init__(
        self, system: ActorSystem, transport: ClusterTransport, *, resolve: Resolver | None = None
    ) -> None:
        self._system = system
        self._transport = transport
        self._resolve = resolve or resolve_keep_first_node
        self._rng = random.Random()
        self._ids = 0
        self._me: Context | None = None
        self._nursery: trio.Nursery | None = None
        # name -> {owner node -> pid}; more than one owner only during a conflict
        self._claims: dict[str, dict[str, Pid]] = {}
        self._resolvers: dict[str, Resolver] = {}  # names claimed here, given resolve=
        self._names_of: dict[Pid, set[str]] = {}  # local pid -> names it holds
        self._watch: dict[Pid, Ref] = {}  # local pid -> our monitor of it
        # the locks this node grants: name -> queue of (requesting node, req)
        self._queues: dict[str, list[tuple[str, int]]] = {}
        # locks this node is waiting for: (granting node, req) -> wakeup
        self._grant_waits: dict[tuple[str, int], trio.Event] = {}
        self._granted: dict[tuple[str, int], tuple[str, ...]] = {}  # -> owners seen there
        self._generation = 0  # bumped by every peer_up/peer_down
        self._pending: dict[int, _Pending] = {}

    # -- lifecycle

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Watch the local pids holding names, serve peers' requests; until cancelled."""
        async with self._system.actor(trap_exits=True) as me, trio.open_nursery() as nursery:
            self._me = me
            self._nursery = nursery
            task_status.started()
            try:
                while True:
                    msg = await me.receive()
                    if isinstance(msg, Down):
                        self._on_down(msg)
            finally:
                self._me = None
                self._nursery = None

    # -- public API

    async def register_global(
        self, name: str, pid: Pid, *, resolve: Resolver | None = None
    ) -> bool:
        """Register `pid` as `name` on every connected node.

        True on success; False when the name is already registered somewhere
        in the cluster or `pid` is not alive (or its node is not connected).
        `resolve` picks the survivor if this registration later meets another
        one of the same name (see the module docs); it is kept by the pid's
        own node, so it can only be given for a local `pid` (`ta.NotLocalPid`
        otherwise).
        """
        _check_name(name)
        if not self._system.is_local(pid):
            if resolve is not None:
                # A function cannot travel to the pid's node, which keeps it.
                raise NotLocalPid(pid, "register a global name with resolve=")
            owner = self._owner_of(pid)
            if owner is None:
                return False
            return await self._ask(owner, "register", name, pid)
        return await self._register_local(name, pid, resolve)

    async def re_register_global(
        self, name: str, pid: Pid, *, resolve: Resolver | None = None
    ) -> bool:
        """Make `name` refer to `pid` on every connected node, whether or not
        it is registered already (Erlang's `global:re_register_name`): the
        previous holder keeps running, it just loses the name. A `pid` that is
        not alive leaves the name unregistered. False only when `pid` is of a
        node that is not connected; `resolve` as for `register_global`.
        """
        _check_name(name)
        if not self._system.is_local(pid):
            if resolve is not None:
                raise NotLocalPid(pid, "re-register a global name with resolve=")
            owner = self._owner_of(pid)
            if owner is None:
                return False
            return await self._ask(owner, "re_register", name, pid)
        await self._re_register_local(name, pid, resolve)
        return True

    def whereis_global(self, name: str) -> Pid | None:
        """The pid registered as `name`, from this node's replica (no round trip)."""
        claims = self._claims.get(name)
        if not claims:
            return None
        return claims[min(claims)]

    async def unregister_global(self, name: str) -> None:
        """Remove `name` everywhere (done by the node of the pid holding it)."""
        _check_name(name)
        claims = self._claims.get(name)
        if not claims:
            return
        remote: list[tuple[str, Pid]] = []
        for owner, pid in list(claims.items()):
            if owner == self._local:
                self._unclaim(name, pid)
            else:
                # Hide it at once here; its owner removes it for everyone.
                self._drop_claim(name, owner)
                remote.append((owner, pid))
        for owner, pid in remote:
            await self._ask(owner, "unregister", name, pid)

    def registered_globals(self) -> list[str]:
        """Every globally registered name, sorted."""
        return sorted(self._claims)

    def send_global(self, name: str, msg: Any) -> bool:
        """Send `msg` to the pid registered as `name`; False (dropped) if there is none."""
        pid = self.whereis_global(name)
        if pid is None:
            return False
        self._system.send(pid, msg)
        return True

    # -- node callbacks

    def peer_up(self, node: str) -> None:
        """A connection to `node` is up: send it every claim of this node."""
        self._topology_changed()
        local = self._local
        mine = {name: claims[local] for name, claims in self._claims.items() if local in claims}
        self._transport.send_to(node, GlobalSync(mine))

    def peer_down(self, node: str) -> None:
        """The connection to `node` is lost: drop its claims, locks and answers."""
        self._topology_changed()
        for name in [n for n, claims in self._claims.items() if node in claims]:
            self._drop_claim(name, node)
        for name, queue in list(self._queues.items()):
            for entry in [e for e in queue if e[0] == node]:
                self._dequeue(name, *entry)
        for pending in self._pending.values():
            if pending.node == node:
                pending.done.set()

    def handle(self, from_node: str, record: Any) -> None:
        """Apply a record from `from_node` (never blocks).

        Raises `ProtocolError` for a record that claims pids of another node:
        the node should close that connection.
        """
        if isinstance(record, GlobalLock):
            self._enqueue(record.name, from_node, record.req)
        elif isinstance(record, GlobalUnlock):
            self._dequeue(record.name, from_node, record.req)
        elif isinstance(record, GlobalGrant):
            self._on_grant(from_node, record.req, record.owners)
        elif isinstance(record, GlobalRegister):
            self._check_owner(from_node, record.pid)
            self._claims.setdefault(record.name, {})[from_node] = record.pid
            self._check_conflict(record.name)
        elif isinstance(record, GlobalUnregister):
            if self._claims.get(record.name, {}).get(from_node) == record.pid:
                self._drop_claim(record.name, from_node)
        elif isinstance(record, GlobalSync):
            self._on_sync(from_node, record.names)
        elif isinstance(record, GlobalDrop):
            self._on_drop(from_node, record)
        elif isinstance(record, GlobalRequest):
            self._on_request(from_node, record)
        elif isinstance(record, GlobalReply):
            pending = self._pending.get(record.req)
            if pending is not None and pending.node == from_node:
                pending.ok = record.ok
                pending.done.set()
        else:
            raise TypeError(f"not a global registry record: {record!r}")

    # -- internals: registration

    @property
    def _local(self) -> str:
        return self._transport.local_node

    def _running(self) -> Context:
        if self._me is None:
            raise RuntimeError("the global registry is not running: start it with nursery.start")
        return self._me

    def _next_id(self) -> int:
        self._ids += 1
        return self._ids

    async def _register_local(self, name: str, pid: Pid, resolve: Resolver | None) -> bool:
        self._running()
        if name in self._claims or not self._system.is_alive(pid):
            return False
        req, held, owners = await self._acquire(name)
        try:
            # Holding the lock everywhere, this replica has every earlier claim
            # of the nodes connected here. `owners` adds those that only a node
            # in between can see (when the connections are not a full mesh).
            connected = {self._local, *self._transport.connected_nodes()}
            if name in self._claims or not owners <= connected or not self._system.is_alive(pid):
                return False
            self._claim(name, pid, resolve)
            self._transport.broadcast(GlobalRegister(name, pid))
            return True
        finally:
            self._release(name, req, held)

    async def _re_register_local(self, name: str, pid: Pid, resolve: Resolver | None) -> None:
        self._running()
        req, held, _owners = await self._acquire(name)
        try:
            # Every current claim goes first, each removed by its owner and
            # acknowledged, so no node ever sees the new claim beside an old
            # one (which would be a conflict for the resolver).
            for owner, old in sorted(self._claims.get(name, {}).items()):
                if old == pid:
                    continue
                if owner == self._local:
                    self._unclaim(name, old)
                else:
                    self._drop_claim(name, owner)
                    await self._ask(owner, "unregister", name, old)
            if self._claims.get(name, {}).get(self._local) == pid:
                if resolve is not None:
                    self._resolvers[name] = resolve
            elif self._system.is_alive(pid):
                self._claim(name, pid, resolve)
                self._transport.broadcast(GlobalRegister(name, pid))
        finally:
            self._release(name, req, held)

    def _claim(self, name: str, pid: Pid, resolve: Resolver | None) -> None:
        self._claims.setdefault(name, {})[self._local] = pid
        if resolve is not None:
            self._resolvers[name] = resolve
        self._names_of.setdefault(pid, set()).add(name)
        if pid not in self._watch:
            self._watch[pid] = self._running().monitor(pid)

    def _unclaim(self, name: str, pid: Pid) -> None:
        """Remove this node's claim of `name` by local `pid` and tell everyone."""
        if self._claims.get(name, {}).get(self._local) != pid:
            return
        self._drop_claim(name, self._local)
        self._resolvers.pop(name, None)
        names = self._names_of.get(pid)
        if names is not None:
            names.discard(name)
            if not names:
                del self._names_of[pid]
                ref = self._watch.pop(pid, None)
                if ref is not None and self._me is not None:
                    self._me.demonitor(ref)
        self._transport.broadcast(GlobalUnregister(name, pid))

    def _drop_claim(self, name: str, owner: str) -> None:
        claims = self._claims.get(name)
        if claims is None:
            return
        claims.pop(owner, None)
        if not claims:
            del self._claims[name]

    def _on_down(self, msg: Down) -> None:
        pid = msg.pid
        if not isinstance(pid, Pid) or self._watch.get(pid) != msg.ref:
            return
        del self._watch[pid]
        for name in sorted(self._names_of.pop(pid, set())):
            if self._claims.get(name, {}).get(self._local) == pid:
                self._drop_claim(name, self._local)
                self._resolvers.pop(name, None)
                self._transport.broadcast(GlobalUnregister(name, pid))

    # -- internals: the cluster lock

    async def _acquire(self, name: str) -> tuple[int, list[str], set[str]]:
        """Hold `name`'s lock on this node and every connected one; returns the
        request id, the nodes locked and the claim owners they reported."""
        while True:
            req = self._next_id()
            generation = self._generation
            nodes = sorted({self._local, *self._transport.connected_nodes()})
            held: list[str] = []
            owners: set[str] = set()
            try:
                for node in nodes:
                    held.append(node)
                    key = (node, req)
                    wakeup = self._grant_waits[key] = trio.Event()
                    if node == self._local:
                        self._enqueue(name, node, req)
                    else:
                        self._transport.send_to(node, GlobalLock(name, req))
                    await wakeup.wait()
                    del self._grant_waits[key]
                    if key not in self._granted or self._generation != generation:
                        break
                    owners.update(self._granted.pop(key))
                else:
                    return req, held, owners
            except BaseException:
                self._release(name, req, held)
                raise
            # The set of nodes changed under us: start over on the new one.
            self._release(name, req, held)
            await trio.sleep(self._rng.uniform(0.0, 0.01))

    def _release(self, name: str, req: int, nodes: list[str]) -> None:
        for node in nodes:
            key = (node, req)
            self._grant_waits.pop(key, None)
            self._granted.pop(key, None)
            if node == self._local:
                self._dequeue(name, node, req)
            else:
                self._transport.send_to(node, GlobalUnlock(name, req))

    def _enqueue(self, name: str, node: str, req: int) -> None:
        queue = self._queues.setdefault(name, [])
        entry = (node, req)
        if entry not in queue:
            queue.append(entry)
        if queue[0] == entry:
            self._grant(name, node, req)

    def _dequeue(self, name: str, node: str, req: int) -> None:
        queue = self._queues.get(name)
        entry = (node, req)
        if queue is None or entry not in queue:
            return
        was_head = queue[0] == entry
        queue.remove(entry)
        if not queue:
            del self._queues[name]
        elif was_head:
            self._grant(name, *queue[0])

    def _grant(self, name: str, node: str, req: int) -> None:
        owners = tuple(sorted(self._claims.get(name, ())))
        if node == self._local:
            self._on_grant(node, req, owners)
        else:
            self._transport.send_to(node, GlobalGrant(name, req, owners))

    def _on_grant(self, node: str, req: int, owners: tuple[str, ...]) -> None:
        wakeup = self._grant_waits.get((node, req))
        if wakeup is not None:
            self._granted[(node, req)] = owners
            wakeup.set()

    def _topology_changed(self) -> None:
        self._generation += 1
        for wakeup in self._grant_waits.values():
            wakeup.set()

    # -- internals: replicas and conflicts

    def _owner_of(self, pid: Pid) -> str | None:
        if self._system.is_local(pid):
            return self._local
        if pid.node in self._transport.connected_nodes():
            return pid.node
        return None

    def _check_owner(self, node: str, pid: Pid) -> None:
        if pid.node != node:
            raise ProtocolError(f"node {node!r} claimed a global name for {pid}, not its pid")

    def _on_sync(self, node: str, names: dict[str, Pid]) -> None:
        for pid in names.values():
            self._check_owner(node, pid)
        for name in [n for n, claims in self._claims.items() if node in claims]:
            self._drop_claim(name, node)
        for name, pid in names.items():
            self._claims.setdefault(name, {})[node] = pid
        for name in sorted(names):
            self._check_conflict(name)

    def _check_conflict(self, name: str) -> None:
        """Arbitrate every conflict on `name` this node is the arbiter of."""
        claims = self._claims.get(name)
        mine = claims.get(self._local) if claims else None
        if claims is None or mine is None:
            return
        for other in sorted(claims):
            theirs = claims.get(other)
            # The node sorting first arbitrates; the other waits for its word.
            if other <= self._local or theirs is None:
                continue
            if not self._arbitrate(name, mine, other, theirs):
                return

    def _arbitrate(self, name: str, mine: Pid, other: str, theirs: Pid) -> bool:
        """Resolve `mine` (this node sorts first) against `theirs`; True if mine stays."""
        resolve = self._resolvers.get(name, self._resolve)
        try:
            winner = resolve(name, mine, theirs)
        except Exception:
            log.exception("resolver of global name %r raised; keeping %s", name, mine)
            winner = mine
        if winner is not None and winner not in (mine, theirs):
            log.warning("resolver of global name %r returned %r; keeping %s", name, winner, mine)
            winner = mine
        fate = _fate(resolve)
        if winner == mine:
            log.warning(
                "global name %r registered on both %s (%s) and %s (%s): keeping %s",
                name, self._local, mine, other, theirs, mine,
            )  # fmt: skip
            self._drop_claim(name, other)
            self._transport.send_to(other, GlobalDrop(name, theirs, mine, fate))
            return True
        log.warning(
            "global name %r registered on both %s (%s) and %s (%s): %s",
            name, self._local, mine, other, theirs,
            f"keeping {theirs}" if winner == theirs else "unregistering both",
        )  # fmt: skip
        self._unclaim(name, mine)
        if winner != theirs:
            self._drop_claim(name, other)
            self._transport.send_to(other, GlobalDrop(name, theirs, mine, fate))
        self._apply_fate(fate, name, mine, theirs)
        return False

    def _apply_fate(self, fate: str, name: str, pid: Pid, other: Pid) -> None:
        if fate == _KILL:
            self._system.exit(pid, "kill")
        elif fate == _NOTIFY_ALL:
            self._system.send(pid, (CONFLICT, name, other))

    def _on_drop(self, node: str, record: GlobalDrop) -> None:
        name, pid = record.name, record.pid
        if self._claims.get(name, {}).get(self._local) != pid:
            return  # already gone or replaced: the arbiter will see the new claim
        log.warning(
            "global name %r: %s lost a conflict with %s (decided by %s)",
            name, pid, record.other, node,
        )  # fmt: skip
        self._unclaim(name, pid)
        self._apply_fate(record.fate, name, pid, record.other)

    # -- internals: requests forwarded to a pid's own node

    async def _ask(self, owner: str, op: str, name: str, pid: Pid) -> bool:
        if owner not in self._transport.connected_nodes():
            return False
        req = self._next_id()
        pending = self._pending[req] = _Pending(owner)
        try:
            self._transport.send_to(owner, GlobalRequest(req, op, name, pid))
            await pending.done.wait()
            return pending.ok
        finally:
            del self._pending[req]

    def _on_request(self, node: str, record: GlobalRequest) -> None:
        if record.op == "unregister":
            if self._system.is_local(record.pid):
                self._unclaim(record.name, record.pid)
            self._transport.send_to(node, GlobalReply(record.req, True))
        elif self._nursery is None or not self._system.is_local(record.pid):
            self._transport.send_to(node, GlobalReply(record.req, False))
        else:
            self._nursery.start_soon(self._serve_register, node, record)

    async def _serve_register(self, node: str, record: GlobalRequest) -> None:
        if record.op == "re_register":
            await self._re_register_local(record.name, record.pid, None)
            ok = True
        else:
            ok = await self._register_local(record.name, record.pid, None)
        self._transport.send_to(node, GlobalReply(record.req, ok))


def _check_name(name: object) -> None:
    if not isinstance(name, str):
        raise TypeError(f"a global name must be a str, not {type(name).__qualname__}")
