"""The one parser of node names and addresses.

Every place that reads a node or an address from a user (the API, the CLI,
supervisor child specs) goes through `parse_node` or `parse_host_port`:

=================  ================================================  ==================
text               meaning                                           the peer must be
=================  ================================================  ==================
``alpha``          node ``alpha``, found through the node's EPMD     ``alpha``
``alpha@h2``       Erlang-style full name: found through h2's EPMD   ``alpha@h2``
``alpha@h2:5000``  node ``alpha`` listening at h2:5000 (no EPMD)     ``alpha`` or
                                                                     ``alpha@h2``
``h2:5000``        whatever node listens at h2:5000 (no EPMD)        any name
=================  ================================================  ==================

IPv6 hosts are written in brackets: ``alpha@[::1]:5000``, ``[::1]:4369``.
"""

from __future__ import annotations

import ipaddress
from typing import Final

import attrs

__all__ = [
    "MAX_NAME",
    "NodeAddress",
    "format_host_port",
    "is_loopback_host",
    "parse_host_port",
    "parse_node",
    "parse_node_name",
    "valid_alive",
]

#: The longest node name (Erlang's limit for the part before ``@``, too).
MAX_NAME: Final = 255
_FORMS: Final = "'name', 'name@host', 'name@host:port' or 'host:port'"


@attrs.frozen(slots=True)
class NodeAddress:
    """A parsed node reference; see the module docstring for the forms.

    `alive` is the name part (before ``@``; None for ``host:port``), `host`
    the host after ``@`` (or of ``host:port``), `port` a direct listening
    port (None: ask EPMD).
    """

    alive: str | None
    host: str | None = None
    port: int | None = None

    @property
    def name(self) -> str | None:
        """The node name this reference expects, as written before any port:
        ``alpha``, ``alpha@h2``; None for a bare ``host:port``."""
        if self.alive is None:
            return None
        if self.host is None or self.port is not None:
            return self.alive
        return f"{self.alive}@{self.host}"

    @property
    def direct(self) -> tuple[str, int] | None:
        """(host, port) when the reference gives the listening address."""
        if self.host is not None and self.port is not None:
            return (self.host, self.port)
        return None

    def accepts(self, peer_name: str) -> bool:
        """True when a peer announcing `peer_name` is the node referred to."""
        if self.alive is None:
            return True
        if self.port is not None and self.host is not None:
            return peer_name in (self.alive, f"{self.alive}@{self.host}")
        return peer_name == self.name


def valid_alive(name: str) -> bool:
    """True for a usable name part: 1-255 printable characters, no ``@``,
    no whitespace, no ``:`` (it would read as a port)."""
    return 0 < len(name) <= MAX_NAME and name.isprintable() and not any(c in name for c in "@: \t")


def _port(text: str, original: str, *, allow_zero: bool) -> int:
    if not text.isdigit() or not text.isascii():
        raise ValueError(f"{original!r}: the port must be a number, got {text!r}")
    port = int(text)
    low = 0 if allow_zero else 1
    if not low <= port <= 65535:
        raise ValueError(f"{original!r}: port {port} is out of range ({low}-65535)")
    return port


def _split_host_port(text: str, original: str, *, allow_zero: bool) -> tuple[str, int]:
    if text.startswith("["):
        host, close, rest = text[1:].partition("]")
        if not close or not rest.startswith(":"):
            raise ValueError(f"expected '[ipv6]:port', got {original!r}")
        return host, _port(rest[1:], original, allow_zero=allow_zero)
    host, sep, port = text.rpartition(":")
    if not sep:
        raise ValueError(f"expected 'host:port', got {original!r}")
    if ":" in host:
        raise ValueError(f"write an IPv6 host in brackets ('[{host}]:{port}'), got {original!r}")
    return host, _port(port, original, allow_zero=allow_zero)


def parse_host_port(
    text: str, *, what: str = "address", default_host: str = "", allow_zero: bool = False
) -> tuple[str, int]:
    """``host:port`` (or ``[ipv6]:port``, or ``:port`` with `default_host`) as
    (host, port). `allow_zero` admits port 0 (a listener picking a free port).
    Raises ValueError naming `what` and the expected form."""
    try:
        host, port = _split_host_port(text.strip(), text, allow_zero=allow_zero)
    except ValueError as exc:
        raise ValueError(f"{what}: {exc}") from None
    host = host or default_host
    if not host:
        raise ValueError(f"{what}: no host in {text!r}; expected 'host:port'")
    return host, port


def parse_node(text: str) -> NodeAddress:
    """Parse a node reference (see the module docstring); ValueError with
    the accepted forms for anything else."""
    if not isinstance(text, str) or not text:
        raise ValueError(f"a node is {_FORMS}, got {text!r}")
    alive, at, where = text.partition("@")
    if not at:
        if ":" in text:
            host, port = _split_host_port(text, text, allow_zero=False)
            if not host:
                raise ValueError(f"no host in {text!r}; a node is {_FORMS}")
            return NodeAddress(None, host, port)
        if not valid_alive(text):
            raise ValueError(f"bad node name {text!r}; a node is {_FORMS}")
        return NodeAddress(text)
    if not valid_alive(alive):
        raise ValueError(f"bad node name {alive!r} in {text!r}; a node is {_FORMS}")
    if not where or "@" in where:
        raise ValueError(f"bad host in {text!r}; a node is {_FORMS}")
    if where.startswith("[") or ":" in where:
        host, port = _split_host_port(where, text, allow_zero=False)
        if not host:
            raise ValueError(f"no host in {text!r}; a node is {_FORMS}")
        return NodeAddress(alive, host, port)
    if not where.isprintable() or " " in where or len(text) > MAX_NAME:
        raise ValueError(f"bad host in {text!r}; a node is {_FORMS}")
    return NodeAddress(alive, where)


def format_host_port(host: str, port: int) -> str:
    """``host:port`` as `parse_host_port` reads it back (IPv6 in brackets)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_node_name(text: str) -> NodeAddress:
    """A node's own name: ``alpha`` (a short name, unique in its EPMD) or
    ``alpha@host`` (Erlang's full name: `alive` registered with the EPMD of
    `host`). ValueError for anything else (a name cannot carry a port)."""
    try:
        address = parse_node(text)
    except ValueError:
        address = None
    if address is None or address.alive is None or address.port is not None:
        raise ValueError(
            f"a node name is 'name' or 'name@host' (name: 1-{MAX_NAME} printable "
            f"characters without '@', ':' or spaces), got {text!r}"
        )
    return address


def is_loopback_host(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1): a
    host that is this machine whichever machine asks."""
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
