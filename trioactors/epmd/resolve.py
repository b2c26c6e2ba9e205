"""Finding a node by name: the central daemon first, then the node's own host.

`find_node` is what a node (and the CLI) runs to turn a name into an address:

- ``alpha`` (a short name): asked of the given daemon, as always.
- ``alpha@h2`` (a full name): asked of the given daemon (registered there in
  full, or by its short name with the full name in its entry), then of the
  EPMD of host h2 at the same EPMD port, as an Erlang node asks
  (PORT_PLEASE2 on a real epmd; every host of a cluster uses one EPMD port).

A node's own host's EPMD may hand out a loopback address (what the node
registered for its own host's eyes); dialled from elsewhere, the host in the
name is used instead, with the registered port, as Erlang does.
"""

from __future__ import annotations

import logging

import attrs

from ..errors import EpmdError
from ..wire.epmd_native import NodeInfo
from ..wire.names import format_host_port, is_loopback_host, parse_node
from .client import EpmdClient

__all__ = ["Found", "find_node"]

log = logging.getLogger("trioactors.epmd")


@attrs.frozen
class Found:
    """A node's EPMD entry, the daemon that gave it (``host:port``) and the
    address to dial."""

    info: NodeInfo
    epmd: str
    address: tuple[str, int]


async def find_node(name: str, client: EpmdClient) -> Found | None:
    """Look `name` up through `client`'s daemon, then (a full name) through
    its host's EPMD at `client.port`. None if neither knows it.

    Raises `EpmdError` when no daemon could tell: the own daemon failing is
    the error for a short name; for a full name, the host's EPMD failing is.
    """
    address = parse_node(name)
    full = address.alive is not None and address.host is not None and address.port is None
    own = format_host_port(client.host, client.port)
    try:
        info = await client.lookup(name)
        if info is None and full:
            assert address.alive is not None
            short = await client.lookup(address.alive)
            if short is not None and short.node_name == name:
                info = short  # registered by its short name with this daemon
    except EpmdError as exc:
        if not full:
            raise
        log.debug("lookup %s: EPMD at %s cannot tell (%s); asking its host", name, own, exc)
        info = None
    if info is not None:
        log.debug("lookup %s: EPMD at %s has it", name, own)
        return Found(info, own, (info.host, info.port))
    if not full:
        log.debug("lookup %s: not registered with EPMD at %s", name, own)
        return None
    assert address.alive is not None and address.host is not None
    host = address.host
    where = format_host_port(host, client.port)
    log.debug("lookup %s: asking the EPMD of host %s (%s)", name, host, where)
    remote = EpmdClient(host, client.port, timeout=client.timeout)
    try:
        info = await remote.lookup(address.alive)
        if info is None or info.node_name != name:
            # Registered in full: that daemon took itself for a central one.
            info = await remote.lookup(name) or info
    except EpmdError as exc:
        raise type(exc)(
            f"node {name!r} is not registered with EPMD at {own}, and the EPMD of "
            f"host {host} at {where} cannot tell: {exc}"
        ) from exc
    finally:
        await remote.aclose()
    if info is None:
        log.debug("lookup %s: not registered with EPMD at %s either", name, where)
        return None
    dial = (info.host, info.port)
    if is_loopback_host(info.host) and not is_loopback_host(host):
        # Registered for its own host's eyes only; dial the host as Erlang does.
        dial = (host, info.port)
    return Found(info, where, dial)
