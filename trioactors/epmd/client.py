"""The EPMD client: talks to a trioactors daemon (native protocol) or to a real
Erlang `epmd`, whichever answers at the address.

```python
async with ta.EpmdClient("127.0.0.1", 4369) as client:   # owns a nursery
    await client.register("alpha", "127.0.0.1", 5000)      # kept alive in the background
    await client.lookup("beta")                            # ta.NodeInfo | None
    await client.list_nodes()
# leaving the block unregisters "alpha" and closes the connection
```

`register` needs the ``async with`` form: the registration is kept alive by a
background task (keep-alives every `keepalive_interval` seconds on a trioactors
daemon, or the open ALIVE2 connection on an Erlang epmd), and that task needs
an owner. It re-registers by itself after the daemon restarts, within one
keep-alive interval. One-shot requests (`lookup`, `list_nodes`, `ping`,
`unregister`) also work on a plain ``client = EpmdClient(...)``; call
`aclose()` when done to close its connection.

The protocol is detected once per client: the native preamble is sent first,
and a daemon that hangs up instead of answering it is a real epmd (see
`protocol.py`); from then on Erlang requests are used.

A registration lives as long as the connection that made it (on both kinds of
daemon, as in epmd): when this client's connection breaks, it reconnects and
registers again at once. On a real epmd the node registers with ALIVE2 and
marks itself as a trioactors node in the extra field (`trioactors_extra`), and
`lookup`/`list_nodes` tell trioactors nodes (``kind="trioactors"``) from
Erlang nodes (``kind="erlang"``) by that marker.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import secrets
from collections.abc import Callable, Iterable, Iterator, Mapping
from types import TracebackType
from typing import Final, TypeVar

import attrs
import trio

from ..errors import EpmdError, EpmdUnavailable, NameTaken, ProtocolError
from ..wire.epmd_erlang import (
    NAMES_REQ,
    ErlangNodeFields,
    Port2Result,
    encode_alive2_req,
    encode_port2_req,
    encode_request,
    parse_alive2_resp,
    parse_names_resp,
    parse_port2_resp,
    parse_trioactors_extra,
    parse_trioactors_node,
    trioactors_extra,
    valid_node_name,
)
from ..wire.epmd_native import (
    KIND_ERLANG,
    KIND_TRIOACTORS,
    MAX_RESPONSE_SIZE,
    PREAMBLE_SIZE,
    Alive,
    Found,
    KeepAlive,
    ListNodes,
    Lookup,
    NativeParser,
    NativeRequest,
    NativeResponse,
    NodeInfo,
    NodeList,
    Ping,
    Pong,
    Refused,
    Register,
    Registered,
    Unregister,
    Unregistered,
    encode_message,
    encode_preamble,
    parse_preamble,
)
from ..wire.epmd_protocol import ERLANG, NATIVE
from .server import DEFAULT_PORT

__all__ = ["EpmdClient", "NodeInfo"]

log = logging.getLogger("trioactors.epmd.client")

DEFAULT_KEEPALIVE_INTERVAL: Final = 20.0
_RECEIVE_SIZE = 65536
_KEEPALIVE_BATCH_BYTES = 32 * 1024


class _Gone(Exception):
    """The daemon closed or broke the connection."""


@attrs.define(eq=False)
class _Registration:
    name: str
    host: str
    port: int
    protocol_version: int
    capabilities: tuple[str, ...]
    metadata: dict[str, str]
    token: bytes
    info: NodeInfo
    scope: trio.CancelScope | None = None  # Erlang mode: the ALIVE2 holder task


class _NativeConn:
    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.parser = NativeParser(MAX_RESPONSE_SIZE)

    async def receive(self, rid: int) -> NativeResponse:
        while True:
            for msg in self.parser.messages():
                if getattr(msg, "id", None) == rid:
                    return msg  # type: ignore[return-value]
                # An answer to a request whose caller was cancelled: skip.
            data = await self.stream.receive_some(_RECEIVE_SIZE)
            if not data:
                raise _Gone("the daemon closed the connection")
            self.parser.feed(data)


class EpmdClient:
    """Client of an EPMD daemon at host:port (a trioactors daemon or Erlang's epmd).

    `keepalive_interval` (default 20 s) is how often registrations are
    refreshed; `timeout` bounds connecting and each request.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        *,
        keepalive_interval: float = DEFAULT_KEEPALIVE_INTERVAL,
        timeout: float = 5.0,
    ) -> None:
        if type(port) is not int or not 0 < port <= 65535:
            raise ValueError(f"EPMD port {port!r} is out of range (1-65535)")
        self.host = host
        self.port = port
        self.keepalive_interval = keepalive_interval
        self.timeout = timeout
        self._protocol: str | None = None
        self._conn: _NativeConn | None = None
        self._lock = trio.Lock()
        self._next_id = 0
        self._registrations: dict[str, _Registration] = {}
        self._stack: contextlib.AsyncExitStack | None = None
        self._nursery: trio.Nursery | None = None
        self._keepalive_running = False
        # Set when a connection holding registrations is dropped, so the
        # keep-alive task registers again at once, not an interval later.
        self._dropped = trio.Event()

    def __repr__(self) -> str:
        return f"EpmdClient({self.host!r}, {self.port})"

    @property
    def address(self) -> str:
        """host:port of the daemon."""
        return f"{self.host}:{self.port}"

    @property
    def protocol(self) -> str | None:
        """``"native"`` or ``"erlang"`` once known (after the first request)."""
        return self._protocol

    # -- lifetime

    async def __aenter__(self) -> EpmdClient:
        stack = contextlib.AsyncExitStack()
        self._nursery = await stack.enter_async_context(trio.open_nursery())
        self._stack = stack
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        stack, self._stack = self._stack, None
        try:
            await self._shutdown()
        finally:
            if stack is not None:
                assert self._nursery is not None
                self._nursery.cancel_scope.cancel()
                self._nursery = None
                # The body's own exception is not handed to the nursery, so it
                # reaches the caller as it is (not wrapped in an ExceptionGroup).
                await stack.__aexit__(None, None, None)
        return None

    async def _shutdown(self) -> None:
        # Unregister politely (bounded, and even when cancelled), then close.
        with trio.CancelScope(shield=True), trio.move_on_after(self.timeout):
            for name in list(self._registrations):
                try:
                    await self.unregister(name)
                except EpmdError as exc:
                    log.debug("could not unregister %s on close: %s", name, exc)
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection; the daemon forgets native registrations after
        its keep-alive timeout, Erlang ones at once."""
        for reg in self._registrations.values():
            if reg.scope is not None:
                reg.scope.cancel()
        self._registrations.clear()
        await self._drop_conn()

    # -- public requests

    async def ping(self) -> None:
        """Check that a daemon answers; `EpmdUnavailable` if none does."""
        if await self._detect() == NATIVE:
            resp = await self._native(Ping)
            _expect(resp, Pong)
        else:
            await self._erlang_names()

    async def lookup(self, name: str) -> NodeInfo | None:
        """The node registered as `name`, or None."""
        _check_name(name)
        if await self._detect() == NATIVE:
            resp = await self._native(lambda rid: Lookup(rid, name))
            found = _expect(resp, Found).node
            log.debug("EPMD at %s: lookup %s -> %s", self.address, name, _brief(found))
            return found
        result = await self._erlang_port2(name)
        info = None if result is None else self._erlang_info(result)
        log.debug("EPMD at %s: lookup %s -> %s", self.address, name, _brief(info))
        return info

    async def list_nodes(self) -> list[NodeInfo]:
        """Every registered node (newest first, as the daemon lists them).

        Each node's `kind` says whether it is a trioactors or an Erlang node.
        On a real epmd that takes a PORT_PLEASE2 request per name (NAMES
        lists names and ports only); a node gone in between is left out.
        """
        if await self._detect() == NATIVE:
            resp = await self._native(ListNodes)
            nodes = list(_expect(resp, NodeList).nodes)
        else:
            nodes = []
            for name, port in await self._erlang_names():
                try:
                    result = await self._erlang_port2(name)
                except EpmdUnavailable:
                    raise
                except EpmdError as exc:
                    log.debug("EPMD at %s: PORT_PLEASE2 %s failed: %s", self.address, name, exc)
                    result = None
                if result is not None:
                    nodes.append(self._erlang_info(result))
                else:
                    log.debug("EPMD at %s: %s (port %d) left meanwhile", self.address, name, port)
        log.debug("EPMD at %s lists %d node(s)", self.address, len(nodes))
        return nodes

    async def register(
        self,
        name: str,
        host: str,
        port: int,
        *,
        metadata: Mapping[str, str] | None = None,
        protocol_version: int = 1,
        capabilities: Iterable[str] = (),
    ) -> NodeInfo:
        """Register this node as `name` at host:port and keep it registered.

        Returns the stored `NodeInfo` (with the daemon's `creation`). Raises
        `ta.NameTaken` when a live node holds the name. `metadata` is free-form
        text pairs shown by ``trioactors nodes``; an Erlang epmd stores only the
        name and port. Needs ``async with EpmdClient(...) as client``.
        """
        _check_name(name)
        meta = dict(metadata or {})
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
            raise TypeError("EPMD metadata must map text to text (dict[str, str])")
        if self._nursery is None:
            raise EpmdError(
                "register() keeps the registration alive in the background and needs "
                "an owner: use `async with EpmdClient(...) as client:`"
            )
        if name in self._registrations:
            raise NameTaken(name, "this client has registered it already")
        reg = _Registration(
            name, host, port, protocol_version, tuple(capabilities), meta,
            secrets.token_bytes(16), NodeInfo(name, host, port),
        )  # fmt: skip
        log.debug("registering %s at %s:%d with EPMD at %s", name, host, port, self.address)
        if await self._detect() == NATIVE:
            reg.info = await self._native_register(reg)
            self._registrations[name] = reg
            if not self._keepalive_running:
                self._keepalive_running = True
                self._nursery.start_soon(self._keepalive_loop)
        else:
            stream, creation = await self._alive2(reg)
            reg.info = NodeInfo(
                name=name,
                host=host,
                port=port,
                kind=KIND_TRIOACTORS,
                protocol_version=protocol_version,
                capabilities=reg.capabilities,
                metadata=meta,
                creation=creation,
                erlang=_alive2_fields(reg),
            )
            self._registrations[name] = reg
            reg.scope = trio.CancelScope()
            self._nursery.start_soon(self._hold_alive2, reg, stream)
        log.info(
            "registered %s with %s at %s (creation %s)",
            name,
            "the trioactors EPMD" if self._protocol == NATIVE else "Erlang's epmd",
            self.address,
            reg.info.creation,
        )
        return reg.info

    async def unregister(self, name: str) -> None:
        """Remove a registration this client made; unknown names are harmless."""
        reg = self._registrations.pop(name, None)
        if reg is not None and reg.scope is not None:
            reg.scope.cancel()  # Erlang: closing the ALIVE2 connection unregisters
            return
        if await self._detect() == NATIVE:
            resp = await self._native(lambda rid: Unregister(rid, name))
            if isinstance(resp, Refused):
                raise EpmdError(
                    f"EPMD at {self.address} refused to unregister {name!r}: {resp.message}"
                )
            _expect(resp, Unregistered)

    # -- protocol detection

    def _unavailable(self, exc: BaseException | str) -> EpmdUnavailable:
        return EpmdUnavailable(
            f"no EPMD daemon answers at {self.address} ({exc}); start one with "
            f"`trioactors epmd --port {self.port}` or point TRIOACTORS_EPMD/--epmd at a running one"
        )

    async def _open(self) -> trio.SocketStream:
        try:
            with trio.fail_after(self.timeout):
                return await trio.open_tcp_stream(self.host, self.port)
        except (OSError, trio.TooSlowError) as exc:
            raise self._unavailable(exc or "connect timed out") from None

    async def _detect(self) -> str:
        if self._protocol is None:
            async with self._lock:
                if self._protocol is None:
                    await self._connect_native()
        assert self._protocol is not None
        return self._protocol

    async def _connect_native(self) -> _NativeConn | None:
        """Open the native connection (lock held); None when the daemon is Erlang's."""
        stream = await self._open()
        try:
            with trio.fail_after(self.timeout):
                await stream.send_all(encode_preamble())
                buf = b""
                while len(buf) < PREAMBLE_SIZE:
                    data = await stream.receive_some(PREAMBLE_SIZE - len(buf))
                    if not data:
                        raise _Gone("closed")
                    buf += data
            parse_preamble(buf)
        except (_Gone, trio.BrokenResourceError, OSError):
            await stream.aclose()
            if self._protocol == NATIVE:
                raise self._unavailable("the daemon closed the connection") from None
            self._protocol = ERLANG
            log.debug("EPMD at %s is an Erlang epmd", self.address)
            return None
        except (trio.TooSlowError, ProtocolError) as exc:
            await stream.aclose()
            raise EpmdError(
                f"the service at {self.address} does not speak EPMD ({exc or 'no answer'})"
            ) from None
        except BaseException:
            await stream.aclose()
            raise
        self._protocol = NATIVE
        conn = self._conn = _NativeConn(stream)
        # A new connection: take our registrations over at once, so a broken
        # connection costs no registration gap.
        try:
            for reg in list(self._registrations.values()):
                if reg.scope is not None:
                    continue
                resp = await self._exchange(conn, functools.partial(_register_req, reg=reg))
                if isinstance(resp, Registered):
                    reg.info = resp.node
                else:
                    log.warning("could not re-register %s: %s", reg.name, _describe(resp))
        except (_Gone, trio.BrokenResourceError, OSError, trio.TooSlowError) as exc:
            await self._drop_conn()
            raise self._unavailable(exc or "timed out") from None
        except ProtocolError as exc:
            await self._drop_conn()
            raise EpmdError(f"EPMD at {self.address} sent a malformed answer: {exc}") from exc
        return conn

    async def _drop_conn(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            if any(r.scope is None for r in self._registrations.values()):
                # Our registrations went with the connection: register again.
                self._dropped.set()
            await conn.stream.aclose()

    # -- native protocol

    async def _exchange(
        self, conn: _NativeConn, make: Callable[[int], NativeRequest]
    ) -> NativeResponse:
        self._next_id += 1
        rid = self._next_id
        with trio.fail_after(self.timeout):
            await conn.stream.send_all(encode_message(make(rid)))
            return await conn.receive(rid)

    async def _native(self, make: Callable[[int], NativeRequest]) -> NativeResponse:
        async with self._lock:
            for attempt in (1, 2):
                conn = self._conn
                fresh = conn is None
                if conn is None:
                    conn = await self._connect_native()
                    if conn is None:
                        raise EpmdError(
                            f"EPMD at {self.address} stopped speaking the native protocol"
                        )
                try:
                    return await self._exchange(conn, make)
                except (_Gone, trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
                    log.debug("connection to EPMD at %s lost: %s", self.address, exc or "closed")
                    await self._drop_conn()
                    # A reused connection may have been closed by the daemon
                    # (idle timeout, restart): one retry on a fresh one.
                    if fresh or attempt == 2:
                        raise self._unavailable(exc) from None
                except trio.TooSlowError:
                    await self._drop_conn()
                    raise self._unavailable(f"no answer within {self.timeout:g} s") from None
                except ProtocolError as exc:
                    await self._drop_conn()
                    raise EpmdError(
                        f"EPMD at {self.address} sent a malformed answer: {exc}"
                    ) from exc
                except BaseException:
                    # Cancelled mid-request: the stream may hold half a frame.
                    await self._drop_conn()
                    raise
        raise AssertionError("unreachable")

    async def _native_register(self, reg: _Registration) -> NodeInfo:
        resp = await self._native(lambda rid: _register_req(rid, reg))
        if isinstance(resp, Refused):
            if resp.code == "name_taken":
                raise NameTaken(reg.name, resp.message)
            raise EpmdError(
                f"EPMD at {self.address} refused to register {reg.name!r}: {resp.message}"
            )
        return _expect(resp, Registered).node

    async def _keepalive_loop(self) -> None:
        delay = self.keepalive_interval
        failing = False
        while True:
            # Only drops after the last round count: a round's own failures
            # wait for the backoff delay.
            self._dropped = trio.Event()
            with trio.move_on_after(delay):
                await self._dropped.wait()
            names = [n for n, r in self._registrations.items() if r.scope is None]
            if not names:
                continue
            try:
                unknown: list[str] = []
                for batch in _batches(names):
                    # A fresh connection registers everything again first.
                    resp = await self._native(functools.partial(KeepAlive, names=batch))
                    unknown.extend(_expect(resp, Alive).unknown)
                for name in unknown:
                    reg = self._registrations.get(name)
                    if reg is not None:
                        reg.info = await self._native_register(reg)
                        log.info("re-registered %s with EPMD at %s", name, self.address)
            except (EpmdError, NameTaken) as exc:
                # Daemon down or restarting: try again soon, then every
                # interval; one warning per outage, the retries at debug.
                if not failing:
                    log.warning(
                        "EPMD keep-alive failed: %s; retrying until the daemon is back", exc
                    )
                else:
                    log.debug("EPMD keep-alive failed again: %s", exc)
                failing = True
                delay = min(self.keepalive_interval, max(delay / 4, 0.05))
                continue
            if failing:
                log.info("EPMD at %s answers again", self.address)
            failing = False
            delay = self.keepalive_interval

    # -- Erlang protocol

    async def _erlang_exchange(self, request: bytes) -> bytes:
        stream = await self._open()
        try:
            with trio.fail_after(self.timeout):
                await stream.send_all(request)
                chunks = []
                while data := await stream.receive_some(_RECEIVE_SIZE):
                    chunks.append(data)
            return b"".join(chunks)
        except trio.TooSlowError:
            raise self._unavailable(f"no answer within {self.timeout:g} s") from None
        except (trio.BrokenResourceError, OSError) as exc:
            raise self._unavailable(exc) from None
        finally:
            await stream.aclose()

    async def _erlang_port2(self, name: str) -> Port2Result | None:
        data = await self._erlang_exchange(encode_port2_req(name))
        try:
            return parse_port2_resp(data)
        except ProtocolError as exc:
            raise EpmdError(f"EPMD at {self.address} answered PORT_PLEASE2 badly: {exc}") from exc

    def _erlang_info(self, result: Port2Result) -> NodeInfo:
        # The extra field tells a trioactors node from an Erlang one; the host
        # is epmd's own (it registers local nodes only).
        version = parse_trioactors_extra(result.fields.extra)
        node = parse_trioactors_node(result.fields.extra)
        return NodeInfo(
            name=result.name,
            host=self.host,
            port=result.port,
            kind=KIND_ERLANG if version is None else KIND_TRIOACTORS,
            protocol_version=0 if version is None else version,
            metadata={} if node is None else {"node": node},
            erlang=result.fields,
        )

    async def _erlang_names(self) -> list[tuple[str, int]]:
        data = await self._erlang_exchange(encode_request(bytes((NAMES_REQ,))))
        try:
            return parse_names_resp(data)[1]
        except ProtocolError as exc:
            raise EpmdError(f"EPMD at {self.address} answered NAMES badly: {exc}") from exc

    async def _alive2(self, reg: _Registration) -> tuple[trio.SocketStream, int]:
        stream = await self._open()
        try:
            with trio.fail_after(self.timeout):
                await stream.send_all(encode_alive2_req(reg.name, reg.port, _alive2_fields(reg)))
                buf = b""
                while (parsed := parse_alive2_resp(buf)) is None:
                    data = await stream.receive_some(64)
                    if not data:
                        raise _Gone("the daemon closed the connection")
                    buf += data
        except (_Gone, trio.BrokenResourceError, OSError, trio.TooSlowError) as exc:
            await stream.aclose()
            raise self._unavailable(exc or "timed out") from None
        except ProtocolError as exc:
            await stream.aclose()
            raise EpmdError(f"EPMD at {self.address} answered ALIVE2 badly: {exc}") from None
        except BaseException:
            await stream.aclose()
            raise
        ok, creation = parsed
        if not ok:
            await stream.aclose()
            raise NameTaken(reg.name, f"EPMD at {self.address} refused it (taken or invalid)")
        return stream, creation

    async def _hold_alive2(self, reg: _Registration, stream: trio.SocketStream) -> None:
        # The registration lives as long as this connection; when epmd goes
        # away, register again as soon as one answers.
        assert reg.scope is not None
        with reg.scope:
            while True:
                try:
                    async with stream:
                        await stream.receive_some(1)
                except (trio.BrokenResourceError, OSError) as exc:
                    log.debug("ALIVE2 connection to EPMD at %s lost: %s", self.address, exc)
                log.warning(
                    "EPMD at %s dropped the registration of %s; registering again as soon "
                    "as it answers",
                    self.address,
                    reg.name,
                )
                while True:
                    await trio.sleep(min(self.keepalive_interval, 1.0))
                    try:
                        stream, creation = await self._alive2(reg)
                    except (EpmdError, NameTaken) as exc:
                        log.debug("re-registering %s: %s", reg.name, exc)
                        continue
                    reg.info = attrs.evolve(reg.info, creation=creation)
                    log.info("re-registered %s with EPMD at %s", reg.name, self.address)
                    break
        with contextlib.suppress(Exception):
            await stream.aclose()


def _batches(names: list[str]) -> Iterator[tuple[str, ...]]:
    # KeepAlive frames stay well under the daemon's request size limit.
    batch: list[str] = []
    size = 0
    for name in names:
        n = len(name.encode("utf-8")) + 3
        if batch and (size + n > _KEEPALIVE_BATCH_BYTES or len(batch) >= 1000):
            yield tuple(batch)
            batch, size = [], 0
        batch.append(name)
        size += n
    if batch:
        yield tuple(batch)


def _alive2_fields(reg: _Registration) -> ErlangNodeFields:
    # A hidden node (Erlang nodes must not try to connect over their own
    # distribution protocol), marked as trioactors for other trioactors nodes.
    return ErlangNodeFields(extra=trioactors_extra(reg.protocol_version, reg.metadata.get("node")))


def _brief(info: NodeInfo | None) -> str:
    if info is None:
        return "not registered"
    return f"{info.kind} node at {info.host}:{info.port}"


def _register_req(rid: int, reg: _Registration) -> Register:
    return Register(
        rid, reg.name, reg.host, reg.port, reg.protocol_version,
        reg.capabilities, reg.metadata, reg.token,
    )  # fmt: skip


def _check_name(name: str) -> None:
    if not isinstance(name, str) or valid_node_name(name.encode("utf-8", "replace")) != name:
        raise ValueError(f"invalid node name {name!r}: 1..255 characters of UTF-8 without NUL")


def _describe(resp: NativeResponse) -> str:
    return resp.message if isinstance(resp, Refused) else type(resp).__name__


_T = TypeVar("_T")


def _expect(resp: NativeResponse, cls: type[_T]) -> _T:
    if isinstance(resp, cls):
        return resp
    raise EpmdError(f"unexpected EPMD answer: {_describe(resp)}")
