"""What a system's processes are doing: Erlang's `processes()` and
`process_info/1`, as plain records that cross nodes (so `trioactors top` can
show a remote node)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import attrs

from ..wire.cbor import message
from ..wire.terms import Pid

if TYPE_CHECKING:
    from .process import Process
    from .system import System

__all__ = ["ProcessInfo", "Status", "process_info"]

#: ``"waiting"``: parked in `receive` (nothing it matches queued); ``"runnable"``:
#: running or with messages to handle; ``"exiting"``: told to end, not gone yet.
Status = Literal["waiting", "runnable", "exiting"]


@message("trioactors.ProcessInfo")
@attrs.frozen(slots=True)
class ProcessInfo:
    """A snapshot of one local process (`system.process_info(pid)`).

    - `name`: its registered name, if any; `status`: see `Status`.
    - `mailbox`: messages queued and not yet received (Erlang's
      ``message_queue_len``, skipped-by-selective-receive ones included).
    - `received`: messages delivered to it since it started.
    - `links`, `monitors` (what it monitors: pids or ``(name, node)``),
      `monitored_by` (who monitors it), `parent` (who spawned it),
      `trap_exits`.
    """

    pid: Pid
    name: str | None
    status: str
    mailbox: int
    received: int
    links: tuple[Pid, ...]
    monitors: tuple[Any, ...]
    monitored_by: tuple[Pid, ...]
    parent: Pid | None
    trap_exits: bool


def process_info(system: System, proc: Process) -> ProcessInfo:
    """The snapshot of `proc`, a live process of `system`."""
    queued = len(proc._queue or ()) + len(proc._saved or ())
    if proc._dying:
        status = "exiting"
    elif proc._waiter is not None:
        status = "waiting"
    else:
        status = "runnable"
    return ProcessInfo(
        pid=proc.pid,
        name=system.registry.name_of(proc.pid),
        status=status,
        mailbox=queued,
        received=proc._received,
        links=tuple(sorted(proc._links or ())),
        monitors=tuple((proc._monitors or {}).values()),
        monitored_by=tuple(watcher for watcher, _ in (proc._monitored_by or {}).values()),
        parent=proc._parent,
        trap_exits=proc.trap_exits,
    )
