"""Erlang nodes as peers: Erlang's distribution protocol on a node's connections.

A node with a full name (``py@host``) is a hidden node of an Erlang cluster.
An Erlang node that dials it is recognised by its first bytes
(`trioactors.wire.sniff`) and gets Erlang's handshake (version 6, MD5 cookie
challenge, `trioactors.wire.erldist_handshake`); a peer named ``name@host``
that EPMD lists as an Erlang registration is dialled the same way. Other
trioactors nodes keep the CBOR protocol.

On an Erlang connection the node's signals become control messages
(`trioactors.wire.erldist_control`) and messages Erlang terms
(`trioactors.wire.etf`, with ``binaries_as_str``). The mapping on top of the
codec's, both ways, at the top level of a message:

==========================================  =======================================
Python                                      Erlang
==========================================  =======================================
``("$gen_call", (pid, ref), request)``      ``{'$gen_call', {Pid, [alias|Ref]}, Request}``
                                            (OTP 25's alias tag, both ways; a plain
                                            ref tag arrives as ``ref`` too). Replies
                                            go to the alias, as ``gen:reply`` does,
                                            so a late one is dropped
``("$gen_cast", request)``                  ``{'$gen_cast', Request}``
``ta.Down(ref, pid, reason)``               ``{'DOWN', Ref, process, Pid, Reason}``
``ta.Exit(pid, reason)``                    ``{'EXIT', Pid, Reason}``
==========================================  =======================================

Exit and down reasons: a ``str`` travels as an atom (``"normal"`` is
``normal``), so is the first element of a tuple (``("shutdown", x)`` is
``{shutdown, X}``); a `ta.Crash` is ``{python_exception, Type, Message}``
(binaries). Received reasons map back the same way (atoms to ``str``).

Erlang's own servers a node answers as: ``net_kernel`` (``net_adm:ping``
gets ``pong``) and ``rex`` (``rpc:call(Node, M, F, A)`` runs the function
registered with ``node.register_rpc("M:F", fn)``, nothing else).
"""

from __future__ import annotations

import inspect
import logging
import ssl
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

import attrs
import trio

from ..epmd import EpmdClient
from ..epmd.resolve import find_node
from ..errors import ConnectionFailed, NotSerializable, ProtocolError, TrioActorsError
from ..otp.gen_server import Caller, GenServer
from ..runtime.messages import GEN_CALL, GEN_CAST, Crash, Down, Exit
from ..runtime.process import _classify
from ..runtime.router import RemoteName
from ..wire import erldist_control as c
from ..wire.epmd_native import KIND_ERLANG
from ..wire.erldist_framing import encode_packet
from ..wire.erldist_handshake import (
    DEFAULT_FLAGS,
    DistFlags,
    ErlDistHandshake,
    Established,
    PeerInfo,
    Refused,
    Status,
    simultaneous_status,
)
from ..wire.etf import Atom, EtfCodec, ImproperList
from ..wire.handshake import Role
from ..wire.terms import Pid, Ref
from .connection import send_best_effort

if TYPE_CHECKING:
    from ..otp.system import Context
    from .kernel import NetKernel
    from .peers import Peer
    from .rpc import RpcFunctions

__all__ = [
    "ERLANG_FLAGS",
    "ErlangLink",
    "ErlangNetKernel",
    "ErlangPeers",
    "erlang_group_leader",
    "from_erlang",
    "to_erlang",
]

log = logging.getLogger("trioactors.cluster")

#: What a node advertises to Erlang: OTP 25's mandatory flags, OTP 26's
#: V4_NC and UNLINK_ID, monitors by pid and name, aliases (gen_server's
#: replies), spawn requests (erpc, so rpc:call); no PUBLISHED (a hidden
#: node), no atom cache or fragments.
ERLANG_FLAGS: Final = int(
    DEFAULT_FLAGS
    | DistFlags.DIST_MONITOR
    | DistFlags.DIST_MONITOR_NAME
    | DistFlags.ALIAS
    | DistFlags.SPAWN
)
#: The registered names of Erlang's servers a node answers itself.
NET_KERNEL: Final = "net_kernel"
REX: Final = "rex"
#: Alias tags remembered per connection for replies (a bound: a caller whose
#: server never answers must not grow the table forever).
_MAX_ALIASES: Final = 65536

_GEN_CALL: Final = Atom("$gen_call")
_GEN_CAST: Final = Atom("$gen_cast")
_DOWN: Final = Atom("DOWN")
_EXIT: Final = Atom("EXIT")
_PROCESS: Final = Atom("process")
_ALIAS: Final = Atom("alias")
_YES: Final = Atom("yes")
_LINK: Final = Atom("link")
_MONITOR: Final = Atom("monitor")
_BADRPC: Final = Atom("badrpc")


# --------------------------------------------------------------------------- mapping


def reason_to_erlang(reason: Any) -> Any:
    """An exit or down reason as Erlang expects it (see the module docstring)."""
    if type(reason) is str:
        try:
            return Atom(reason)
        except (TypeError, ValueError):
            return reason
    if type(reason) is tuple and reason and type(reason[0]) is str:
        return (reason_to_erlang(reason[0]), *reason[1:])
    if isinstance(reason, Crash):
        return (Atom("python_exception"), reason.type, reason.message)
    return reason


def reason_from_erlang(reason: Any) -> Any:
    """An Erlang exit or down reason as trioactors shows reasons (atoms as str)."""
    if type(reason) is Atom:
        return reason.name
    if type(reason) is tuple and reason and type(reason[0]) is Atom:
        return (reason[0].name, *reason[1:])
    return reason


def to_erlang(msg: Any) -> Any:
    """A Python message as the Erlang term it stands for (module docstring)."""
    t = type(msg)
    if t is tuple and msg:
        head = msg[0]
        if head == GEN_CALL and len(msg) == 3 and type(head) is str:
            return (_GEN_CALL, msg[1], msg[2])
        if head == GEN_CAST and len(msg) == 2 and type(head) is str:
            return (_GEN_CAST, msg[1])
        return msg
    if t is Down:
        target = msg.pid
        if type(target) is tuple:
            target = (Atom(target[0]), Atom(target[1]))
        return (_DOWN, msg.ref, _PROCESS, target, reason_to_erlang(msg.reason))
    if t is Exit:
        return (_EXIT, msg.pid, reason_to_erlang(msg.reason))
    return msg


def _call_tag(tag: Any) -> tuple[Ref, bool] | None:
    """(ref, is_alias) of a gen_server call tag: a ref, or OTP 25's ``[alias|Ref]``."""
    if type(tag) is Ref:
        return tag, False
    if (
        type(tag) is ImproperList
        and len(tag.items) == 1
        and tag.items[0] == _ALIAS
        and type(tag.tail) is Ref
    ):
        return tag.tail, True
    return None


def from_erlang(msg: Any, aliases: dict[Ref, None] | None = None) -> Any:
    """An Erlang message as Python sees it (module docstring); the alias
    refs of calls go into `aliases`."""
    if type(msg) is not tuple or not msg:
        return msg
    head = msg[0]
    n = len(msg)
    if head == _GEN_CALL and n == 3:
        who = msg[1]
        if type(who) is tuple and len(who) == 2 and type(who[0]) is Pid:
            tagged = _call_tag(who[1])
            if tagged is not None:
                ref, alias = tagged
                if alias and aliases is not None:
                    if len(aliases) >= _MAX_ALIASES:
                        del aliases[next(iter(aliases))]
                    aliases[ref] = None
                return (GEN_CALL, (who[0], ref), msg[2])
    elif n == 2 and type(head) is ImproperList:
        # A reply sent by hand to the pid of one of our calls, `From ! {Tag, R}`.
        tagged = _call_tag(head)
        if tagged is not None:
            return (tagged[0], msg[1])
    elif head == _GEN_CAST and n == 2:
        return (GEN_CAST, msg[1])
    elif head == _DOWN and n == 5 and type(msg[1]) is Ref and msg[2] == _PROCESS:
        target = msg[3]
        if type(target) is tuple and len(target) == 2 and all(type(x) is Atom for x in target):
            target = (target[0].name, target[1].name)
        return Down(msg[1], target, reason_from_erlang(msg[4]))
    elif head == _EXIT and n == 3 and type(msg[1]) is Pid:
        return Exit(msg[1], reason_from_erlang(msg[2]))
    return msg


# --------------------------------------------------------------------------- per connection


class ErlangLink:
    """What one node keeps about one Erlang peer across its connections."""

    __slots__ = ("aliases", "calls", "unlink_id")

    def __init__(self) -> None:
        #: Refs of calls that came with an alias tag, awaiting their reply.
        self.aliases: dict[Ref, None] = {}
        #: Our calls into the peer, by the alias their tag names: the caller.
        self.calls: dict[Ref, Pid] = {}
        self.unlink_id = 0

    def outgoing(self, msg: Any) -> Any:
        """`msg` to send, a call with OTP 25's alias tag ``[alias|Ref]``: the
        server answers through the alias, and a late answer (the call has
        ended) is dropped rather than left in the caller's mailbox."""
        if type(msg) is tuple and len(msg) == 3 and msg[0] == GEN_CALL and type(msg[0]) is str:
            who = msg[1]
            if type(who) is tuple and len(who) == 2 and type(who[1]) is Ref:
                calls = self.calls
                if len(calls) >= _MAX_ALIASES:
                    del calls[next(iter(calls))]
                calls[who[1]] = who[0]
                return (_GEN_CALL, (who[0], ImproperList((_ALIAS,), who[1])), msg[2])
        return msg

    def next_unlink_id(self) -> int:
        """A fresh id for UNLINK_ID (64-bit, never 0)."""
        self.unlink_id = self.unlink_id % (2**64 - 1) + 1
        return self.unlink_id


# --------------------------------------------------------------------------- the peers


class ErlangPeers:
    """Erlang connections of one node (see the module docstring)."""

    def __init__(self, kernel: NetKernel, *, cookie: bytes, epmd_port: int = 4369) -> None:
        self.kernel = kernel
        self.system = kernel.system
        self.name = kernel.name
        self.epmd_port = epmd_port
        self.codec = EtfCodec(binaries_as_str=True, max_size=kernel.max_frame_size)
        self.rpc_functions: RpcFunctions | None = None
        self._cookie = cookie
        # The control part of sends (pass-through byte and control term) by
        # addressee: actors send to the same few pids and names over and over.
        self._heads: dict[Pid | str, bytes] = {}
        #: The group leader our rpc calls into Erlang name (`erlang_group_leader`).
        self.group_leader: Pid | None = None

    # -- frames

    def _message(self, key: Pid | str, record: c.Send | c.RegSend, message: Any) -> bytes:
        head = self._heads.get(key)
        if head is None:
            head = c.encode_control(record, self.codec, b"")
            if len(self._heads) >= 4096:
                self._heads.clear()
            self._heads[key] = head
        body = head + self.codec.encode(to_erlang(message))
        if len(body) > self.kernel.max_frame_size:
            raise NotSerializable(
                f"message of {len(body)} bytes exceeds max_frame_size "
                f"({self.kernel.max_frame_size}); send it in parts or raise the limit"
            )
        return encode_packet(body)

    def _packet(self, record: c.Control, message: Any = None) -> bytes:
        codec = self.codec
        if isinstance(record, c.Send | c.RegSend | c.AliasSend):
            payload = codec.encode(to_erlang(message))
            body = c.encode_control(record, codec, payload)
        else:
            body = c.encode_control(record, codec)
        if len(body) > self.kernel.max_frame_size:
            raise NotSerializable(
                f"message of {len(body)} bytes exceeds max_frame_size "
                f"({self.kernel.max_frame_size}); send it in parts or raise the limit"
            )
        return encode_packet(body)

    def _signal(self, peer: Peer, record: c.Control) -> None:
        try:
            frame = self._packet(record)
        except NotSerializable:
            # A reason Erlang cannot hold: its repr, as a binary.
            reason = getattr(record, "reason", None)
            changed: c.Control = attrs.evolve(record, reason=repr(reason))  # type: ignore[arg-type]
            frame = self._packet(changed)
        self.kernel.to_peer(peer, frame)

    def link_of(self, peer: Peer) -> ErlangLink:
        """The Erlang state of `peer` (made on first use)."""
        if peer.erlang is None:
            peer.erlang = ErlangLink()
        return peer.erlang

    # -- Router, for pids and names of Erlang nodes

    def send(self, peer: Peer, to: Pid, msg: Any) -> None:
        """`msg` for Erlang pid `to`."""
        msg = self.link_of(peer).outgoing(msg)
        self.kernel.to_peer(peer, self._message(to, c.Send(to, None), msg))

    def send_named(self, peer: Peer, name: str, msg: Any) -> None:
        """`msg` for the process registered as `name` on Erlang node `peer`."""
        msg = self.link_of(peer).outgoing(msg)
        frame = self._message(name, c.RegSend(self.system.pid, name, None), msg)
        self.kernel.to_peer(peer, frame)

    def reply(self, peer: Peer, to: Pid, ref: Ref, value: Any) -> None:
        """The reply to call `ref` of Erlang caller `to`, as gen:reply sends it."""
        aliases = self.link_of(peer).aliases
        if ref in aliases:
            del aliases[ref]
            tag = ImproperList((_ALIAS,), ref)
            frame = self._packet(c.AliasSend(self.system.pid, ref, None), (tag, value))
        else:
            frame = self._packet(c.Send(to, None), (ref, value))
        self.kernel.to_peer(peer, frame)

    def link(self, peer: Peer, local: Pid, remote: Pid) -> None:
        """LINK."""
        self._signal(peer, c.Link(local, remote))

    def unlink(self, peer: Peer, local: Pid, remote: Pid) -> None:
        """UNLINK_ID (the peer acknowledges)."""
        self._signal(peer, c.UnlinkId(self.link_of(peer).next_unlink_id(), local, remote))

    def exit(self, peer: Peer, sender: Pid, remote: Pid, reason: Any, *, link: bool) -> None:
        """EXIT (a linked process died) or EXIT2 (``exit/2``)."""
        why = reason_to_erlang(reason)
        self._signal(peer, c.Exit(sender, remote, why) if link else c.Exit2(sender, remote, why))

    def down(
        self, peer: Peer, watcher: Pid, ref: Ref, target: Pid | RemoteName, reason: Any
    ) -> None:
        """MONITOR_P_EXIT: a local process an Erlang process monitored ended."""
        proc: Pid | str = target if isinstance(target, Pid) else target[0]
        self._signal(peer, c.MonitorPExit(proc, watcher, ref, reason_to_erlang(reason)))

    def monitor(self, peer: Peer, watcher: Pid, ref: Ref, target: Pid | RemoteName) -> None:
        """MONITOR_P, by pid or by registered name."""
        proc: Pid | str = target if isinstance(target, Pid) else target[0]
        self._signal(peer, c.MonitorP(watcher, proc, ref))

    def demonitor(self, peer: Peer, watcher: Pid, ref: Ref, target: Pid | RemoteName) -> None:
        """DEMONITOR_P."""
        proc: Pid | str = target if isinstance(target, Pid) else target[0]
        self._signal(peer, c.DemonitorP(watcher, proc, ref))

    # -- inbound

    def dispatcher(self, peer: Peer) -> Callable[[bytes], None]:
        """The `on_frame` of a connection to Erlang node `peer`."""
        codec = self.codec
        system = self.system
        peer_name = peer.name
        link = self.link_of(peer)
        aliases = link.aliases
        decode = c.decode_control

        def own(pid: Pid) -> Pid:
            if pid.node != peer_name:
                raise ProtocolError(f"Erlang node {peer_name!r} sent a signal on behalf of {pid}")
            return pid

        def on_frame(body: bytes) -> None:
            rec = decode(body, codec)
            kind = type(rec)
            if kind is c.Send:
                assert isinstance(rec, c.Send)
                system.deliver(rec.target, from_erlang(rec.message, aliases))
            elif kind is c.RegSend:
                assert isinstance(rec, c.RegSend)
                msg = from_erlang(rec.message, aliases)
                if not self._builtin(peer, rec.name, msg):
                    system.deliver_named(rec.name, msg)
            elif kind is c.AliasSend:
                assert isinstance(rec, c.AliasSend)
                self._alias_send(link, rec)
            elif kind is c.Link:
                assert isinstance(rec, c.Link)
                system.remote_link(rec.target, own(rec.sender))
            elif kind is c.UnlinkId:
                assert isinstance(rec, c.UnlinkId)
                system.remote_unlink(rec.target, own(rec.sender))
                self._signal(peer, c.UnlinkIdAck(rec.id, rec.target, rec.sender))
            elif kind is c.UnlinkIdAck:
                pass  # our unlink is complete; nothing waits for it
            elif kind is c.Exit or kind is c.Exit2:
                assert isinstance(rec, c.Exit | c.Exit2)
                system.remote_exit(
                    own(rec.sender),
                    rec.target,
                    reason_from_erlang(rec.reason),
                    link=kind is c.Exit,
                )
            elif kind is c.MonitorP:
                assert isinstance(rec, c.MonitorP)
                system.remote_monitor(own(rec.watcher), rec.ref, rec.target)
            elif kind is c.DemonitorP:
                assert isinstance(rec, c.DemonitorP)
                system.remote_demonitor(rec.ref)
            elif kind is c.MonitorPExit:
                assert isinstance(rec, c.MonitorPExit)
                target: Pid | RemoteName = (
                    own(rec.target) if isinstance(rec.target, Pid) else (rec.target, peer_name)
                )
                system.remote_down(rec.watcher, rec.ref, target, reason_from_erlang(rec.reason))
            elif kind is c.SpawnRequest:
                assert isinstance(rec, c.SpawnRequest)
                own(rec.sender)
                self._spawn_request(peer, rec)
            elif kind is c.SpawnReply:
                # We never send SPAWN_REQUEST, so there is nothing to answer.
                raise ProtocolError("SPAWN_REPLY for a request this node never made")
            else:  # pragma: no cover - decode_control yields only the kinds above
                raise ProtocolError(f"unexpected control message {kind.__name__}")

        return on_frame

    def _spawn_request(self, peer: Peer, rec: c.SpawnRequest) -> None:
        """erpc's requests (what rpc:call and rpc:cast send): a process that
        runs the function registered as ``"M:F"`` and exits with erpc's
        result, so the caller's monitor brings it back. Any other spawn is
        refused with ``notsup``: no code named by a peer is ever run."""
        what = (rec.module.name, rec.function.name, rec.arity)
        job: tuple[Any, ...] | None = None
        if what == ("erpc", "execute_call", 4) and len(rec.args) == 4:
            job = tuple(rec.args)
        elif what == ("erpc", "execute_cast", 3) and len(rec.args) == 3:
            job = (None, *rec.args)
        if job is None or not (type(job[1]) is Atom and type(job[2]) is Atom):
            log.info(
                "Erlang node %r asked to spawn %s:%s/%d; only erpc calls of registered "
                "functions are served (answered notsup)",
                peer.name,
                *what,
            )
            self._signal(peer, c.SpawnReply(rec.req_id, rec.sender, 0, Atom("notsup")))
            return
        res, module, function, args = job
        pid = self.system.spawn(_erpc_process, self, module, function, args, res)
        flags = 0
        for option in rec.options:
            if option == _LINK:
                self.system.remote_link(pid, rec.sender)
                flags |= 1
            elif option == _MONITOR or (type(option) is tuple and option and option[0] == _MONITOR):
                self.system.remote_monitor(rec.sender, rec.req_id, pid)
                flags |= 2
        self._signal(peer, c.SpawnReply(rec.req_id, rec.sender, flags, pid))

    def _alias_send(self, link: ErlangLink, rec: c.AliasSend) -> None:
        """A reply to one of our calls, sent to its alias: handed to the call
        if it still waits, else dropped (an inactive alias)."""
        caller = link.calls.pop(rec.alias, None)
        msg = rec.message
        if caller is not None and type(msg) is tuple and len(msg) == 2:
            self.system.deliver_reply(caller, rec.alias, msg[1])
        else:
            log.debug("dropping a message to alias %s (no such active alias)", rec.alias)

    def _builtin(self, peer: Peer, name: str, msg: Any) -> bool:
        """Answer the requests Erlang's own servers would (True if handled)."""
        if type(msg) is not tuple or len(msg) != 3 or msg[0] != GEN_CALL:
            return False
        caller, request = msg[1], msg[2]
        if name == REX and type(request) is tuple and len(request) == 5:
            if request[0] == Atom("call") and self.rpc_functions is not None:
                self.kernel.start_soon(self._rpc, peer, caller, request)
                return True
        return False

    async def _rpc(self, peer: Peer, caller: tuple[Pid, Ref], request: tuple[Any, ...]) -> None:
        _, module, function, args, _group_leader = request
        mf = f"{module}:{function}"
        functions = self.rpc_functions
        fn = functions.get(mf) if functions is not None else None
        if fn is None or type(args) is not list:
            arity = len(args) if type(args) is list else 0
            # What Erlang answers for a function that does not exist.
            value: Any = (
                _BADRPC,
                (_EXIT, (Atom("undef"), [(module, function, args if arity else [], [])])),
            )
        else:
            try:
                result = fn(*args)
                if inspect.isawaitable(result):
                    result = await result
                value = result
            except Exception as exc:
                reason, _ = _classify(exc)
                value = (_BADRPC, (_EXIT, reason_to_erlang(reason)))
        try:
            self.reply(peer, caller[0], caller[1], value)
        except NotSerializable as exc:
            log.warning("rpc %s from %s: the result cannot go to Erlang: %s", mf, peer.name, exc)
            self.reply(peer, caller[0], caller[1], (_BADRPC, (_EXIT, repr(value)[:200])))

    # -- connections

    def _decide(self, info: PeerInfo, claimed: list[Peer]) -> Status:
        kernel = self.kernel
        if kernel.closing:
            return Status.NOT_ALLOWED
        peer = kernel.peers.ensure(info.name)
        if peer.accepting:
            return Status.NOK
        status = simultaneous_status(
            self.name,
            info.name,
            pending_outgoing=peer.attempt is not None and peer.conn is None,
            connected=peer.conn is not None,
        )
        if status is not Status.NOK:
            peer.accepting = True
            claimed.append(peer)
        return status

    async def handle_incoming(self, stream: trio.abc.Stream, first: bytes, where: str) -> None:
        """Serve a connection whose first bytes are an Erlang send_name."""
        claimed: list[Peer] = []
        machine = ErlDistHandshake(
            Role.ACCEPT,
            name=self.name,
            cookie=self._cookie,
            creation=self.kernel.creation,
            flags=ERLANG_FLAGS,
            decide=lambda info: self._decide(info, claimed),
        )
        try:
            with trio.fail_after(self.kernel.connect_timeout):
                outcome = await _drive(stream, machine, first)
        except (TrioActorsError, OSError, trio.BrokenResourceError, trio.TooSlowError) as exc:
            log.warning("refused Erlang node connection from %s: %s", where, str(exc) or repr(exc))
            await trio.aclose_forcefully(stream)
            self.kernel._unclaim(claimed)
            return
        if isinstance(outcome, Refused):
            log.debug("declined Erlang node connection from %s: %s", where, outcome.status)
            await trio.aclose_forcefully(stream)
            self.kernel._unclaim(claimed)
            return
        await self.attach(claimed[0], stream, machine, outcome)

    async def attach(
        self, peer: Peer, stream: trio.abc.Stream, machine: ErlDistHandshake, est: Established
    ) -> None:
        """Run an established Erlang connection until it ends."""
        peer.kind = "erlang"
        log.info(
            "connected to Erlang node %r (%s)",
            peer.name,
            "hidden" if est.peer.hidden else "visible",
        )
        await self.kernel._attach(
            peer,
            stream,
            machine.trailing_data(),
            est.peer.creation,
            on_frame=self.dispatcher(peer),
            answer_ticks=True,
        )

    def rpc_request(self, module: str, function: str, args: list[Any]) -> tuple[Any, ...]:
        """What Erlang's rex server takes for ``rpc:call(Node, M, F, A)``."""
        if self.group_leader is None:
            raise RuntimeError("the node has not started its Erlang group leader")
        return (Atom("call"), Atom(module), Atom(function), args, self.group_leader)

    async def lookup(self, name: str) -> tuple[str, int, bool] | None:
        """(host, port, is_erlang) of node ``alive@host``: asked of the node's
        own EPMD, then of the EPMD of `host` (`trioactors.epmd.resolve`)."""
        discovery = self.kernel.discovery
        if discovery is not None:
            found = await find_node(name, discovery.query)
        else:
            host = name.partition("@")[2]
            client = EpmdClient(host, self.epmd_port, timeout=self.kernel.connect_timeout)
            try:
                found = await find_node(name, client)
            finally:
                await client.aclose()
        if found is None:
            return None
        return *found.address, found.info.kind == KIND_ERLANG

    async def dial(
        self, host: str, port: int, expected: str
    ) -> tuple[trio.abc.Stream, ErlDistHandshake, Established | Refused]:
        """Connect to the Erlang node `expected` at host:port and shake hands."""
        try:
            stream: trio.abc.Stream = await trio.open_tcp_stream(host, port)
        except OSError as exc:
            raise ConnectionFailed(
                f"cannot reach Erlang node {expected!r} at {host}:{port}: {exc.strerror or exc}"
            ) from exc
        peer = self.kernel.peers.get(expected)
        machine = ErlDistHandshake(
            Role.CONNECT,
            name=self.name,
            cookie=self._cookie,
            creation=self.kernel.creation,
            flags=ERLANG_FLAGS,
            expected_peer=expected,
            still_pending=lambda: peer is None or peer.conn is None,
        )
        try:
            outcome = await _drive(stream, machine, b"")
        except BaseException:
            await trio.aclose_forcefully(stream)
            raise
        return stream, machine, outcome


async def _drive(
    stream: trio.abc.Stream, machine: ErlDistHandshake, first: bytes
) -> Established | Refused:
    """Run `machine` over `stream` until it ends; `first` are bytes already read."""
    pending = first
    try:
        while True:
            out = machine.data_to_send()
            if out:
                await stream.send_all(out)
            if pending:
                data: bytes | bytearray = pending
                pending = b""
            else:
                data = await stream.receive_some(4096)
            if not data:
                machine.connection_lost()
                raise ConnectionFailed("the Erlang node closed the connection during the handshake")
            for event in machine.receive_data(bytes(data)):
                if isinstance(event, Established | Refused):
                    out = machine.data_to_send()
                    if out:
                        await stream.send_all(out)
                    return event
    except (TrioActorsError, ssl.SSLError):
        await send_best_effort(stream, machine.data_to_send())
        raise


async def _erpc_process(
    ctx: Context, peers: ErlangPeers, module: Atom, function: Atom, args: Any, res: Ref | None
) -> None:
    """erpc:execute_call/4 (execute_cast/3 when `res` is None) of a registered
    function: the exit reason is erpc's result, which the caller's monitor
    delivers."""
    name = f"{module.name}:{function.name}"
    functions = peers.rpc_functions
    fn = functions.get(name) if functions is not None else None
    if fn is None or type(args) is not list:
        # What erpc reports for a function that does not exist.
        reason: Any = (res, Atom("error"), Atom("undef"), [(module, function, args, [])])
    else:
        try:
            value = fn(*args)
            if inspect.isawaitable(value):
                value = await value
        except Exception as exc:
            why, _ = _classify(exc)
            reason = (res, Atom("error"), reason_to_erlang(why), [])
        else:
            reason = (res, Atom("return"), value)
    if res is None:
        return
    ctx.exit(reason)


async def erlang_group_leader(ctx: Context) -> None:
    """The group leader of the processes our rpc calls start on Erlang nodes:
    it answers every io request ``ok`` and logs what they print."""
    while True:
        msg = await ctx.receive()
        if type(msg) is tuple and len(msg) == 4 and msg[0] == Atom("io_request"):
            _, sender, reply_as, request = msg
            log.debug("output of an rpc on an Erlang node: %r", request)
            if type(sender) is Pid:
                ctx.send(sender, (Atom("io_reply"), reply_as, Atom("ok")))


class ErlangNetKernel(GenServer):
    """Answers what Erlang's ``net_kernel`` is asked by a peer:
    ``net_adm:ping`` (``{is_auth, Node}``) gets ``yes``."""

    async def handle_call(self, request: Any, caller: Caller) -> Any:
        """``{is_auth, Node}`` -> ``yes``; anything else -> ``{error, notsup}``."""
        if type(request) is tuple and len(request) == 2 and request[0] == Atom("is_auth"):
            return _YES
        return (Atom("error"), Atom("notsup"))

    async def handle_info(self, msg: Any) -> None:
        """Other messages are dropped, as net_kernel drops what it does not know."""
