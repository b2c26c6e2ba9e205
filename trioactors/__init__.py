"""trioactors: Erlang/OTP's actor model and distribution for Python on Trio.

The public API is re-exported here; see README.md and API.md for the contract.
"""

from __future__ import annotations

__version__ = "0.1.0"

from .errors import (
    AuthenticationFailed,
    CallFailed,
    CallTimeout,
    ConnectionFailed,
    EpmdError,
    EpmdUnavailable,
    EtfDecodeError,
    EtfLimitExceeded,
    FrameTooLarge,
    NameTaken,
    NotSerializable,
    ProtocolError,
    RpcFailed,
    SpawnFailed,
    StartFailed,
    TlsFailed,
    TrioActorsError,
)
from .wire.cbor import MessageRegistry, message
from .wire.etf import Atom, BitString, ErlangFun, EtfCodec, FrozenList, ImproperList, Port
from .wire.terms import Pid, Ref

# -- local runtime (system, gen_server, supervisor) --
# isort: split
from .errors import (
    ActorExited,
    ChildAlreadyPresent,
    ChildAlreadyStarted,
    ChildNotFound,
    ChildRestarting,
    ChildRunning,
    MaxChildren,
    NoProc,
    StopFailed,
    StopTimeout,
    SupervisorError,
    SystemClosed,
)
from .otp.gen_server import IGNORE, NO_REPLY, Caller, GenServer
from .otp.supervisor import (
    RESTARTING,
    ChildCounts,
    ChildSpec,
    SupervisorSpec,
    dynamic_supervisor,
    supervisor,
)
from .otp.system import ActorSystem, Context, open_actor_system
from .runtime.messages import Crash, Down, Exit, NodeDown, NodeUp, TimerRef

# -- epmd --
# isort: split
from .epmd import EpmdClient, EpmdServer, NodeInfo, serve_epmd

# -- distribution --
# isort: split
from .cluster.globals import resolve_keep_first_node, resolve_notify_all
from .cluster.groups import GroupJoin, GroupLeave
from .cluster.node import Node, open_node
from .cluster.peer_nodes import PeerNode
from .errors import NotLocalPid
from .otp.tree import SupervisionNode
from .runtime.introspection import ProcessInfo

__all__ = [
    "IGNORE",
    "NO_REPLY",
    "RESTARTING",
    "ActorExited",
    "ActorSystem",
    "Atom",
    "AuthenticationFailed",
    "BitString",
    "CallFailed",
    "CallTimeout",
    "Caller",
    "ChildAlreadyPresent",
    "ChildAlreadyStarted",
    "ChildCounts",
    "ChildNotFound",
    "ChildRestarting",
    "ChildRunning",
    "ChildSpec",
    "ConnectionFailed",
    "Context",
    "Crash",
    "Down",
    "EpmdClient",
    "EpmdError",
    "EpmdServer",
    "EpmdUnavailable",
    "ErlangFun",
    "EtfCodec",
    "EtfDecodeError",
    "EtfLimitExceeded",
    "Exit",
    "FrameTooLarge",
    "FrozenList",
    "GenServer",
    "GroupJoin",
    "GroupLeave",
    "ImproperList",
    "MaxChildren",
    "MessageRegistry",
    "NameTaken",
    "NoProc",
    "Node",
    "NodeDown",
    "NodeInfo",
    "NodeUp",
    "NotLocalPid",
    "NotSerializable",
    "PeerNode",
    "Pid",
    "Port",
    "ProcessInfo",
    "ProtocolError",
    "Ref",
    "RpcFailed",
    "SpawnFailed",
    "StartFailed",
    "StopFailed",
    "StopTimeout",
    "SupervisionNode",
    "SupervisorError",
    "SupervisorSpec",
    "SystemClosed",
    "TimerRef",
    "TlsFailed",
    "TrioActorsError",
    "__version__",
    "dynamic_supervisor",
    "message",
    "open_actor_system",
    "open_node",
    "resolve_keep_first_node",
    "resolve_notify_all",
    "serve_epmd",
    "supervisor",
]
