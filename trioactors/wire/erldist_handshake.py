"""Erlang's distribution handshake (version 6, OTP 23+) as a sans-IO state machine.

This is how two Erlang nodes set up a connection, so a trioactors node can
sit in a real Erlang cluster. It follows OTP 25's "Distribution Protocol"
chapter and `dist_util.erl`. Feed it the peer's bytes with `receive_data`,
write out `data_to_send()`, and read the events it returns. It does no IO and
keeps no clock; the shell owns the socket and the setup timeout (OTP's
`net_setuptime`, 7 s by default).

Every handshake message goes behind a 2-byte big-endian length::

    initiator (A)                                   acceptor (B)
      send_name  'N' flags:8 creation:4 nlen:2 name  ->
                 <- send_status 's' "ok" | "ok_simultaneous" | "nok"
                                | "not_allowed" | "alive" | "named:" ...
      ("alive" only: A answers 's' "true" | "false")  ->
                 <- challenge 'N' flags:8 challenge:4 creation:4 nlen:2 name
      challenge_reply 'r' challenge_A:4 digest_B:16   ->
                 <- challenge_ack 'a' digest_A:16

A peer from OTP 23/24 that found only version 5 in EPMD opens with the old
send_name ``'n' version:2 flags:4 name``. If it sets `HANDSHAKE_23`, B still
sends the new challenge and A adds a complement ``'c' flags_high:4
creation:4`` just before its reply. A peer without `HANDSHAKE_23` is older
than OTP 23, and OTP 25 refuses it. So do we.

A digest is ``md5(cookie ++ integer_to_list(Challenge))``: the MD5 of the
cookie followed by the other side's 32-bit challenge written in decimal. The
cookie never crosses the wire. Like OTP, an acceptor that gets a wrong digest
just closes the connection. An initiator therefore sees a wrong cookie as the
connection closing after its challenge reply: the shell reports that by
calling `connection_lost()`, which raises `AuthenticationFailed`.

After `Established`, traffic uses 4-byte length packets (see
`trioactors.wire.erldist_framing`). `trailing_data()` hands over any bytes
of it that came in with the last handshake message.

Failures are raised from `receive_data` and `connection_lost`. Any status
message the peer should still get is queued first, so the shell sends
`data_to_send()` on a best-effort basis and then closes. The errors are:
`ProtocolError` for malformed bytes, `ConnectionFailed` when the peer is
refused or refuses us, and `AuthenticationFailed` for a cookie mismatch.
"""

from __future__ import annotations

import enum
import hmac
import secrets
import struct
from collections.abc import Callable
from hashlib import md5
from typing import Final

import attrs

from ..errors import AuthenticationFailed, ConnectionFailed, ProtocolError
from .handshake import Role

__all__ = [
    "DEFAULT_FLAGS",
    "HANDSHAKE_VERSION",
    "MAX_NODE_NAME",
    "REQUIRED_FLAGS",
    "DistFlags",
    "ErlDistHandshake",
    "Established",
    "Named",
    "PeerInfo",
    "Refused",
    "Role",
    "Status",
    "digest",
    "simultaneous_status",
]

#: The handshake version this module speaks (OTP 23+; the only one in OTP 25).
HANDSHAKE_VERSION: Final = 6
#: Erlang atoms, and so node names, hold at most 255 characters.
MAX_NODE_NAME: Final = 255


class DistFlags(enum.IntFlag):
    """Capability flags of the distribution protocol (OTP's `dist.hrl`)."""

    PUBLISHED = 0x1
    ATOM_CACHE = 0x2
    EXTENDED_REFERENCES = 0x4
    DIST_MONITOR = 0x8
    FUN_TAGS = 0x10
    DIST_MONITOR_NAME = 0x20
    HIDDEN_ATOM_CACHE = 0x40
    NEW_FUN_TAGS = 0x80
    EXTENDED_PIDS_PORTS = 0x100
    EXPORT_PTR_TAG = 0x200
    BIT_BINARIES = 0x400
    NEW_FLOATS = 0x800
    UNICODE_IO = 0x1000
    DIST_HDR_ATOM_CACHE = 0x2000
    SMALL_ATOM_TAGS = 0x4000
    UTF8_ATOMS = 0x10000
    MAP_TAG = 0x20000
    BIG_CREATION = 0x40000
    SEND_SENDER = 0x80000
    BIG_SEQTRACE_LABELS = 0x100000
    EXIT_PAYLOAD = 0x400000
    FRAGMENTS = 0x800000
    HANDSHAKE_23 = 0x1000000
    UNLINK_ID = 0x2000000
    MANDATORY_25_DIGEST = 0x4000000
    SPAWN = 1 << 32
    NAME_ME = 1 << 33
    V4_NC = 1 << 34
    ALIAS = 1 << 35


#: What OTP 25 refuses to connect without (`?MANDATORY_DFLAGS_25`).
MANDATORY_OTP25: Final = (
    DistFlags.EXTENDED_REFERENCES
    | DistFlags.FUN_TAGS
    | DistFlags.EXTENDED_PIDS_PORTS
    | DistFlags.NEW_FUN_TAGS
    | DistFlags.EXPORT_PTR_TAG
    | DistFlags.BIT_BINARIES
    | DistFlags.NEW_FLOATS
    | DistFlags.UTF8_ATOMS
    | DistFlags.MAP_TAG
    | DistFlags.BIG_CREATION
    | DistFlags.HANDSHAKE_23
)
#: What a peer must support to talk to us: OTP 25's set plus OTP 26's
#: additions, so the term codec has one encoding per term (v4 node
#: containers, the unlink-id link protocol).
REQUIRED_FLAGS: Final = MANDATORY_OTP25 | DistFlags.V4_NC | DistFlags.UNLINK_ID
#: What we advertise by default: the required set only, and no `PUBLISHED`,
#: so that Erlang sees a hidden node, as it does with a C node or `erl -hidden`.
#: We take on no optional control messages (monitors, spawn, aliases, atom
#: cache, fragments) that the node does not handle yet.
DEFAULT_FLAGS: Final = REQUIRED_FLAGS | DistFlags.MANDATORY_25_DIGEST

_U16 = struct.Struct(">H")
_NAME_NEW = struct.Struct(">QIH")  # flags, creation, nlen
_NAME_OLD = struct.Struct(">HI")  # version, flags
_CHALLENGE_NEW = struct.Struct(">QIIH")  # flags, challenge, creation, nlen
_CHALLENGE_OLD = struct.Struct(">HII")  # version, flags, challenge
_REPLY = struct.Struct(">I16s")
_COMPLEMENT = struct.Struct(">II")
_U32 = 0xFFFFFFFF


class Status(enum.Enum):
    """The acceptor's answer to a send_name (the 's' message)."""

    #: Go on.
    OK = "ok"
    #: Go on. The acceptor also had a connection of its own pending to us,
    #: and it drops that one.
    OK_SIMULTANEOUS = "ok_simultaneous"
    #: Both sides dialled each other and the acceptor's own attempt wins, so
    #: this one ends. That is normal, not an error.
    NOK = "nok"
    #: The acceptor refuses this node (allow list, missing capabilities).
    NOT_ALLOWED = "not_allowed"
    #: The acceptor believes it is still connected to us. The initiator
    #: answers "true" (the old connection is stale) or "false".
    ALIVE = "alive"


def digest(cookie: bytes, challenge: int) -> bytes:
    """OTP's `gen_digest`: ``md5(Cookie ++ integer_to_list(Challenge))``."""
    return md5(cookie + str(challenge).encode("ascii")).digest()


def simultaneous_status(
    this_node: str, other_node: str, *, pending_outgoing: bool, connected: bool
) -> Status:
    """How OTP's net_kernel answers a node that dials us (`accept_pending`).

    `pending_outgoing` says whether we are dialling `other_node` right now.
    `connected` says whether we still hold a connection to it. When both
    sides dial each other, the node whose name sorts higher keeps its own
    attempt: it answers "nok". The other answers "ok_simultaneous" and drops
    its outgoing attempt. A node we think we are still connected to gets
    "alive".
    """
    if connected:
        return Status.ALIVE
    if pending_outgoing:
        # Erlang compares the two atoms; for node names that is code point order.
        return Status.NOK if this_node > other_node else Status.OK_SIMULTANEOUS
    return Status.OK


def _flag_names(flags: int) -> str:
    return ", ".join(f.name or hex(f.value) for f in DistFlags if flags & f.value)


def _cookie_bytes(cookie: bytes | str) -> bytes:
    if isinstance(cookie, bytes):
        data = cookie
    else:
        try:
            # An Erlang cookie is an atom, and erlang:md5 takes its characters
            # as bytes: only Latin-1 cookies work with OTP.
            data = cookie.encode("latin-1")
        except UnicodeEncodeError:
            raise ValueError("an Erlang cookie must be Latin-1 text") from None
    if not data:
        raise ValueError("the cookie must not be empty")
    return data


def _check_node_name(name: str, what: str) -> None:
    """OTP's is_node_name: ``alive@host``, both parts non-empty."""
    alive, at, host = name.partition("@")
    if not (at and alive and host) or "@" in host or len(name) > MAX_NODE_NAME:
        raise ProtocolError(f"{what} {name[:80]!r} is not a node name (alive@host)")
    if not name.isprintable():
        raise ProtocolError(f"{what} {name[:80]!r} holds unprintable characters")


def _decode_name(raw: bytes, what: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError(f"{what} is not UTF-8: {raw[:80]!r}") from None


# --------------------------------------------------------------------------- events


@attrs.frozen
class PeerInfo:
    """What the handshake learnt about the other node."""

    #: Its full node name, e.g. ``"e1@127.0.0.1"``.
    name: str
    #: The capability flags it announced (before any negotiation).
    flags: int
    #: Its creation (which incarnation of the node), 32-bit. It is 0 only
    #: while an old-format peer has not yet sent its complement.
    creation: int
    #: The send_name format it opened with: 6 ('N'), or 5 ('n' + complement).
    version: int

    @property
    def hidden(self) -> bool:
        """True for a hidden node (no `PUBLISHED` flag, e.g. ``erl -hidden``)."""
        return not self.flags & DistFlags.PUBLISHED


@attrs.frozen
class Established:
    """Both sides proved they know the cookie, so distribution traffic may flow.

    `flags` is what both sides support (``ours & theirs``, as OTP's
    `adjust_flags`): it decides how terms are encoded on this connection.
    """

    peer: PeerInfo
    flags: int


@attrs.frozen
class Refused:
    """The handshake ended in a normal, non-error way. Close the connection.

    Initiator: the acceptor answered "nok" because its own connection to us
    wins. Acceptor: our `decide` callback returned "nok" or "not_allowed",
    or, after "alive", the initiator answered "false".
    """

    status: str
    peer: str


@attrs.frozen
class Named:
    """Initiator with a dynamic name (`NAME_ME`): the acceptor named us."""

    name: str
    creation: int


Event = Established | Refused | Named


class _State(enum.Enum):
    WAIT_NAME = enum.auto()
    WAIT_ALIVE_ANSWER = enum.auto()
    WAIT_COMPLEMENT = enum.auto()
    WAIT_REPLY = enum.auto()
    WAIT_STATUS = enum.auto()
    WAIT_CHALLENGE = enum.auto()
    WAIT_ACK = enum.auto()
    DONE = enum.auto()
    CLOSED = enum.auto()


_RECEIVING: Final = frozenset(
    {
        _State.WAIT_NAME,
        _State.WAIT_ALIVE_ANSWER,
        _State.WAIT_COMPLEMENT,
        _State.WAIT_REPLY,
        _State.WAIT_STATUS,
        _State.WAIT_CHALLENGE,
        _State.WAIT_ACK,
    }
)


def _always_ok(peer: PeerInfo) -> Status:
    return Status.OK


def _still_pending() -> bool:
    return True


def _dynamic_alive(host: str) -> str:
    # Called with the host the peer named. Same shape as OTP's generated names.
    return f"py_{secrets.token_hex(6)}"


class ErlDistHandshake:
    """One side of one Erlang distribution handshake.

    `role` is `Role.CONNECT` (we dialled: the initiator, which sends its
    name at once) or `Role.ACCEPT` (the peer dialled us). `name` is our full
    node name (``py@127.0.0.1``). An initiator that wants the acceptor to
    name it (`NAME_ME`, OTP 23+) passes only the host part, ``"@host"``.
    `cookie` is the shared secret. `creation` is this incarnation's 32-bit
    creation. `flags` are the capabilities we advertise (hidden and
    `DEFAULT_FLAGS` unless told otherwise). `require` is what the peer must
    have (`REQUIRED_FLAGS`).

    An initiator may pass `expected_peer`, the full name it dialled. If
    another node answers there, it is refused.

    Acceptor: `decide(peer)` gives the send_status answer once the peer's
    name is known. The default always says "ok". A node with a peer table
    wraps `simultaneous_status`. Returning `Status.ALIVE` makes the peer say
    whether our old connection to it is stale. "true" means the shell must
    drop the old connection before using the new one. `name_peer(host)`
    gives the name part for a peer that asked to be named (`NAME_ME`).

    Initiator: `still_pending()` answers an "alive" status. It says whether
    this connection attempt still stands (OTP's `is_pending`; default yes).

    `challenge` produces our 32-bit challenge. Tests may fix it.
    """

    def __init__(
        self,
        role: Role,
        *,
        name: str,
        cookie: bytes | str,
        creation: int,
        flags: int = DEFAULT_FLAGS,
        require: int = REQUIRED_FLAGS,
        expected_peer: str | None = None,
        decide: Callable[[PeerInfo], Status] = _always_ok,
        still_pending: Callable[[], bool] = _still_pending,
        name_peer: Callable[[str], str] = _dynamic_alive,
        challenge: Callable[[], int] = lambda: secrets.randbits(32),
    ) -> None:
        self._name_me = role is Role.CONNECT and name.startswith("@")
        if self._name_me:
            if len(name) < 2 or "@" in name[1:]:
                raise ValueError(f"a dynamic name is '@host', got {name!r}")
        else:
            try:
                _check_node_name(name, "our node name")
            except ProtocolError as exc:
                raise ValueError(str(exc)) from None
        if not 0 <= creation <= _U32:
            raise ValueError(f"creation {creation} is not a 32-bit unsigned number")
        if flags & DistFlags.NAME_ME and not self._name_me:
            raise ValueError("NAME_ME is set by passing name='@host' to an initiator")
        self.role = role
        self.name = name
        self.creation = creation
        self.flags = int(flags) | (int(DistFlags.NAME_ME) if self._name_me else 0)
        self.require = int(require)
        self.expected_peer = expected_peer
        self._cookie = _cookie_bytes(cookie)
        self._decide = decide
        self._still_pending = still_pending
        self._name_peer = name_peer
        self._challenge = challenge() & _U32
        self._buf = bytearray()
        self._out = bytearray()
        #: What we know of the other node (None until its name arrived).
        self.peer: PeerInfo | None = None
        #: The negotiated flags, once `Established`.
        self.negotiated: int | None = None
        if role is Role.CONNECT:
            self._send_name()
            self._state = _State.WAIT_STATUS
        else:
            self._state = _State.WAIT_NAME

    # -- public surface

    @property
    def established(self) -> bool:
        """True once the handshake succeeded."""
        return self._state is _State.DONE

    @property
    def finished(self) -> bool:
        """True once the handshake ended in any way (no more input wanted)."""
        return self._state in (_State.DONE, _State.CLOSED)

    def data_to_send(self) -> bytes:
        """Bytes the shell must write to the peer now (possibly empty)."""
        out = bytes(self._out)
        self._out.clear()
        return out

    def trailing_data(self) -> bytes:
        """Bytes the peer sent after its last handshake message (distribution
        packets with 4-byte lengths, for `erldist_framing.DistDecoder`)."""
        data = bytes(self._buf)
        self._buf.clear()
        return data

    def receive_data(self, data: bytes) -> list[Event]:
        """Feed bytes from the peer. Returns what happened, and raises on failure."""
        if self._state is _State.CLOSED:
            raise ProtocolError("the Erlang distribution handshake already ended")
        self._buf += data
        events: list[Event] = []
        try:
            while self._state in _RECEIVING:
                if len(self._buf) < 2:
                    break
                (size,) = _U16.unpack_from(self._buf)
                if len(self._buf) < 2 + size:
                    break
                body = bytes(self._buf[2 : 2 + size])
                del self._buf[: 2 + size]
                if not body:
                    raise ProtocolError("empty message in the Erlang distribution handshake")
                event = self._handle(body)
                if event is not None:
                    events.append(event)
        except BaseException:
            self._state = _State.CLOSED
            raise
        return events

    def connection_lost(self) -> None:
        """The peer closed the connection. Raises the error that explains it.

        Does nothing once the handshake has finished. An initiator that loses
        the connection right after its challenge reply has met an acceptor
        that rejected our digest, which OTP does silently. That is a cookie
        mismatch, so it raises `AuthenticationFailed`.
        """
        state = self._state
        if state in (_State.DONE, _State.CLOSED):
            return
        self._state = _State.CLOSED
        peer = self._peer_label()
        if state is _State.WAIT_ACK:
            raise AuthenticationFailed(
                f"Erlang node {peer} closed the connection after our challenge reply: "
                "it does not accept our cookie. Use the cookie the Erlang node has "
                "(its ~/.erlang.cookie or `erl -setcookie`)"
            )
        if state is _State.WAIT_REPLY:
            raise ConnectionFailed(
                f"Erlang node {peer} closed the connection instead of answering our "
                "challenge: our cookie is probably not its cookie (check both), or it "
                "gave up waiting"
            )
        if state is _State.WAIT_STATUS:
            raise ConnectionFailed(
                f"Erlang node {peer} closed the connection without answering our name: "
                "check that our node name's host part suits it (-name vs -sname), and "
                "its log for the reason"
            )
        raise ConnectionFailed(
            f"Erlang node {peer} closed the connection during the handshake "
            f"({state.name.lower().replace('_', ' ')})"
        )

    # -- internals

    def _peer_label(self) -> str:
        if self.peer is not None:
            return repr(self.peer.name)
        if self.expected_peer is not None:
            return repr(self.expected_peer)
        return "(name not yet known)"

    def _write(self, body: bytes) -> None:
        self._out += _U16.pack(len(body)) + body

    def _send_name(self) -> None:
        raw = self.name[1:] if self._name_me else self.name
        name = raw.encode("utf-8")
        self._write(b"N" + _NAME_NEW.pack(self.flags, self.creation, len(name)) + name)

    def _send_status(self, status: str) -> None:
        self._write(b"s" + status.encode("ascii"))

    def _send_challenge(self) -> None:
        name = self.name.encode("utf-8")
        self._write(
            b"N" + _CHALLENGE_NEW.pack(self.flags, self._challenge, self.creation, len(name)) + name
        )

    def _missing(self, peer_flags: int) -> int:
        return self.require & ~peer_flags

    def _handle(self, body: bytes) -> Event | None:
        tag, state = body[0:1], self._state
        if state is _State.WAIT_NAME and tag in (b"N", b"n"):
            return self._on_name(body)
        if state is _State.WAIT_ALIVE_ANSWER and tag == b"s":
            return self._on_alive_answer(body[1:])
        if state is _State.WAIT_COMPLEMENT and tag == b"c":
            self._on_complement(body)
            return None
        if state is _State.WAIT_REPLY and tag == b"r":
            return self._on_reply(body)
        if state is _State.WAIT_STATUS and tag == b"s":
            return self._on_status(body[1:])
        if state is _State.WAIT_CHALLENGE and tag in (b"N", b"n"):
            self._on_challenge(body)
            return None
        if state is _State.WAIT_ACK and tag == b"a":
            return self._on_ack(body)
        raise ProtocolError(
            f"unexpected message {tag!r} ({len(body)} bytes) from Erlang node "
            f"{self._peer_label()} while in {state.name.lower()}"
        )

    # -- acceptor

    def _on_name(self, body: bytes) -> Event | None:
        if body[0:1] == b"N":
            if len(body) < 1 + _NAME_NEW.size:
                raise ProtocolError("truncated send_name")
            flags, creation, nlen = _NAME_NEW.unpack_from(body, 1)
            raw = body[1 + _NAME_NEW.size :]
            if len(raw) != nlen:
                raise ProtocolError(f"send_name announces a {nlen}-byte name, holds {len(raw)}")
            version = 6
        else:
            if len(body) < 1 + _NAME_OLD.size:
                raise ProtocolError("truncated send_name")
            version, flags = _NAME_OLD.unpack_from(body, 1)
            raw = body[1 + _NAME_OLD.size :]
            creation = 0
            if version != 5:
                raise ProtocolError(f"old-format send_name with version {version} (want 5)")
        text = _decode_name(raw, "the peer's node name")
        if flags & DistFlags.NAME_ME:
            # The peer sent only its host; we pick the rest (OTP 23+ dynamic
            # names). Our challenge echoes NAME_ME: OTP's initiator checks
            # the negotiated flags for it before taking the name.
            self.flags |= int(DistFlags.NAME_ME)
            host = text
            if not host or "@" in host:
                raise ProtocolError(f"dynamic-name request with host {host[:80]!r}")
            text = f"{self._name_peer(host)}@{host}"
        _check_node_name(text, "the peer's node name")
        self.peer = PeerInfo(text, flags, creation, version)
        # An old send_name carries the low 32 flag bits only; the rest come
        # with the complement, so those are checked then.
        missing = self._missing(flags) & (_U32 if version == 5 else ~0)
        if missing:
            self._send_status(Status.NOT_ALLOWED.value)
            old = "" if flags & DistFlags.HANDSHAKE_23 else " (a node older than OTP 23?)"
            raise ConnectionFailed(
                f"refused Erlang node {text!r}{old}: it lacks the distribution capabilities "
                f"{_flag_names(missing)}, which this node requires; use Erlang/OTP 25 or later"
            )
        if text == self.name:
            self._send_status(Status.NOT_ALLOWED.value)
            raise ConnectionFailed(f"a node named {text!r}, our own name, dialled us")
        status = self._decide(self.peer)
        if status is Status.NOK or status is Status.NOT_ALLOWED:
            self._send_status(status.value)
            self._state = _State.CLOSED
            return Refused(status.value, text)
        if status is Status.ALIVE:
            self._send_status(status.value)
            self._state = _State.WAIT_ALIVE_ANSWER
            return None
        self._continue_accept(status)
        return None

    def _continue_accept(self, status: Status | None) -> None:
        assert self.peer is not None
        if status is None:
            pass  # after "alive" and "true": the status was already sent
        elif self.peer.flags & DistFlags.NAME_ME:
            name = self.peer.name.encode("utf-8")
            creation = secrets.randbits(32) or 1
            self.peer = attrs.evolve(self.peer, creation=creation)
            self._write(b"snamed:" + _U16.pack(len(name)) + name + struct.pack(">I", creation))
        else:
            self._send_status(status.value)
        self._send_challenge()
        self._state = _State.WAIT_COMPLEMENT if self.peer.version == 5 else _State.WAIT_REPLY

    def _on_alive_answer(self, answer: bytes) -> Event | None:
        assert self.peer is not None
        if answer == b"true":
            self._continue_accept(None)
            return None
        if answer == b"false":
            self._state = _State.CLOSED
            return Refused("false", self.peer.name)
        raise ProtocolError(f"answer to 'alive' was {answer[:40]!r}, not 'true' or 'false'")

    def _on_complement(self, body: bytes) -> None:
        assert self.peer is not None
        if len(body) != 1 + _COMPLEMENT.size:
            raise ProtocolError(f"complement of {len(body)} bytes (want 9)")
        high, creation = _COMPLEMENT.unpack_from(body, 1)
        flags = self.peer.flags | (high << 32)
        self.peer = attrs.evolve(self.peer, flags=flags, creation=creation)
        missing = self._missing(flags)
        if missing:
            # Too late for a status message: OTP closes here too.
            raise ConnectionFailed(
                f"refused Erlang node {self.peer.name!r}: it lacks the distribution "
                f"capabilities {_flag_names(missing)}, which this node requires; "
                "use Erlang/OTP 25 or later"
            )
        self._state = _State.WAIT_REPLY

    def _on_reply(self, body: bytes) -> Event:
        assert self.peer is not None
        if len(body) != 1 + _REPLY.size:
            raise ProtocolError(f"challenge_reply of {len(body)} bytes (want 21)")
        their_challenge, their_digest = _REPLY.unpack_from(body, 1)
        if not hmac.compare_digest(their_digest, digest(self._cookie, self._challenge)):
            # OTP closes without a word here; so do we.
            raise AuthenticationFailed(
                f"Erlang node {self.peer.name!r} failed the cookie challenge: its cookie "
                "is not ours. Give both nodes the same cookie (`erl -setcookie`, "
                "~/.erlang.cookie)"
            )
        self._write(b"a" + digest(self._cookie, their_challenge))
        return self._establish()

    def _establish(self) -> Established:
        assert self.peer is not None
        self.negotiated = int(self.flags & self.peer.flags)
        self._state = _State.DONE
        return Established(self.peer, self.negotiated)

    # -- initiator

    def _on_status(self, status: bytes) -> Event | None:
        peer = self._peer_label()
        if status in (b"ok", b"ok_simultaneous"):
            self._state = _State.WAIT_CHALLENGE
            return None
        if status == b"nok":
            self._state = _State.CLOSED
            return Refused(Status.NOK.value, self.expected_peer or "")
        if status == b"not_allowed":
            raise ConnectionFailed(
                f"Erlang node {peer} does not allow us to connect (not_allowed): its "
                "allow list (net_kernel:allow/1) leaves us out, or it lacks a capability "
                "we need; see its log"
            )
        if status == b"alive":
            pending = self._still_pending()
            self._send_status("true" if pending else "false")
            if not pending:
                self._state = _State.CLOSED
                return Refused(Status.ALIVE.value, self.expected_peer or "")
            self._state = _State.WAIT_CHALLENGE
            return None
        if status.startswith(b"named:"):
            return self._on_named(status[6:])
        raise ProtocolError(f"unknown handshake status {status[:40]!r} from Erlang node {peer}")

    def _on_named(self, rest: bytes) -> Event:
        if not self._name_me:
            raise ProtocolError("the acceptor named us, but we asked for no dynamic name")
        if len(rest) < 2:
            raise ProtocolError("truncated 'named:' status")
        (nlen,) = _U16.unpack_from(rest)
        if len(rest) != 2 + nlen + 4:
            raise ProtocolError(f"'named:' status of {len(rest)} bytes for a {nlen}-byte name")
        name = _decode_name(rest[2 : 2 + nlen], "our assigned name")
        _check_node_name(name, "our assigned name")
        if name.partition("@")[2] != self.name[1:]:
            raise ProtocolError(f"the acceptor named us {name!r}, off our host {self.name[1:]!r}")
        (self.creation,) = struct.unpack_from(">I", rest, 2 + nlen)
        self.name = name
        self._state = _State.WAIT_CHALLENGE
        return Named(name, self.creation)

    def _on_challenge(self, body: bytes) -> None:
        if self._name_me and self.name.startswith("@"):
            raise ProtocolError("challenge before the acceptor named us")
        if body[0:1] == b"n":
            # Only a pre-OTP-23 acceptor sends the old challenge to a new send_name.
            if len(body) < 1 + _CHALLENGE_OLD.size:
                raise ProtocolError("truncated challenge")
            _version, flags, their_challenge = _CHALLENGE_OLD.unpack_from(body, 1)
            raw = body[1 + _CHALLENGE_OLD.size :]
            creation, version = 0, 5
        else:
            if len(body) < 1 + _CHALLENGE_NEW.size:
                raise ProtocolError("truncated challenge")
            flags, their_challenge, creation, nlen = _CHALLENGE_NEW.unpack_from(body, 1)
            raw = body[1 + _CHALLENGE_NEW.size :]
            if len(raw) != nlen:
                raise ProtocolError(f"challenge announces a {nlen}-byte name, holds {len(raw)}")
            version = 6
        name = _decode_name(raw, "the peer's node name")
        _check_node_name(name, "the peer's node name")
        self.peer = PeerInfo(name, flags, creation, version)
        if name == self.name:
            raise ConnectionFailed(f"dialled a node but reached this node ({name!r}) itself")
        if self.expected_peer is not None and name != self.expected_peer:
            raise ConnectionFailed(
                f"dialled Erlang node {self.expected_peer!r} but {name!r} answered; "
                "check the address (or EPMD's entry) for that node"
            )
        missing = self._missing(flags)
        if missing:
            raise ConnectionFailed(
                f"Erlang node {name!r} lacks the distribution capabilities "
                f"{_flag_names(missing)}, which this node requires; use Erlang/OTP 25 or later"
            )
        self._write(b"r" + _REPLY.pack(self._challenge, digest(self._cookie, their_challenge)))
        self._state = _State.WAIT_ACK

    def _on_ack(self, body: bytes) -> Event:
        assert self.peer is not None
        if len(body) != 17:
            raise ProtocolError(f"challenge_ack of {len(body)} bytes (want 17)")
        if not hmac.compare_digest(body[1:], digest(self._cookie, self._challenge)):
            raise AuthenticationFailed(
                f"Erlang node {self.peer.name!r} could not prove it knows the cookie; "
                "give both nodes the same cookie (`erl -setcookie`, ~/.erlang.cookie)"
            )
        return self._establish()
