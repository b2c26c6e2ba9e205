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
    "EtfDecodeError",
    "EtfLimitExceeded",
    "FrameTooLarge",
    "NameTaken",
    "NoProc",
    "NotLocalPid",
    "NotSerializable",
    "ProtocolError",
    "SpawnFailed",
    "StartFailed",
    "SystemClosed",
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
    """The server of a `call` was down or went down: `reason` says why."""

    def __init__(self, reason: Any, dest: Any = None) -> None:
        self.reason = reason
        self.dest = dest
        where = f" to {dest!r}" if dest is not None else ""
        super().__init__(f"call{where} failed: server exited with reason {reason!r}")


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


class EtfDecodeError(ProtocolError):
    """Bytes are not a valid Erlang external term (`ta.EtfCodec.decode`): the
    message says what is wrong and at which byte offset."""


class EtfLimitExceeded(EtfDecodeError):
    """An external term broke one of the decoder's limits (`limit` names it:
    ``max_depth``, ``max_size``, ``max_atoms``, ``max_bignum_bytes``, or the
    255-character atom length of Erlang); raise the `ta.EtfCodec` limit if
    the peer is trusted and the term legitimate."""

    def __init__(self, limit: str, value: int, maximum: int, offset: int) -> None:
        self.limit = limit
        self.value = value
        self.maximum = maximum
        self.offset = offset
        hint = (
            "Erlang itself allows no longer atoms"
            if limit == "atom_length"
            else f"raise EtfCodec({limit}=...) if the peer is trusted"
        )
        super().__init__(
            f"external term at byte {offset} exceeds {limit}: {value} > {maximum}; {hint}"
        )


class ConnectionFailed(TrioActorsError):
    """A node could not be reached or the connection to it was lost."""


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
