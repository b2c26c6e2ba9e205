"""trioactors: Erlang/OTP's actor model and distribution for Python on Trio.

The public API is re-exported here; see README.md and API.md for the contract.
"""

from __future__ import annotations

__version__ = "0.1.0"

from .codec import MessageRegistry, message
from .errors import (
    AuthenticationFailed,
    CallFailed,
    CallTimeout,
    ConnectionFailed,
    EpmdError,
    EpmdUnavailable,
    FrameTooLarge,
    NameTaken,
    NodeIdCollision,
    NotSerializable,
    ProtocolError,
    SpawnFailed,
    StartFailed,
    TrioActorsError,
)
from .pid import Pid, Ref

# -- local runtime (system, gen_server, supervisor) --

# -- epmd --
# isort: split
from .epmd import EpmdClient, EpmdServer, NodeInfo, serve_epmd

# -- distribution --

__all__ = [
    "AuthenticationFailed",
    "CallFailed",
    "CallTimeout",
    "ConnectionFailed",
    "EpmdClient",
    "EpmdError",
    "EpmdServer",
    "EpmdUnavailable",
    "FrameTooLarge",
    "MessageRegistry",
    "NameTaken",
    "NodeIdCollision",
    "NodeInfo",
    "NotSerializable",
    "Pid",
    "ProtocolError",
    "Ref",
    "SpawnFailed",
    "StartFailed",
    "TrioActorsError",
    "__version__",
    "message",
    "serve_epmd",
]
