"""Local names: at most one name per process, one process per name."""

from __future__ import annotations

from ..errors import NameTaken
from ..wire.terms import Pid

__all__ = ["Registry"]


class Registry:
    """Maps names to the pids of live local processes.

    The system removes a process's name when it ends; the registry itself
    knows nothing about liveness.
    """

    __slots__ = ("_by_name", "_by_pid")

    def __init__(self) -> None:
        self._by_name: dict[str, Pid] = {}
        self._by_pid: dict[Pid, str] = {}

    def register(self, name: str, pid: Pid) -> None:
        """Give `pid` the name `name`; `NameTaken` if either already has one."""
        if not isinstance(name, str) or not name:
            raise TypeError(f"a registered name must be a non-empty str, not {name!r}")
        holder = self._by_name.get(name)
        if holder is not None:
            raise NameTaken(name, f"registered to {holder}; unregister it first")
        old = self._by_pid.get(pid)
        if old is not None:
            raise NameTaken(name, f"{pid} is already registered as {old!r}")
        self._by_name[name] = pid
        self._by_pid[pid] = name

    def unregister(self, name: str) -> bool:
        """Remove `name`; True if it was registered."""
        pid = self._by_name.pop(name, None)
        if pid is None:
            return False
        del self._by_pid[pid]
        return True

    def forget(self, pid: Pid) -> None:
        """Remove the name of `pid`, if it has one (the process ended)."""
        name = self._by_pid.pop(pid, None)
        if name is not None:
            del self._by_name[name]

    def whereis(self, name: str) -> Pid | None:
        """The pid registered as `name`, or None."""
        return self._by_name.get(name)

    def name_of(self, pid: Pid) -> str | None:
        """The name `pid` is registered under, or None."""
        return self._by_pid.get(pid)

    def names(self) -> list[str]:
        """Every registered name, sorted."""
        return sorted(self._by_name)
