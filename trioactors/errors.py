"""The exception hierarchy: everything trioactors raises derives from TrioActorsError."""

from __future__ import annotations

from typing import Any

__all__ = [
    "ActorExited",
    "AuthenticationFailed",
    "CallFailed",
    "CallTimeout",
    "ChildAlreadyPresent",
    "ChildAlreadyStarted",
    "ChildNotFound",
    "ChildRestarting",
    "ChildRunning",
    "ConnectionFailed",
    "EpmdError",
    "EpmdUnavailable",
    "EtfDecodeError",
    "EtfLimitExceeded",
    "FrameTooLarge",
    "MaxChildren",
    "NameTaken",
    "NoProc",
    "NotLocalPid",
    "NotSerializable",
    "ProtocolError",
    "RpcFailed",
    "SpawnFailed",
    "StartFailed",
    "StopFailed",
    "StopTimeout",
    "SupervisorError",
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


class SupervisorError(TrioActorsError):
    """A supervisor refused an admin request (`start_child`, `terminate_child`,
    `restart_child`, `delete_child`): `reason` is OTP's error atom as a str
    (``"not_found"``, ``"running"``, ...), `child` the child id or pid asked for.

    Raised as is with reason ``"simple_one_for_one"`` when a request needs
    child ids but the supervisor is a dynamic one (its children have none)."""

    def __init__(self, reason: str, sup: Any, child: Any, detail: str) -> None:
        self.reason = reason
        self.sup = sup
        self.child = child
        super().__init__(f"supervisor {sup!r}: {detail}")


class ChildNotFound(SupervisorError):
    """No child with that id (or, for a dynamic supervisor, that pid)."""

    def __init__(self, sup: Any, child: Any) -> None:
        super().__init__(
            "not_found",
            sup,
            child,
            f"has no child {child!r}; see which_children(sup) for the children it has",
        )


class ChildRunning(SupervisorError):
    """`restart_child`/`delete_child` on a child that is running."""

    def __init__(self, sup: Any, child: Any) -> None:
        super().__init__(
            "running",
            sup,
            child,
            f"child {child!r} is running; stop it first with terminate_child(sup, {child!r})",
        )


class ChildRestarting(SupervisorError):
    """`restart_child`/`delete_child` on a child the supervisor is busy
    restarting (its start failed and is being retried)."""

    def __init__(self, sup: Any, child: Any) -> None:
        super().__init__(
            "restarting",
            sup,
            child,
            f"child {child!r} is being restarted (its start failed and is retried); "
            f"wait, or stop the retries with terminate_child(sup, {child!r})",
        )


class ChildAlreadyPresent(SupervisorError):
    """`start_child` with the id of a child the supervisor has but is not
    running (OTP's ``already_present``)."""

    def __init__(self, sup: Any, child: Any) -> None:
        super().__init__(
            "already_present",
            sup,
            child,
            f"already has a child {child!r} (not running); start it with "
            f"restart_child(sup, {child!r}) or remove it with delete_child(sup, {child!r})",
        )


class ChildAlreadyStarted(SupervisorError):
    """`start_child` with the id of a running child (OTP's
    ``{already_started, Pid}``); `pid` is that child's pid."""

    def __init__(self, sup: Any, child: Any, pid: Any) -> None:
        self.pid = pid
        super().__init__(
            "already_started",
            sup,
            child,
            f"child {child!r} is already running as {pid}; give the new child another id",
        )


class MaxChildren(SupervisorError):
    """A dynamic supervisor already has its `max_children` children."""

    def __init__(self, sup: Any, limit: Any) -> None:
        self.limit = limit
        super().__init__(
            "max_children",
            sup,
            None,
            f"already has its max_children={limit} children; stop one "
            "(terminate_child(sup, pid)) or raise max_children",
        )


class StopFailed(TrioActorsError):
    """`stop(server, reason)` saw the server end with another reason than the
    one asked for (typically a ``ta.Crash`` from its `terminate`): `reason`."""

    def __init__(self, reason: Any, server: Any) -> None:
        self.reason = reason
        self.server = server
        super().__init__(
            f"stopping {server!r} failed: it ended with reason {reason!r} "
            "(see its crash report for a failing terminate)"
        )


class StopTimeout(StopFailed):
    """`stop(server, timeout=...)` waited in vain: the server is still running
    (usually still in its `terminate`); OTP's ``timeout`` exit."""

    def __init__(self, server: Any, timeout: float) -> None:
        self.timeout = timeout
        TrioActorsError.__init__(
            self,
            f"{server!r} did not stop within {timeout} s; it is still running (in its "
            "terminate?): raise the timeout or end it with exit(pid, 'kill')",
        )
        self.reason = "timeout"
        self.server = server


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


class RpcFailed(TrioActorsError):
    """An rpc reached the node but did not return a value: the function is
    not registered there (``("undef", name)``), it raised (``("EXIT",
    reason)``, with a `ta.Crash`), or the request was malformed. `reason`
    holds Erlang's ``badrpc`` reason."""

    def __init__(self, node: str, function: str, reason: Any) -> None:
        self.node = node
        self.function = function
        self.reason = reason
        if isinstance(reason, tuple) and reason[:1] == ("undef",):
            detail = "no such function is registered there (see node.register_rpc)"
        else:
            detail = f"badrpc {reason!r}"
        super().__init__(f"rpc {function!r} on node {node!r}: {detail}")


class NotLocalPid(TrioActorsError):
    """An operation that only a pid's own node may do was asked for a remote pid
    (e.g. joining a process group: each node joins its own pids)."""

    def __init__(self, pid: Any, action: str) -> None:
        self.pid = pid
        super().__init__(
            f"cannot {action} with {pid}: it lives on another node; "
            "do it on the pid's own node (only local pids can be used here)"
        )
