"""EPMD: the discovery daemon (native and Erlang protocols on one port) and its client."""

from __future__ import annotations

from ..wire.epmd_native import NodeInfo
from .client import EpmdClient
from .server import DEFAULT_PORT, EpmdServer, serve_epmd

__all__ = ["DEFAULT_PORT", "EpmdClient", "EpmdServer", "NodeInfo", "serve_epmd"]
