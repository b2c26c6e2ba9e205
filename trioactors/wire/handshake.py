"""The node handshake as a sans-IO state machine: bytes in, events out, bytes to send.

Four frames, like Erlang's distribution handshake, so that the side that
accepted the connection checks the connecting side before revealing anything
computed with the cookie:

```
connector                                   acceptor
  Hello(version, name, creation)               ->
                                            (acceptor decides: accept / refuse)
  <- Challenge(version, name, creation, challenge_a)              | Refuse(reason)
  ChallengeReply(challenge_c, digest_c)        ->
                                            (checks digest_c)
  <- ChallengeAck(digest_a)                                        | Refuse("authentication")
```

A digest is HMAC-SHA256 keyed with the cookie over the peer's random
challenge, the prover's own challenge, both names and the prover's role, so
the cookie never crosses the wire, a digest cannot be replayed on another
connection, and one side's answer cannot be reflected back as the other's.

Errors are raised from `receive_data` as exceptions (`AuthenticationFailed`,
`ConnectionFailed`, `ProtocolError`) after any refusal
frame has been queued: the shell sends `data_to_send()` best-effort and closes.
"""

from __future__ import annotations

import enum
import hmac
import secrets
from collections.abc import Callable
from hashlib import sha256
from typing import Any, Final

import attrs

from ..errors import AuthenticationFailed, ConnectionFailed, ProtocolError
from .cbor import RecordSet, dumps, loads
from .framing import FrameDecoder
from .names import NodeAddress

__all__ = [
    "HANDSHAKE_MAX_FRAME",
    "PROTOCOL_VERSION",
    "Challenge",
    "ChallengeAck",
    "ChallengeReply",
    "Established",
    "Handshake",
    "Hello",
    "PeerHello",
    "PeerInfo",
    "Refuse",
    "Refused",
    "Role",
]

#: 2: absolute pids (node name and creation on the wire), no node ids.
PROTOCOL_VERSION: Final = 2
#: Handshake frames are tiny; anything bigger is hostile.
HANDSHAKE_MAX_FRAME: Final = 4096
_CHALLENGE_BYTES: Final = 32
_MAX_NAME: Final = 255

#: Refusal reasons a connector treats as a normal outcome, not an error.
REFUSE_SIMULTANEOUS: Final = "simultaneous"  # the peer's own connection to us wins
REFUSE_DUPLICATE: Final = "duplicate"  # the pair is already connected


class Role(enum.Enum):
    """Which end of the TCP connection this machine drives."""

    CONNECT = "connect"
    ACCEPT = "accept"


# --------------------------------------------------------------------------- wire records


@attrs.frozen
class Hello:
    """Connector -> acceptor: who is calling."""

    version: int
    name: str
    creation: int


@attrs.frozen
class Challenge:
    """Acceptor -> connector: who answers, and a random challenge."""

    version: int
    name: str
    creation: int
    challenge: bytes


@attrs.frozen
class ChallengeReply:
    """Connector -> acceptor: its own challenge and the proof it knows the cookie."""

    challenge: bytes
    digest: bytes


@attrs.frozen
class ChallengeAck:
    """Acceptor -> connector: the acceptor's proof; the handshake is done."""

    digest: bytes


@attrs.frozen
class Refuse:
    """Either side: the handshake ends here, and why."""

    reason: str
    detail: str


RECORDS: Final = RecordSet()
RECORDS.register(1, Hello, int, str, int)
RECORDS.register(2, Challenge, int, str, int, bytes)
RECORDS.register(3, ChallengeReply, bytes, bytes)
RECORDS.register(4, ChallengeAck, bytes)
RECORDS.register(5, Refuse, str, str)


class _PlainCodec:
    """Handshake records hold plain values only (no pids): `dumps`/`loads`."""

    __slots__ = ()

    @staticmethod
    def encode(obj: Any) -> bytes:
        return dumps(obj)

    @staticmethod
    def decode(data: bytes) -> Any:
        return loads(data)


_CODEC: Final = _PlainCodec()


# --------------------------------------------------------------------------- events


@attrs.frozen
class PeerInfo:
    """What the handshake learnt about the other node."""

    name: str
    creation: int
    version: int


@attrs.frozen
class PeerHello:
    """Acceptor only: the connector introduced itself. Call `accept()` or
    `refuse()` (e.g. already connected, simultaneous connect lost)."""

    peer: PeerInfo


@attrs.frozen
class Established:
    """Both sides proved they know the cookie; node traffic may flow."""

    peer: PeerInfo


@attrs.frozen
class Refused:
    """Connector only: the acceptor declined for a reason that is not an error
    (`"simultaneous"`: its own connection to us wins; `"duplicate"`)."""

    reason: str
    detail: str


Event = PeerHello | Established | Refused


class _State(enum.Enum):
    WAIT_HELLO = enum.auto()
    WAIT_DECISION = enum.auto()
    WAIT_CHALLENGE = enum.auto()
    WAIT_REPLY = enum.auto()
    WAIT_ACK = enum.auto()
    DONE = enum.auto()
    CLOSED = enum.auto()


def _digest(
    cookie: bytes,
    role: Role,
    prover: str,
    verifier: str,
    verifier_challenge: bytes,
    prover_challenge: bytes,
) -> bytes:
    msg = dumps(
        [
            "trioactors-handshake",
            PROTOCOL_VERSION,
            role.value,
            prover,
            verifier,
            verifier_challenge,
            prover_challenge,
        ]
    )
    return hmac.new(cookie, msg, sha256).digest()


def _check_identity(name: str, creation: int) -> None:
    if not name or len(name) > _MAX_NAME or not name.isprintable():
        raise ProtocolError(f"invalid node name {name[:40]!r} (length {len(name)})")
    if not 0 <= creation < 2**32:
        raise ProtocolError(f"node {name!r} announced creation {creation} (not 32-bit)")


def _version_of(value: Any) -> int | None:
    """The version a Hello/Challenge of any protocol version announces."""
    if isinstance(value, list) and len(value) > 1 and value[0] in (1, 2):
        version = value[1]
        if type(version) is int:
            return version
    return None


def refusal_error(reason: str, detail: str, peer: str) -> ConnectionFailed:
    """The exception a connector raises for a `Refuse(reason, detail)` from `peer`."""
    if reason == "authentication":
        return AuthenticationFailed(
            f"node {peer!r} refused the connection: wrong cookie; give both nodes "
            "the same cookie (cookie=..., --cookie-file or TRIOACTORS_COOKIE)"
        )
    return ConnectionFailed(f"node {peer!r} refused the connection ({reason}): {detail}")


class Handshake:
    """One side of one handshake.

    `cookie` is the shared secret (bytes). The connector may pass
    `expected_peer` (the node it dialled) to refuse talking to another node
    that happens to listen there. `token` produces random challenges (tests
    may fix it).
    """

    def __init__(
        self,
        role: Role,
        *,
        name: str,
        creation: int,
        cookie: bytes,
        expected_peer: NodeAddress | None = None,
        token: Callable[[int], bytes] = secrets.token_bytes,
    ) -> None:
        if not cookie:
            raise ValueError("the cookie must not be empty")
        self.role = role
        self.name = name
        self.creation = creation
        self.expected_peer = expected_peer
        self._cookie = cookie
        self._challenge = token(_CHALLENGE_BYTES)
        self._peer_challenge = b""
        self._decoder = FrameDecoder(HANDSHAKE_MAX_FRAME)
        self._out = bytearray()
        self.peer: PeerInfo | None = None
        if role is Role.CONNECT:
            self._send(Hello(PROTOCOL_VERSION, name, creation))
            self._state = _State.WAIT_CHALLENGE
        else:
            self._state = _State.WAIT_HELLO

    # -- public surface

    @property
    def established(self) -> bool:
        """True once the handshake succeeded."""
        return self._state is _State.DONE

    def data_to_send(self) -> bytes:
        """Bytes the shell must write to the peer now (possibly empty)."""
        out = bytes(self._out)
        self._out.clear()
        return out

    def trailing_data(self) -> bytes:
        """Bytes the peer sent after its last handshake frame (node traffic)."""
        return self._decoder.detach()

    def receive_data(self, data: bytes) -> list[Event]:
        """Feed bytes from the peer; returns what happened. Raises on failure."""
        if self._state is _State.CLOSED:
            raise ProtocolError("handshake already failed")
        self._decoder.feed(data)
        events: list[Event] = []
        try:
            while self._state in (
                _State.WAIT_HELLO,
                _State.WAIT_CHALLENGE,
                _State.WAIT_REPLY,
                _State.WAIT_ACK,
            ):
                body = self._decoder.next_frame()
                if body is None:
                    break
                value = _CODEC.decode(body)
                version = _version_of(value)
                if version is not None and version != PROTOCOL_VERSION:
                    self._version_mismatch(value, version)
                event = self._handle(RECORDS.from_value(value))
                if event is not None:
                    events.append(event)
        except BaseException:
            self._state = _State.CLOSED
            raise
        return events

    def accept(self) -> None:
        """Acceptor: go on with the peer announced by `PeerHello`."""
        if self._state is not _State.WAIT_DECISION:
            raise RuntimeError("accept() is only valid after PeerHello")
        self._send(Challenge(PROTOCOL_VERSION, self.name, self.creation, self._challenge))
        self._state = _State.WAIT_REPLY

    def refuse(self, reason: str, detail: str = "") -> None:
        """Acceptor: decline the peer (queued as a `Refuse` frame)."""
        self._send(Refuse(reason, detail))
        self._state = _State.CLOSED

    # -- internals

    def _send(self, record: Any) -> None:
        self._out += RECORDS.frame(_CODEC, record)

    def _version_mismatch(self, value: list[Any], version: int) -> None:
        name = value[2] if len(value) > 2 and isinstance(value[2], str) else "?"
        error = ConnectionFailed(
            f"node {name[:80]!r} speaks node protocol version {version}, this node speaks "
            f"{PROTOCOL_VERSION}; run the same trioactors version on every node"
        )
        if self.role is Role.ACCEPT:
            raise self._fail(error, "version")
        raise error

    def _fail(self, exc: Exception, reason: str) -> Exception:
        self._send(Refuse(reason, str(exc)))
        return exc

    def _handle(self, rec: Any) -> Event | None:
        if isinstance(rec, Refuse):
            self._state = _State.CLOSED
            expected = self.expected_peer
            if self.peer is not None:
                peer = self.peer.name
            elif expected is not None:
                peer = expected.name or f"{expected.host}:{expected.port}"
            else:
                peer = "?"
            if self.role is Role.CONNECT and rec.reason in (
                REFUSE_SIMULTANEOUS,
                REFUSE_DUPLICATE,
            ):
                return Refused(rec.reason, rec.detail)
            if self.role is Role.ACCEPT and rec.reason == "authentication":
                raise AuthenticationFailed(f"node {peer!r} does not accept our cookie")
            raise refusal_error(rec.reason, rec.detail, peer)
        state = self._state
        if state is _State.WAIT_HELLO and isinstance(rec, Hello):
            return self._on_hello(rec)
        if state is _State.WAIT_CHALLENGE and isinstance(rec, Challenge):
            self._on_challenge(rec)
            return None
        if state is _State.WAIT_REPLY and isinstance(rec, ChallengeReply):
            return self._on_reply(rec)
        if state is _State.WAIT_ACK and isinstance(rec, ChallengeAck):
            return self._on_ack(rec)
        raise ProtocolError(f"unexpected {type(rec).__name__} during the handshake")

    def _on_hello(self, rec: Hello) -> Event:
        _check_identity(rec.name, rec.creation)
        if rec.name == self.name:
            raise self._fail(
                ConnectionFailed(f"a node named {rec.name!r} tried to connect to itself"),
                "name",
            )
        self.peer = PeerInfo(rec.name, rec.creation, rec.version)
        self._state = _State.WAIT_DECISION
        return PeerHello(self.peer)

    def _on_challenge(self, rec: Challenge) -> None:
        _check_identity(rec.name, rec.creation)
        expected = self.expected_peer
        if expected is not None and not expected.accepts(rec.name):
            raise ConnectionFailed(
                f"dialled node {expected.name or expected.alive!r} but node {rec.name!r} "
                "answered; check the address (or EPMD's entry) for that node"
            )
        if rec.name == self.name:
            raise ConnectionFailed(f"dialled a node but reached this node ({rec.name!r}) itself")
        if len(rec.challenge) != _CHALLENGE_BYTES:
            raise ProtocolError("bad challenge length")
        self.peer = PeerInfo(rec.name, rec.creation, rec.version)
        self._peer_challenge = rec.challenge
        digest = _digest(
            self._cookie, Role.CONNECT, self.name, rec.name, rec.challenge, self._challenge
        )
        self._send(ChallengeReply(self._challenge, digest))
        self._state = _State.WAIT_ACK

    def _on_reply(self, rec: ChallengeReply) -> Event:
        assert self.peer is not None
        if len(rec.challenge) != _CHALLENGE_BYTES or rec.challenge == self._challenge:
            raise ProtocolError("bad challenge from the connecting node")
        expected = _digest(
            self._cookie, Role.CONNECT, self.peer.name, self.name, self._challenge, rec.challenge
        )
        if not hmac.compare_digest(expected, rec.digest):
            raise self._fail(
                AuthenticationFailed(
                    f"node {self.peer.name!r} failed the cookie challenge (wrong cookie?)"
                ),
                "authentication",
            )
        digest = _digest(
            self._cookie, Role.ACCEPT, self.name, self.peer.name, rec.challenge, self._challenge
        )
        self._send(ChallengeAck(digest))
        self._state = _State.DONE
        return Established(self.peer)

    def _on_ack(self, rec: ChallengeAck) -> Event:
        assert self.peer is not None
        expected = _digest(
            self._cookie,
            Role.ACCEPT,
            self.peer.name,
            self.name,
            self._challenge,
            self._peer_challenge,
        )
        if not hmac.compare_digest(expected, rec.digest):
            raise AuthenticationFailed(
                f"node {self.peer.name!r} could not prove it knows the cookie; "
                "give both nodes the same cookie"
            )
        self._state = _State.DONE
        return Established(self.peer)
