"""Process groups: Erlang's `pg`, over a `ClusterTransport`.

Each node is authoritative for the memberships of its own pids: only local
pids may join or leave on a node. A node broadcasts every join and leave and
sends a snapshot of its local memberships to each node that connects; its
peers keep one view per node and replace it with each snapshot, so every
connected node converges on the same membership (each peer's stream is
ordered, and a snapshot is the whole truth of its sender). A member that ends
leaves every group it was in; a node that goes down takes its members with it.

Joins are counted like Erlang's: a pid that joined a group twice appears twice
in `group_members` and stays a member until it has left twice.

`monitor_group(group, watcher)` sends the watcher `GroupJoin(ref, group,
pids)` and `GroupLeave(ref, group, pids)` for every change this node sees,
local or remote. It does not send the current members: read `group_members`
right after `monitor_group` (both synchronous, nothing can slip in between).
"""

from __future__ import annotations

import logging
from collections import Counter
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
    "PG_RECORDS",
    "GroupJoin",
    "GroupLeave",
    "PgJoin",
    "PgLeave",
    "PgSync",
    "ProcessGroups",
]

log = logging.getLogger("trioactors.cluster.groups")

_str = attrs.validators.instance_of(str)
_pids = attrs.validators.deep_iterable(
    attrs.validators.instance_of(Pid), attrs.validators.instance_of(tuple)
)


def _tuple(value: Any) -> Any:
    # Lists become tuples so records stay immutable; anything else is left for
    # the validator to refuse.
    return tuple(value) if isinstance(value, list) else value


# --------------------------------------------------------------------------- notifications


@message("trioactors.GroupJoin")
@attrs.frozen
class GroupJoin:
    """Sent to a `monitor_group` watcher: `pids` joined `group` (once per join)."""

    ref: Ref
    group: str
    pids: tuple[Pid, ...] = attrs.field(converter=_tuple)


@message("trioactors.GroupLeave")
@attrs.frozen
class GroupLeave:
    """Sent to a `monitor_group` watcher: `pids` left `group` (once per leave),
    by `leave_group`, by ending, or because their node went down."""

    ref: Ref
    group: str
    pids: tuple[Pid, ...] = attrs.field(converter=_tuple)


# --------------------------------------------------------------------------- wire records


@message("trioactors.pg.Join")
@attrs.frozen
class PgJoin:
    """The sender's pids `pids` joined `group` (a pid twice = two joins)."""

    group: str = attrs.field(validator=_str)
    pids: tuple[Pid, ...] = attrs.field(converter=_tuple, validator=_pids)


@message("trioactors.pg.Leave")
@attrs.frozen
class PgLeave:
    """The sender's pids `pids` left `group` once each."""

    group: str = attrs.field(validator=_str)
    pids: tuple[Pid, ...] = attrs.field(converter=_tuple, validator=_pids)


def _snapshot(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _tuple(v) for k, v in value.items()}
    return value


@message("trioactors.pg.Sync")
@attrs.frozen
class PgSync:
    """Every local membership of the sender: group -> pids (with repeats)."""

    groups: dict[str, tuple[Pid, ...]] = attrs.field(
        converter=_snapshot,
        validator=attrs.validators.deep_mapping(_str, _pids, attrs.validators.instance_of(dict)),
    )


#: Every wire record of the process groups (for dispatching).
PG_RECORDS: Final = (PgJoin, PgLeave, PgSync)


# --------------------------------------------------------------------------- service


class ProcessGroups:
    """One node's view of the cluster's process groups (see the module docs).

    Start it with `await nursery.start(groups.run)`; the node calls `peer_up`,
    `peer_down` and `handle` (all synchronous, never blocking).
    """

    def __init__(self, system: ActorSystem, transport: ClusterTransport) -> None:
        self._system = system
        self._transport = transport
        self._me: Context | None = None
        self._local: dict[str, Counter[Pid]] = {}  # group -> local pid -> joins
        self._remote: dict[str, dict[str, Counter[Pid]]] = {}  # node -> group -> pid -> joins
        self._groups_of: dict[Pid, set[str]] = {}  # local member -> its groups
        self._members: dict[Pid, Ref] = {}  # local member -> our monitor of it
        self._watchers: dict[str, dict[Ref, Pid]] = {}  # group -> ref -> watcher
        self._watched: dict[Ref, str] = {}  # monitor_group ref -> group

    # -- lifecycle

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Watch local members and group watchers; until cancelled."""
        async with self._system.actor(trap_exits=True) as me:
            self._me = me
            task_status.started()
            try:
                while True:
                    msg = await me.receive()
                    if isinstance(msg, Down):
                        self._on_down(msg)
            finally:
                self._me = None

    # -- public API

    def join_group(self, group: str, pid: Pid) -> None:
        """Add local `pid` to `group` once more (joins are counted).

        Raises `NotLocalPid` for a pid of another node: join it on its own
        node. Joining a pid that is no longer alive does nothing.
        """
        _check_group(group)
        if not self._system.is_local(pid):
            raise NotLocalPid(pid, f"join group {group!r}")
        me = self._running()
        if not self._system.is_alive(pid):
            return
        self._local.setdefault(group, Counter())[pid] += 1
        self._groups_of.setdefault(pid, set()).add(group)
        if pid not in self._members:
            self._members[pid] = me.monitor(pid)
        self._transport.broadcast(PgJoin(group, (pid,)))
        self._notify(GroupJoin, group, (pid,))

    def leave_group(self, group: str, pid: Pid) -> bool:
        """Undo one `join_group` of local `pid`; False if it was not a member."""
        _check_group(group)
        if not self._system.is_local(pid):
            raise NotLocalPid(pid, f"leave group {group!r}")
        counts = self._local.get(group)
        if not counts or pid not in counts:
            return False
        counts[pid] -= 1
        if counts[pid] <= 0:
            del counts[pid]
            if not counts:
                del self._local[group]
            groups = self._groups_of[pid]
            groups.discard(group)
            if not groups:
                del self._groups_of[pid]
                ref = self._members.pop(pid, None)
                if ref is not None and self._me is not None:
                    self._me.demonitor(ref)
        self._transport.broadcast(PgLeave(group, (pid,)))
        self._notify(GroupLeave, group, (pid,))
        return True

    def group_members(self, group: str) -> list[Pid]:
        """Members of `group` on every connected node, sorted, once per join."""
        members = Counter(self._local.get(group, ()))
        for groups in self._remote.values():
            members.update(groups.get(group, ()))
        return sorted(members.elements())

    def local_group_members(self, group: str) -> list[Pid]:
        """Members of `group` on this node, sorted, once per join."""
        return sorted(self._local.get(group, Counter()).elements())

    def which_groups(self) -> list[str]:
        """Every group with at least one member anywhere, sorted."""
        names = set(self._local)
        for groups in self._remote.values():
            names.update(groups)
        return sorted(names)

    def monitor_group(self, group: str, watcher: Pid) -> Ref:
        """Send `watcher` a `GroupJoin`/`GroupLeave` for every change of `group`
        until `demonitor_group(ref)` or the watcher ends."""
        _check_group(group)
        # The monitor of the watcher doubles as the subscription's unique ref.
        ref = self._running().monitor(watcher)
        self._watchers.setdefault(group, {})[ref] = watcher
        self._watched[ref] = group
        return ref

    def demonitor_group(self, ref: Ref) -> bool:
        """Stop a `monitor_group`; False if `ref` was not active."""
        group = self._watched.pop(ref, None)
        if group is None:
            return False
        watchers = self._watchers[group]
        del watchers[ref]
        if not watchers:
            del self._watchers[group]
        if self._me is not None:
            self._me.demonitor(ref)
        return True

    # -- node callbacks

    def peer_up(self, node: str) -> None:
        """A connection to `node` is up: send it all local memberships."""
        snapshot = {g: tuple(sorted(c.elements())) for g, c in self._local.items()}
        self._transport.send_to(node, PgSync(snapshot))

    def peer_down(self, node: str) -> None:
        """The connection to `node` is lost: its members leave."""
        for group, counts in sorted(self._remote.pop(node, {}).items()):
            self._notify(GroupLeave, group, tuple(sorted(counts.elements())))

    def handle(self, from_node: str, record: Any) -> None:
        """Apply a record from `from_node` (never blocks).

        Raises `ProtocolError` for a record naming pids of another node: the
        node should close that connection.
        """
        if isinstance(record, PgJoin):
            self._check_owner(from_node, record.pids)
            groups = self._remote.setdefault(from_node, {})
            groups.setdefault(record.group, Counter()).update(record.pids)
            self._notify(GroupJoin, record.group, record.pids)
        elif isinstance(record, PgLeave):
            self._check_owner(from_node, record.pids)
            self._remote_leave(from_node, record.group, record.pids)
        elif isinstance(record, PgSync):
            self._on_sync(from_node, record.groups)
        else:
            raise TypeError(f"not a process group record: {record!r}")

    # -- internals

    def _running(self) -> Context:
        if self._me is None:
            raise RuntimeError("process groups are not running: start them with nursery.start")
        return self._me

    def _check_owner(self, node: str, pids: tuple[Pid, ...]) -> None:
        for pid in pids:
            if pid.node != node:
                raise ProtocolError(f"node {node!r} reported {pid} as a member, not its pid")

    def _remote_leave(self, node: str, group: str, pids: tuple[Pid, ...]) -> None:
        groups = self._remote.get(node, {})
        counts = groups.get(group)
        if counts is None:
            return
        left = []
        for pid in pids:
            if counts[pid] > 0:
                counts[pid] -= 1
                left.append(pid)
                if counts[pid] == 0:
                    del counts[pid]
        if not counts:
            del groups[group]
            if not groups:
                del self._remote[node]
        if left:
            self._notify(GroupLeave, group, tuple(left))

    def _on_sync(self, node: str, snapshot: dict[str, tuple[Pid, ...]]) -> None:
        for pids in snapshot.values():
            self._check_owner(node, pids)
        old = self._remote.pop(node, {})
        new = {group: Counter(pids) for group, pids in snapshot.items() if pids}
        if new:
            self._remote[node] = new
        for group in sorted(old.keys() | new.keys()):
            before, after = old.get(group, Counter()), new.get(group, Counter())
            left = tuple(sorted((before - after).elements()))
            joined = tuple(sorted((after - before).elements()))
            if left:
                self._notify(GroupLeave, group, left)
            if joined:
                self._notify(GroupJoin, group, joined)

    def _on_down(self, msg: Down) -> None:
        pid, ref = msg.pid, msg.ref
        group = self._watched.pop(ref, None)
        if group is not None:
            watchers = self._watchers[group]
            watchers.pop(ref, None)
            if not watchers:
                del self._watchers[group]
            return
        if not isinstance(pid, Pid) or self._members.get(pid) != ref:
            return
        del self._members[pid]
        for group in sorted(self._groups_of.pop(pid, set())):
            counts = self._local[group]
            pids = (pid,) * counts.pop(pid)
            if not counts:
                del self._local[group]
            self._transport.broadcast(PgLeave(group, pids))
            self._notify(GroupLeave, group, pids)

    def _notify(self, cls: type[GroupJoin | GroupLeave], group: str, pids: tuple[Pid, ...]) -> None:
        for ref, watcher in list(self._watchers.get(group, {}).items()):
            self._system.send(watcher, cls(ref, group, pids))


def _check_group(group: object) -> None:
    if not isinstance(group, str):
        raise TypeError(f"a group name must be a str, not {type(group).__qualname__}")
