"""The exception hierarchy: everything trioactors raises derives from TrioActorsError."""

from __future__ import annotations

from typing import Any

__all__ = [
    "ActorExited",
    "AuthenticationFailed",
    "CallFailed",
    "CallTimeout",
    "ConnectionFailed",
    "EpmdError",
    "EpmdUnavailable",
    "FrameTooLarge",
    "NameTaken",
    "NoProc",
    "NotLocalPid",
    "NotSerializable",
    "ProtocolError",
    "SpawnFailed",
    "StartFailed",
    "SystemClosed",
    "TlsFailed",
    "TrioActorsError",
]


class TrioActorsError(Exception):
    """Base class of every error trioactors raises on purpose."""


class NameTaken(TrioActorsError):
    """A name (local registry, EPMD node name, global name) is already taken."""

    def __init__(self, name: str, detail: str = "") -> None:
        self.name = name
        msg = f"name {name!r} is already taken"
        if detail:
            msg += f": {detail}"
        super().__init__(msg)


class CallTimeout(TrioActorsError):
    """A `call` got no reply within its timeout."""

    def __init__(self, dest: Any, timeout: float) -> None:
        self.dest = dest
        self.timeout = timeout
        super().__init__(
            f"call to {dest!r} got no reply within {timeout} s; "
            "raise the timeout or check that the server replies"
        )


class CallFailed(TrioActorsError):
    """The server of a `call` was down or went down: `reason` says why
    (``("nodedown", node_name)`` when its node is lost or unreachable)."""

    def __init__(self, reason: Any, dest: Any = None) -> None:
        self.reason = reason
        self.dest = dest
        where = f" to {dest!r}" if dest is not None else ""
        if type(reason) is tuple and len(reason) == 2 and reason[0] == "nodedown":
            why = (
                f"node {reason[1]!r} is down or unreachable (reason {reason!r}); "
                "check that it runs and shares this node's cookie"
            )
        else:
            why = f"server exited with reason {reason!r}"
        super().__init__(f"call{where} failed: {why}")


class StartFailed(TrioActorsError):
    """A server or supervisor failed to start (its `init` raised or it exited)."""

    def __init__(self, reason: Any, what: str = "server") -> None:
        self.reason = reason
        super().__init__(f"{what} failed to start: {reason!r}")


class NoProc(TrioActorsError):
    """The process named in the request is not alive (or is not what it should be)."""


class ActorExited(TrioActorsError):
    """A `system.actor()` block was ended by an exit signal: `reason` says why
    (trap exits with `trap_exits=True` to receive them as `ta.Exit` messages)."""

    def __init__(self, reason: Any, pid: Any = None) -> None:
        self.reason = reason
        self.pid = pid
        super().__init__(f"actor {pid} was ended by an exit signal with reason {reason!r}")


class SystemClosed(TrioActorsError):
    """The actor system has shut down (or is shutting down) and takes no new actors."""


class SpawnFailed(TrioActorsError):
    """A remote spawn could not be done (unknown spawnable, node unreachable, ...)."""


class NotSerializable(TrioActorsError):
    """A message holds a value that cannot cross nodes (only CBOR types and
    `@ta.message` classes can)."""


class ProtocolError(TrioActorsError):
    """Bytes from the network broke the protocol; the connection is closed."""


class FrameTooLarge(ProtocolError):
    """A frame announced a size above the configured maximum."""

    def __init__(self, size: int, limit: int) -> None:
        self.size = size
        self.limit = limit
        super().__init__(f"frame of {size} bytes exceeds the maximum of {limit} bytes")


class ConnectionFailed(TrioActorsError):
    """A node could not be reached or the connection to it was lost."""


class TlsFailed(ConnectionFailed):
    """The TLS handshake with a peer failed: its certificate does not match
    the address dialled or is not signed by a trusted CA, it refused ours, or
    one side does not speak TLS at all. The message says which."""


class AuthenticationFailed(ConnectionFailed):
    """The peer did not prove it knows the cookie (or we did not convince it)."""


class EpmdError(TrioActorsError):
    """The EPMD daemon refused a request or answered something unexpected."""


class EpmdUnavailable(EpmdError):
    """No EPMD daemon answered at the given address."""


class NotLocalPid(TrioActorsError):
    """An operation that only a pid's own node may do was asked for a remote pid
    (e.g. joining a process group: each node joins its own pids)."""

    def __init__(self, pid: Any, action: str) -> None:
        self.pid = pid
        super().__init__(
            f"cannot {action} with {pid}: it lives on another node; "
            "do it on the pid's own node (only local pids can be used here)"
        )
