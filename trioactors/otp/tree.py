"""A system's supervision trees, as records that cross nodes (what
`trioactors top` and observer-like tools show)."""

from __future__ import annotations

from typing import Any

import attrs

from ..runtime.process import Process
from ..runtime.system import System
from ..wire.cbor import message
from ..wire.terms import Pid
from .supervisor import RESTARTING, _State

__all__ = ["SupervisionNode", "supervision_trees"]


@message("trioactors.SupervisionNode")
@attrs.frozen(slots=True)
class SupervisionNode:
    """One process of a supervision tree.

    `id` is the child id in its supervisor (a root: its registered name or
    None), `pid` its pid (None when not running, ``ta.RESTARTING`` while a
    failed restart is retried), `restart` its restart type (None for a root),
    `supervisor` whether it is a supervisor, and `children` the children of a
    local supervisor in start order (a remote supervisor's are not listed).
    """

    id: Any
    pid: Pid | str | None
    restart: str | None
    supervisor: bool
    children: tuple[SupervisionNode, ...] = ()


def _state(system: System, pid: Pid | str | None) -> _State | None:
    if not isinstance(pid, Pid) or not system.is_local(pid):
        return None
    proc = system._local_process(pid)
    if isinstance(proc, Process) and isinstance(proc._ext, _State):
        return proc._ext
    return None


def _node(system: System, cid: Any, pid: Pid | str | None, restart: str | None) -> SupervisionNode:
    state = _state(system, pid)
    if state is None:
        # A remote child may be a supervisor too; its spec says what it starts.
        return SupervisionNode(cid, pid, restart, False)
    children = tuple(
        _node(
            system,
            None if state.spec.dynamic else child.spec.id,
            RESTARTING if child.restarting else child.pid,
            child.spec.restart,
        )
        for child in state.children
    )
    return SupervisionNode(cid, pid, restart, True, children)


def supervision_trees(system: System) -> list[SupervisionNode]:
    """Every local supervisor that no local supervisor supervises, with its
    tree, oldest first."""
    supervised: set[Pid] = set()
    roots: list[Pid] = []
    for pid in system.processes():
        state = _state(system, pid)
        if state is not None:
            roots.append(pid)
            supervised.update(c.pid for c in state.children if c.pid is not None)
    return [
        _node(system, system.registry.name_of(pid), pid, None)
        for pid in roots
        if pid not in supervised
    ]
