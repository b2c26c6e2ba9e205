"""Erlang's distribution handshake (wire/erldist_handshake.py), its packet
framing (wire/erldist_framing.py) and first-bytes detection (wire/sniff.py).

The unit tests build every message byte by byte from OTP's "Distribution
Protocol" chapter, so they check the format as well as the state machine.
The `erlang` tests put the machine on real sockets against a real `erl`,
registered with a private `epmd -port P`, in both directions.
"""

from __future__ import annotations

import os
import ssl
import struct
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from hashlib import md5

import pytest
import trio
import trio.lowlevel
from erlang_helpers import needs_erlang, private_epmd
from helpers import packet
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trioactors.errors import (
    AuthenticationFailed,
    ConnectionFailed,
    FrameTooLarge,
    ProtocolError,
    TrioActorsError,
)
from trioactors.wire.erldist_framing import TICK, DistDecoder, DistPacket, Tick, encode_packet
from trioactors.wire.erldist_handshake import (
    DEFAULT_FLAGS,
    REQUIRED_FLAGS,
    DistFlags,
    ErlDistHandshake,
    Established,
    Named,
    PeerInfo,
    Refused,
    Role,
    Status,
    digest,
    simultaneous_status,
)
from trioactors.wire.handshake import Handshake
from trioactors.wire.sniff import PeerProtocol, identify_peer

COOKIE = b"erldist-test-cookie"
OUR_CHALLENGE = 0x12345678
THEIR_CHALLENGE = 3141592653
#: What an OTP 25 node advertises (erts_internal:get_dflags/0), give or take.
OTP_FLAGS = int(DEFAULT_FLAGS | DistFlags.PUBLISHED | DistFlags.DIST_MONITOR | DistFlags.SPAWN)


def msg(body: bytes) -> bytes:
    """A handshake message: `body` behind its 2-byte length."""
    return struct.pack(">H", len(body)) + body


def send_name(name: bytes, flags: int = OTP_FLAGS, creation: int = 7) -> bytes:
    return msg(b"N" + struct.pack(">QIH", flags, creation, len(name)) + name)


def old_send_name(name: bytes, flags: int, version: int = 5) -> bytes:
    return msg(b"n" + struct.pack(">HI", version, flags) + name)


def challenge(name: bytes, flags: int = OTP_FLAGS, chal: int = THEIR_CHALLENGE) -> bytes:
    return msg(b"N" + struct.pack(">QIIH", flags, chal, 9, len(name)) + name)


def reply(chal: int, dig: bytes) -> bytes:
    return msg(b"r" + struct.pack(">I", chal) + dig)


def acceptor(**kw: object) -> ErlDistHandshake:
    return ErlDistHandshake(
        Role.ACCEPT,
        name="py@127.0.0.1",
        cookie=COOKIE,
        creation=0x0A0B0C0D,
        challenge=lambda: OUR_CHALLENGE,
        **kw,  # type: ignore[arg-type]
    )


def initiator(**kw: object) -> ErlDistHandshake:
    options: dict[str, object] = {"name": "py@127.0.0.1"}
    options.update(kw)
    return ErlDistHandshake(
        Role.CONNECT,
        cookie=COOKIE,
        creation=0x0A0B0C0D,
        challenge=lambda: OUR_CHALLENGE,
        **options,  # type: ignore[arg-type]
    )


def our_challenge_msg(flags: int = int(DEFAULT_FLAGS)) -> bytes:
    name = b"py@127.0.0.1"
    return msg(b"N" + struct.pack(">QIIH", flags, OUR_CHALLENGE, 0x0A0B0C0D, len(name)) + name)


# --------------------------------------------------------------------------- digest, flags


def test_digest_matches_erlang_md5_of_cookie_and_decimal_challenge() -> None:
    # erlang:md5([atom_to_list(secret) | integer_to_list(3141592653)]) on OTP 25.
    assert digest(b"secret", 3141592653).hex() == "f006ac361e26f458b1b1d413377fae15"
    assert digest(b"c", 0) == md5(b"c0").digest()


def test_default_flags_are_hidden_and_hold_every_required_flag() -> None:
    assert not DEFAULT_FLAGS & DistFlags.PUBLISHED
    assert DEFAULT_FLAGS & REQUIRED_FLAGS == REQUIRED_FLAGS
    for flag in (DistFlags.HANDSHAKE_23, DistFlags.V4_NC, DistFlags.UNLINK_ID, DistFlags.MAP_TAG):
        assert REQUIRED_FLAGS & flag


def test_simultaneous_status_follows_net_kernel() -> None:
    def status(this: str, other: str, pending: bool, connected: bool) -> Status:
        return simultaneous_status(this, other, pending_outgoing=pending, connected=connected)

    assert status("b@h", "a@h", False, False) is Status.OK
    # Both dial: the larger name keeps its own attempt.
    assert status("b@h", "a@h", True, False) is Status.NOK
    assert status("a@h", "b@h", True, False) is Status.OK_SIMULTANEOUS
    assert status("a@h", "b@h", False, True) is Status.ALIVE


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"name": "nohost"}, "not a node name"),
        ({"name": "a@b@c"}, "not a node name"),
        ({"cookie": b""}, "must not be empty"),
        ({"cookie": "snow\u2603"}, "Latin-1"),
        ({"creation": 2**32}, "32-bit"),
        ({"name": "@"}, "dynamic name"),
        ({"flags": DEFAULT_FLAGS | DistFlags.NAME_ME}, "NAME_ME"),
    ],
)
def test_bad_arguments_are_refused(kwargs: dict[str, object], match: str) -> None:
    options: dict[str, object] = {"name": "py@h", "cookie": COOKIE, "creation": 1}
    options.update(kwargs)
    with pytest.raises(ValueError, match=match):
        ErlDistHandshake(Role.CONNECT, **options)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- acceptor


def test_acceptor_happy_path_byte_for_byte() -> None:
    hs = acceptor()
    assert hs.data_to_send() == b""
    assert hs.receive_data(send_name(b"e1@127.0.0.1")) == []
    assert hs.data_to_send() == msg(b"sok") + our_challenge_msg()
    [event] = hs.receive_data(reply(THEIR_CHALLENGE, digest(COOKIE, OUR_CHALLENGE)))
    assert event == Established(PeerInfo("e1@127.0.0.1", OTP_FLAGS, 7, 6), int(DEFAULT_FLAGS))
    assert hs.data_to_send() == msg(b"a" + digest(COOKIE, THEIR_CHALLENGE))
    assert hs.established and hs.finished and hs.negotiated == DEFAULT_FLAGS
    assert not event.peer.hidden


def test_acceptor_takes_the_bytes_one_at_a_time_and_keeps_what_follows() -> None:
    hs = acceptor()
    for byte in send_name(b"e1@127.0.0.1"):
        assert hs.receive_data(bytes([byte])) == []
    hs.data_to_send()
    data = reply(THEIR_CHALLENGE, digest(COOKIE, OUR_CHALLENGE)) + TICK + b"\0\0\0\1p"
    events = [e for b in data for e in hs.receive_data(bytes([b]))]
    assert [type(e) for e in events] == [Established]
    assert hs.trailing_data() == TICK + b"\0\0\0\1p"


def test_acceptor_old_send_name_with_handshake_23_then_complement() -> None:
    hs = acceptor()
    low, high = OTP_FLAGS & 0xFFFFFFFF, OTP_FLAGS >> 32
    assert hs.receive_data(old_send_name(b"e1@h", low)) == []
    # The new challenge even so, since the peer knows HANDSHAKE_23.
    assert hs.data_to_send() == msg(b"sok") + our_challenge_msg()
    complement = msg(b"c" + struct.pack(">II", high, 99))
    [event] = hs.receive_data(complement + reply(5, digest(COOKIE, OUR_CHALLENGE)))
    assert isinstance(event, Established)
    assert event.peer == PeerInfo("e1@h", OTP_FLAGS, 99, 5)


def test_acceptor_refuses_complement_without_required_high_flags() -> None:
    hs = acceptor()
    hs.receive_data(old_send_name(b"e1@h", OTP_FLAGS & 0xFFFFFFFF))
    with pytest.raises(ConnectionFailed, match="V4_NC"):
        hs.receive_data(msg(b"c" + struct.pack(">II", 0, 99)))


def test_acceptor_refuses_pre_otp23_node_with_not_allowed() -> None:
    hs = acceptor()
    flags = OTP_FLAGS & 0xFFFFFFFF & ~DistFlags.HANDSHAKE_23
    with pytest.raises(ConnectionFailed, match=r"older than OTP 23.*HANDSHAKE_23"):
        hs.receive_data(old_send_name(b"old@h", flags))
    assert hs.data_to_send() == msg(b"snot_allowed")
    with pytest.raises(ProtocolError, match="already ended"):
        hs.receive_data(b"x")


def test_acceptor_refuses_peer_lacking_otp26_flags_naming_them() -> None:
    hs = acceptor()
    flags = OTP_FLAGS & ~(DistFlags.V4_NC | DistFlags.UNLINK_ID)
    with pytest.raises(ConnectionFailed, match=r"UNLINK_ID, V4_NC.*OTP 25 or later"):
        hs.receive_data(send_name(b"e1@h", flags))
    assert hs.data_to_send() == msg(b"snot_allowed")


def test_acceptor_wrong_cookie_closes_silently_like_otp() -> None:
    hs = acceptor()
    hs.receive_data(send_name(b"e1@h"))
    hs.data_to_send()
    with pytest.raises(AuthenticationFailed, match="same cookie"):
        hs.receive_data(reply(THEIR_CHALLENGE, digest(b"other", OUR_CHALLENGE)))
    assert hs.data_to_send() == b""
    assert not hs.established


@pytest.mark.parametrize("status", [Status.NOK, Status.NOT_ALLOWED])
def test_acceptor_decide_can_refuse(status: Status) -> None:
    seen: list[PeerInfo] = []

    def decide(peer: PeerInfo) -> Status:
        seen.append(peer)
        return status

    hs = acceptor(decide=decide)
    assert hs.receive_data(send_name(b"e1@h")) == [Refused(status.value, "e1@h")]
    assert hs.data_to_send() == msg(b"s" + status.value.encode())
    assert seen == [PeerInfo("e1@h", OTP_FLAGS, 7, 6)] and hs.finished


def test_acceptor_decide_ok_simultaneous() -> None:
    hs = acceptor(decide=lambda peer: Status.OK_SIMULTANEOUS)
    hs.receive_data(send_name(b"e1@h"))
    assert hs.data_to_send() == msg(b"sok_simultaneous") + our_challenge_msg()


@pytest.mark.parametrize(("answer", "goes_on"), [(b"true", True), (b"false", False)])
def test_acceptor_alive_asks_the_initiator(answer: bytes, goes_on: bool) -> None:
    hs = acceptor(decide=lambda peer: Status.ALIVE)
    assert hs.receive_data(send_name(b"e1@h")) == []
    assert hs.data_to_send() == msg(b"salive")
    events = hs.receive_data(msg(b"s" + answer))
    if goes_on:
        assert events == [] and hs.data_to_send() == our_challenge_msg()
    else:
        assert events == [Refused("false", "e1@h")] and hs.data_to_send() == b""


def test_acceptor_alive_answer_must_be_true_or_false() -> None:
    hs = acceptor(decide=lambda peer: Status.ALIVE)
    hs.receive_data(send_name(b"e1@h"))
    with pytest.raises(ProtocolError, match="'true' or 'false'"):
        hs.receive_data(msg(b"smaybe"))


def test_acceptor_names_a_peer_that_asks_name_me() -> None:
    hs = acceptor(name_peer=lambda host: "dyn")
    hs.receive_data(send_name(b"127.0.0.1", OTP_FLAGS | DistFlags.NAME_ME, creation=0))
    out = hs.data_to_send()
    assert hs.peer is not None and hs.peer.name == "dyn@127.0.0.1"
    named = msg(b"snamed:" + struct.pack(">H", 13) + b"dyn@127.0.0.1" + struct.pack(">I", 0))
    assert out[: len(named) - 4] == named[:-4]  # the creation is random
    assert struct.unpack_from(">I", out, len(named) - 4)[0] == hs.peer.creation != 0
    # NAME_ME echoed: OTP's initiator wants it in the negotiated flags.
    assert out[len(named) :] == our_challenge_msg(int(DEFAULT_FLAGS | DistFlags.NAME_ME))


@pytest.mark.parametrize(
    ("data", "error", "match"),
    [
        (send_name(b"nohost"), ProtocolError, "not a node name"),
        (send_name(b"a@"), ProtocolError, "not a node name"),
        (send_name(b"\xc3\x28@h"), ProtocolError, "not UTF-8"),
        (send_name(b"a\n@h"), ProtocolError, "unprintable"),
        (send_name(b"x" * 250 + b"@hosts"), ProtocolError, "not a node name"),
        (msg(b"N" + struct.pack(">QIH", OTP_FLAGS, 1, 9) + b"e1@h"), ProtocolError, "9-byte"),
        (msg(b"N\0\0"), ProtocolError, "truncated"),
        (msg(b"n\0\5"), ProtocolError, "truncated"),
        (old_send_name(b"e1@h", OTP_FLAGS & 0xFFFFFFFF, version=6), ProtocolError, "version 6"),
        (send_name(b"@h", OTP_FLAGS | DistFlags.NAME_ME), ProtocolError, "dynamic-name"),
        (msg(b"r" + b"\0" * 20), ProtocolError, "unexpected message b'r'"),
        (msg(b""), ProtocolError, "empty message"),
        (send_name(b"py@127.0.0.1"), ConnectionFailed, "our own name"),
    ],
)
def test_acceptor_rejects_bad_send_name(data: bytes, error: type[Exception], match: str) -> None:
    hs = acceptor()
    with pytest.raises(error, match=match):
        hs.receive_data(data)
    assert hs.finished


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (msg(b"r" + b"\0" * 19), "21"),
        (msg(b"c" + b"\0" * 8), "unexpected message b'c'"),
        (send_name(b"e1@h"), "unexpected message b'N'"),
    ],
)
def test_acceptor_rejects_bad_reply(data: bytes, match: str) -> None:
    hs = acceptor()
    hs.receive_data(send_name(b"e1@h"))
    with pytest.raises(ProtocolError, match=match):
        hs.receive_data(data)


def test_acceptor_rejects_bad_complement() -> None:
    hs = acceptor()
    hs.receive_data(old_send_name(b"e1@h", OTP_FLAGS & 0xFFFFFFFF))
    with pytest.raises(ProtocolError, match="complement of 5 bytes"):
        hs.receive_data(msg(b"c\0\0\0\0"))


def test_acceptor_connection_lost_while_waiting_for_the_reply() -> None:
    hs = acceptor()
    hs.receive_data(send_name(b"e1@h"))
    with pytest.raises(ConnectionFailed, match=r"'e1@h'.*cookie"):
        hs.connection_lost()
    hs.connection_lost()  # once finished, nothing more to say


def test_acceptor_connection_lost_before_the_name() -> None:
    with pytest.raises(ConnectionFailed, match="during the handshake"):
        acceptor().connection_lost()


# --------------------------------------------------------------------------- initiator


def test_initiator_happy_path_byte_for_byte() -> None:
    hs = initiator(expected_peer="e1@h")
    name = b"py@127.0.0.1"
    assert hs.data_to_send() == msg(
        b"N" + struct.pack(">QIH", DEFAULT_FLAGS, 0x0A0B0C0D, len(name)) + name
    )
    assert hs.receive_data(msg(b"sok")) == []
    assert hs.data_to_send() == b""
    assert hs.receive_data(challenge(b"e1@h")) == []
    assert hs.data_to_send() == reply(OUR_CHALLENGE, digest(COOKIE, THEIR_CHALLENGE))
    [event] = hs.receive_data(msg(b"a" + digest(COOKIE, OUR_CHALLENGE)) + TICK)
    assert event == Established(PeerInfo("e1@h", OTP_FLAGS, 9, 6), int(DEFAULT_FLAGS))
    assert hs.trailing_data() == TICK


def test_initiator_ok_simultaneous_goes_on() -> None:
    hs = initiator()
    hs.receive_data(msg(b"sok_simultaneous") + challenge(b"e1@h"))
    assert hs.data_to_send()[-21:] == reply(OUR_CHALLENGE, digest(COOKIE, THEIR_CHALLENGE))[2:]


def test_initiator_nok_is_a_normal_refusal() -> None:
    hs = initiator(expected_peer="e1@h")
    assert hs.receive_data(msg(b"snok")) == [Refused("nok", "e1@h")]
    assert hs.finished and not hs.established


def test_initiator_not_allowed_raises() -> None:
    with pytest.raises(ConnectionFailed, match="not_allowed"):
        initiator(expected_peer="e1@h").receive_data(msg(b"snot_allowed"))


@pytest.mark.parametrize("pending", [True, False])
def test_initiator_answers_alive(pending: bool) -> None:
    hs = initiator(still_pending=lambda: pending)
    hs.data_to_send()
    events = hs.receive_data(msg(b"salive"))
    assert hs.data_to_send() == msg(b"strue" if pending else b"sfalse")
    if pending:
        assert events == []
        hs.receive_data(challenge(b"e1@h"))
        assert hs.data_to_send()[2:3] == b"r"
    else:
        assert events == [Refused("alive", "")] and hs.finished


def test_initiator_with_dynamic_name_takes_the_name_it_is_given() -> None:
    hs = initiator(name="@127.0.0.1")
    sent = hs.data_to_send()
    flags, _creation, nlen = struct.unpack_from(">QIH", sent, 3)
    assert flags & DistFlags.NAME_ME and sent[17:] == b"127.0.0.1" and nlen == 9
    named = msg(b"snamed:" + struct.pack(">H", 13) + b"dyn@127.0.0.1" + struct.pack(">I", 77))
    assert hs.receive_data(named) == [Named("dyn@127.0.0.1", 77)]
    assert hs.name == "dyn@127.0.0.1" and hs.creation == 77
    hs.receive_data(challenge(b"e1@h"))
    assert hs.data_to_send()[2:3] == b"r"


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (msg(b"snamed:\0\1"), "of 2 bytes"),
        (msg(b"snamed:"), "truncated"),
        (msg(b"snamed:" + struct.pack(">H", 5) + b"a@bad" + b"\0\0\0\1"), "off our host"),
        (msg(b"sok") + challenge(b"e1@h"), "before the acceptor named us"),
    ],
)
def test_initiator_with_dynamic_name_rejects_bad_named(data: bytes, match: str) -> None:
    with pytest.raises(ProtocolError, match=match):
        initiator(name="@127.0.0.1").receive_data(data)


@pytest.mark.parametrize(
    ("data", "error", "match"),
    [
        (msg(b"swhatever"), ProtocolError, "unknown handshake status"),
        (msg(b"snamed:\0\0"), ProtocolError, "asked for no dynamic name"),
        (msg(b"a" + b"\0" * 16), ProtocolError, "unexpected message b'a'"),
        (msg(b"sok") + challenge(b"e2@h"), ConnectionFailed, "dialled Erlang node 'e1@h'"),
        (msg(b"sok") + challenge(b"py@127.0.0.1"), ConnectionFailed, "itself"),
        (
            msg(b"sok") + challenge(b"e1@h", OTP_FLAGS & ~DistFlags.MAP_TAG),
            ConnectionFailed,
            "MAP_TAG",
        ),
        (
            msg(b"sok") + msg(b"n" + struct.pack(">HII", 5, OTP_FLAGS & 0xFFFF, 1) + b"e1@h"),
            ConnectionFailed,
            "HANDSHAKE_23",
        ),
        (msg(b"sok") + msg(b"n\0\5"), ProtocolError, "truncated challenge"),
        (msg(b"sok") + msg(b"N" + b"\0" * 10), ProtocolError, "truncated challenge"),
        (
            msg(b"sok") + msg(b"N" + struct.pack(">QIIH", OTP_FLAGS, 1, 1, 3) + b"e1@h"),
            ProtocolError,
            "3-byte",
        ),
        (msg(b"sok") + challenge(b"e1"), ProtocolError, "not a node name"),
    ],
)
def test_initiator_rejects(data: bytes, error: type[Exception], match: str) -> None:
    hs = initiator(expected_peer="e1@h")
    with pytest.raises(error, match=match):
        hs.receive_data(data)
    assert hs.finished


def test_initiator_rejects_bad_ack() -> None:
    hs = initiator()
    hs.receive_data(msg(b"sok") + challenge(b"e1@h"))
    with pytest.raises(AuthenticationFailed, match="could not prove"):
        hs.receive_data(msg(b"a" + digest(b"other", OUR_CHALLENGE)))
    hs = initiator()
    hs.receive_data(msg(b"sok") + challenge(b"e1@h"))
    with pytest.raises(ProtocolError, match="17"):
        hs.receive_data(msg(b"a\0"))


def test_initiator_connection_lost_after_reply_means_wrong_cookie() -> None:
    hs = initiator(expected_peer="e1@h")
    hs.receive_data(msg(b"sok") + challenge(b"e1@h"))
    with pytest.raises(
        AuthenticationFailed, match=r"'e1@h'.*does not accept our cookie.*setcookie"
    ):
        hs.connection_lost()


def test_initiator_connection_lost_before_status() -> None:
    with pytest.raises(ConnectionFailed, match=r"'e1@h'.*without answering our name"):
        initiator(expected_peer="e1@h").connection_lost()


def test_old_challenge_from_otp23_acceptor_is_accepted() -> None:
    # An OTP 23/24 acceptor that saw no HANDSHAKE_23 (impossible with ours,
    # but allowed by the protocol) would answer with the old format.
    hs = initiator(require=int(DistFlags.EXTENDED_REFERENCES))
    hs.receive_data(
        msg(b"sok") + msg(b"n" + struct.pack(">HII", 5, OTP_FLAGS & 0xFFFFFFFF, 42) + b"e1@h")
    )
    assert hs.data_to_send()[-21:] == reply(OUR_CHALLENGE, digest(COOKIE, 42))[2:]


# --------------------------------------------------------------------------- both of ours


def pump(a: ErlDistHandshake, b: ErlDistHandshake) -> list[object]:
    events: list[object] = []
    for _ in range(10):
        for src, dst in ((a, b), (b, a)):
            data = src.data_to_send()
            if data:
                events += dst.receive_data(data)
    return events


def test_two_machines_connect_and_negotiate_flags() -> None:
    a = ErlDistHandshake(Role.CONNECT, name="a@h", cookie="c", creation=1, expected_peer="b@h")
    b = ErlDistHandshake(Role.ACCEPT, name="b@h", cookie="c", creation=2, flags=OTP_FLAGS)
    events = pump(a, b)
    assert [type(e) for e in events] == [Established, Established]
    assert a.negotiated == b.negotiated == DEFAULT_FLAGS
    assert a.peer is not None and a.peer.name == "b@h" and not a.peer.hidden
    assert b.peer is not None and b.peer.hidden


def test_two_machines_wrong_cookie_fails_on_both_sides() -> None:
    a = ErlDistHandshake(Role.CONNECT, name="a@h", cookie="c1", creation=1)
    b = ErlDistHandshake(Role.ACCEPT, name="b@h", cookie="c2", creation=2)
    with pytest.raises(AuthenticationFailed):
        pump(a, b)
    with pytest.raises(AuthenticationFailed, match="does not accept our cookie"):
        a.connection_lost()


# --------------------------------------------------------------------------- fuzz


def _transcript() -> bytes:
    return send_name(b"e1@127.0.0.1") + reply(THEIR_CHALLENGE, digest(COOKIE, OUR_CHALLENGE))


def _feed_only_our_errors(hs: ErlDistHandshake, chunks: list[bytes]) -> None:
    try:
        for chunk in chunks:
            hs.receive_data(chunk)
            hs.data_to_send()
        hs.connection_lost()
    except TrioActorsError:
        pass


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.binary(max_size=64), max_size=8))
def test_fuzz_acceptor_random_bytes(chunks: list[bytes]) -> None:
    _feed_only_our_errors(acceptor(), chunks)


@settings(max_examples=300)
@given(st.data())
def test_fuzz_acceptor_mutated_transcript(data: st.DataObject) -> None:
    raw = bytearray(_transcript())
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(raw)))
    hs = acceptor(decide=data.draw(st.sampled_from([lambda p: Status.OK, lambda p: Status.ALIVE])))
    _feed_only_our_errors(hs, [bytes(raw[:cut]), bytes(raw[cut:])])


@settings(max_examples=300)
@given(st.data())
def test_fuzz_initiator_mutated_answers(data: st.DataObject) -> None:
    raw = bytearray(msg(b"sok") + challenge(b"e1@h") + msg(b"a" + digest(COOKIE, OUR_CHALLENGE)))
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] = data.draw(st.integers(0, 255))
    _feed_only_our_errors(initiator(), [bytes(raw)])


# --------------------------------------------------------------------------- packets


def test_dist_decoder_splits_ticks_and_packets_across_chunks() -> None:
    dec = DistDecoder()
    stream = TICK + encode_packet(b"p\x83hello") + TICK
    events: list[Tick | DistPacket] = []
    for byte in stream:
        dec.feed(bytes([byte]))
        events += list(dec)
    assert events == [Tick(), DistPacket(b"p\x83hello"), Tick()]
    assert encode_packet(b"") == TICK and dec.buffered == 0


def test_dist_decoder_refuses_oversized_packet_before_buffering_it() -> None:
    dec = DistDecoder(max_size=10)
    dec.feed(struct.pack(">I", 11))
    with pytest.raises(FrameTooLarge, match="11 bytes exceeds the maximum of 10") as info:
        dec.next_event()
    assert isinstance(info.value, ProtocolError) and dec.max_size == 10


# --------------------------------------------------------------------------- sniffing


def test_identify_erlang_send_name_new_and_old() -> None:
    # What used to be logged as "frame of 1265152 bytes exceeds the maximum".
    assert struct.unpack_from(">I", send_name(b"e1@h"))[0] == 1265152
    data = send_name(b"e1@127.0.0.1")
    found = identify_peer(data)
    assert found.protocol is PeerProtocol.ERLANG_DIST and found.detail == "e1@127.0.0.1"
    assert "an Erlang node ('e1@127.0.0.1') dialled" in found.describe()
    old = identify_peer(old_send_name(b"old@h", 0x7FFD))
    assert old.protocol is PeerProtocol.ERLANG_DIST and old.detail == "old@h"
    # Only the start: the kind is known, the name not yet.
    assert identify_peer(data[:17]).protocol is PeerProtocol.ERLANG_DIST
    assert identify_peer(data[:17]).detail is None


def test_identify_trioactors_hello() -> None:
    hello = Handshake(Role.CONNECT, name="alpha", creation=1, cookie=b"k").data_to_send()
    found = identify_peer(hello)
    assert found.protocol is PeerProtocol.TRIOACTORS and "trioactors node" in found.describe()


def test_identify_real_tls_client_hello() -> None:
    ctx = ssl.create_default_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_hostname="example.org")
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    found = identify_peer(outgoing.read())
    assert found.protocol is PeerProtocol.TLS and "TLS" in found.describe()


@pytest.mark.parametrize(
    ("data", "protocol"),
    [
        (b"GET / HTTP/1.1\r\n", PeerProtocol.HTTP),
        (packet(b"zalpha"), PeerProtocol.EPMD),
        (packet(b"n"), PeerProtocol.EPMD),
        (b"", PeerProtocol.INCOMPLETE),
        (b"\x00", PeerProtocol.INCOMPLETE),
        (b"\x00\x13", PeerProtocol.INCOMPLETE),
        (b"\x00\x13N\x00", PeerProtocol.INCOMPLETE),
        (b"\x00\x0bn\x00", PeerProtocol.INCOMPLETE),
        (b"\x16\x03", PeerProtocol.INCOMPLETE),
        (b"GE", PeerProtocol.INCOMPLETE),
        (b"\x00\x00\x00\x06", PeerProtocol.INCOMPLETE),
        (b"\x16\x03\x01\x00\x10\x02", PeerProtocol.UNKNOWN),
        (b"\x00\x00\x00\x06\x83\x01", PeerProtocol.UNKNOWN),
        (b"\x00\x00\xff\xff\x84\x01", PeerProtocol.UNKNOWN),
        (b"\x00\x05Qxyzw", PeerProtocol.UNKNOWN),
        # The name length disagrees with the message length.
        (msg(b"N" + struct.pack(">QIH", 1, 1, 9) + b"e1@h"), PeerProtocol.UNKNOWN),
        # 'n' but not version 5: an EPMD NAMES_REQ with junk after it.
        (b"\x00\x03n\x00\x04", PeerProtocol.EPMD),
    ],
)
def test_identify_others(data: bytes, protocol: PeerProtocol) -> None:
    found = identify_peer(data)
    assert found.protocol is protocol
    assert found.describe("node 'a'")


# --------------------------------------------------------------------------- real erl


ERL_COOKIE = "erldist_cookie"
HOST = "127.0.0.1"
OUR_NAME = f"py@{HOST}"
ERL_NAME = f"e1@{HOST}"
#: erl ticks every TICKTIME/4 s and drops a connection silent for ~TICKTIME s.
TICKTIME = 4

# Runs in the erl node: prints nodeup/nodedown of every node (hidden too) and
# obeys one-line commands on stdin, answering on stdout.
ERL_SCRIPT = """
Self = self(),
spawn(fun() ->
    ok = net_kernel:monitor_nodes(true, [{node_type, all}]),
    Self ! subscribed,
    Mon = fun Mon() ->
        receive
            {nodeup, N, _} -> io:format("nodeup ~s~n", [N]);
            {nodedown, N, _} -> io:format("nodedown ~s~n", [N])
        end,
        Mon()
    end,
    Mon()
end),
receive subscribed -> ok end,
spawn(fun() ->
    Cmd = fun Cmd() ->
        case io:get_line("") of
            "nodes\\n" -> io:format("nodes ~w~n", [nodes(hidden)]);
            "connect " ++ Rest ->
                Node = list_to_atom(string:trim(Rest)),
                io:format("connect ~w~n", [net_kernel:connect_node(Node)]);
            "self\\n" -> io:format("self ~s~n", [node()]);
            "halt\\n" -> halt();
            eof -> halt();
            Other -> io:format("unknown ~p~n", [Other])
        end,
        Cmd()
    end,
    Cmd()
end),
io:format("ready~n").
"""


@pytest.fixture
async def epmd_port() -> AsyncIterator[int]:
    """A private real epmd on a free port."""
    async with private_epmd() as port:
        yield port


class ErlNode:
    """A real `erl` running ERL_SCRIPT: send commands, wait for output lines."""

    def __init__(self, proc: trio.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []  # everything erl printed, for failure messages
        self._unread: list[str] = []
        self._buf = b""

    async def expect(self, prefix: str) -> str:
        """The first line not yet expected that starts with `prefix` (waits
        for it). Lines that do not match stay for later calls."""
        assert self.proc.stdout is not None
        with trio.fail_after(30):
            while True:
                for line in self._unread:
                    if line.startswith(prefix):
                        self._unread.remove(line)
                        return line
                chunk = await self.proc.stdout.receive_some(4096)
                if not chunk:
                    raise AssertionError(f"erl exited waiting for {prefix!r}: {self.lines}")
                *lines, self._buf = (self._buf + chunk).split(b"\n")
                for raw in lines:
                    line = raw.decode(errors="replace").rstrip("\r")
                    self.lines.append(line)
                    self._unread.append(line)

    async def command(self, line: str, answer: str) -> str:
        assert self.proc.stdin is not None
        await self.proc.stdin.send_all(line.encode() + b"\n")
        return await self.expect(answer)


@asynccontextmanager
async def erl_node(
    epmd: int, cookie: str = ERL_COOKIE, name: str = ERL_NAME
) -> AsyncIterator[ErlNode]:
    proc = await trio.lowlevel.open_process(
        [
            "erl",
            "-name",
            name,
            "-setcookie",
            cookie,
            "-noshell",
            "-start_epmd",
            "false",
            "-kernel",
            "net_ticktime",
            str(TICKTIME),
            "-eval",
            ERL_SCRIPT,
        ],
        env=dict(os.environ, ERL_EPMD_PORT=str(epmd)),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    node = ErlNode(proc)
    try:
        await node.expect("ready")
        yield node
    finally:
        proc.kill()
        with trio.CancelScope(shield=True):
            await proc.wait()


async def epmd_request(port: int, body: bytes, want: int) -> tuple[trio.SocketStream, bytes]:
    stream = await trio.open_tcp_stream(HOST, port)
    await stream.send_all(packet(body))
    data = b""
    with trio.fail_after(10):
        while len(data) < want:
            chunk = await stream.receive_some(want - len(data))
            if not chunk:
                break
            data += chunk
    return stream, data


async def port_please(epmd: int, alive: str) -> int:
    stream, data = await epmd_request(epmd, b"z" + alive.encode(), 4)
    await stream.aclose()
    assert data[:2] == b"w\x00", f"epmd does not know {alive!r}: {data!r}"
    return int(struct.unpack_from(">H", data, 2)[0])


async def register(epmd: int, alive: str, port: int) -> trio.SocketStream:
    """Our name in epmd (ALIVE2_REQ, hidden node type 72, version 6 only).
    The registration lasts as long as the returned stream stays open."""
    name = alive.encode()
    body = struct.pack(">BHBBHHH", 120, port, 72, 0, 6, 6, len(name)) + name + b"\0\0"
    stream, data = await epmd_request(epmd, body, 2)
    assert data[:1] in (b"v", b"y") and data[1:2] == b"\x00", data
    return stream


async def handshake(stream: trio.SocketStream, hs: ErlDistHandshake) -> list[object]:
    """Drive `hs` over `stream` until it finishes; its events."""
    events: list[object] = []
    with trio.fail_after(30):
        while True:
            if out := hs.data_to_send():
                await stream.send_all(out)
            if hs.finished:
                return events
            data = await stream.receive_some(65536)
            if not data:
                hs.connection_lost()
                raise AssertionError("connection_lost() should have raised")
            events += hs.receive_data(data)


async def count_ticks(
    stream: trio.SocketStream, decoder: DistDecoder, ticks: int, *, answer: bool = True
) -> list[bytes]:
    """Read until `ticks` ticks came, answering each with a tick; the packets seen."""
    packets: list[bytes] = []
    seen = 0
    with trio.fail_after(TICKTIME * (ticks + 2)):
        while True:
            for event in decoder:
                if isinstance(event, Tick):
                    seen += 1
                    if answer:
                        await stream.send_all(TICK)
                else:
                    packets.append(event.body)
            if seen >= ticks:
                return packets
            data = await stream.receive_some(65536)
            if not data:
                raise ConnectionFailed(f"erl closed the connection after {seen} ticks")
            decoder.feed(data)


@needs_erlang
async def test_we_dial_real_erl_and_stay_connected_across_ticks(epmd_port: int) -> None:
    async with erl_node(epmd_port) as erl:
        port = await port_please(epmd_port, "e1")
        stream = await trio.open_tcp_stream(HOST, port)
        async with stream:
            hs = ErlDistHandshake(
                Role.CONNECT,
                name=OUR_NAME,
                cookie=ERL_COOKIE,
                creation=0x5EED,
                expected_peer=ERL_NAME,
            )
            [event] = await handshake(stream, hs)
            assert isinstance(event, Established)
            assert event.peer.name == ERL_NAME and not event.peer.hidden
            assert event.peer.flags & REQUIRED_FLAGS == REQUIRED_FLAGS
            assert event.flags == DEFAULT_FLAGS
            await erl.expect(f"nodeup {OUR_NAME}")
            decoder = DistDecoder()
            decoder.feed(hs.trailing_data())
            # Twice the tick timeout: erl would have dropped a silent peer by then.
            await count_ticks(stream, decoder, ticks=2 * TICKTIME + 1)
            assert await erl.command("nodes", "nodes ") == f"nodes ['{OUR_NAME}']"
        await erl.expect(f"nodedown {OUR_NAME}")


@needs_erlang
async def test_real_erl_drops_us_when_ticks_go_unanswered(epmd_port: int) -> None:
    # The tick test above proves something only because this one fails.
    async with erl_node(epmd_port) as erl:
        stream = await trio.open_tcp_stream(HOST, await port_please(epmd_port, "e1"))
        async with stream:
            hs = ErlDistHandshake(Role.CONNECT, name=OUR_NAME, cookie=ERL_COOKIE, creation=3)
            await handshake(stream, hs)
            with pytest.raises(ConnectionFailed, match="erl closed the connection"):
                await count_ticks(stream, DistDecoder(), ticks=2 * TICKTIME + 1, answer=False)
            await erl.expect(f"nodedown {OUR_NAME}")


@needs_erlang
async def test_real_erl_dials_us(epmd_port: int) -> None:
    listeners = await trio.open_tcp_listeners(0, host=HOST)
    listener = listeners[0]
    port = listener.socket.getsockname()[1]
    first: list[bytes] = []
    result: list[object] = []

    async def accept_one() -> None:
        stream = await listener.accept()
        async with stream:
            data = await stream.receive_some(65536)
            first.append(data)
            hs = ErlDistHandshake(Role.ACCEPT, name=OUR_NAME, cookie=ERL_COOKIE, creation=0xC0FFEE)
            result.extend(hs.receive_data(data))
            result.extend(await handshake(stream, hs))
            decoder = DistDecoder()
            decoder.feed(hs.trailing_data())
            # Until the test is done with erl and cancels us.
            await count_ticks(stream, decoder, ticks=1000)

    async with erl_node(epmd_port) as erl, listener:
        registration = await register(epmd_port, "py", port)
        async with registration, trio.open_nursery() as nursery:
            nursery.start_soon(accept_one)
            assert await erl.command(f"connect {OUR_NAME}", "connect") == "connect true"
            await erl.expect(f"nodeup {OUR_NAME}")
            assert await erl.command("nodes", "nodes ") == f"nodes ['{OUR_NAME}']"
            nursery.cancel_scope.cancel()
    [event] = result
    assert isinstance(event, Established) and event.peer.name == ERL_NAME
    assert event.peer.version == 6 and event.flags & REQUIRED_FLAGS == REQUIRED_FLAGS
    # What erl sent first is recognised as Erlang, name and all.
    found = identify_peer(first[0])
    assert found.protocol is PeerProtocol.ERLANG_DIST and found.detail == ERL_NAME


@needs_erlang
async def test_wrong_cookie_we_dial_real_erl(epmd_port: int) -> None:
    async with erl_node(epmd_port) as erl:
        stream = await trio.open_tcp_stream(HOST, await port_please(epmd_port, "e1"))
        async with stream:
            hs = ErlDistHandshake(
                Role.CONNECT,
                name=OUR_NAME,
                cookie="not_the_cookie",
                creation=4,
                expected_peer=ERL_NAME,
            )
            with pytest.raises(AuthenticationFailed, match="does not accept our cookie"):
                await handshake(stream, hs)
        assert await erl.command("nodes", "nodes ") == "nodes []"


@needs_erlang
async def test_wrong_cookie_real_erl_dials_us(epmd_port: int) -> None:
    listeners = await trio.open_tcp_listeners(0, host=HOST)
    listener = listeners[0]
    port = listener.socket.getsockname()[1]
    failures: list[BaseException] = []

    async def accept_one() -> None:
        stream = await listener.accept()
        async with stream:
            hs = ErlDistHandshake(Role.ACCEPT, name=OUR_NAME, cookie="not_the_cookie", creation=5)
            try:
                await handshake(stream, hs)
            except AuthenticationFailed as exc:
                failures.append(exc)

    async with erl_node(epmd_port) as erl, listener:
        registration = await register(epmd_port, "py", port)
        async with registration, trio.open_nursery() as nursery:
            nursery.start_soon(accept_one)
            assert await erl.command(f"connect {OUR_NAME}", "connect") == "connect false"
    [exc] = failures
    assert f"{ERL_NAME!r} failed the cookie challenge" in str(exc)


@needs_erlang
async def test_real_erl_names_us_when_we_ask_for_a_dynamic_name(epmd_port: int) -> None:
    async with erl_node(epmd_port) as erl:
        stream = await trio.open_tcp_stream(HOST, await port_please(epmd_port, "e1"))
        async with stream:
            hs = ErlDistHandshake(
                Role.CONNECT, name=f"@{HOST}", cookie=ERL_COOKIE, creation=0, expected_peer=ERL_NAME
            )
            named, established = await handshake(stream, hs)
            assert isinstance(named, Named) and isinstance(established, Established)
            assert named.name.endswith(f"@{HOST}") and hs.name == named.name
            assert established.flags & DistFlags.NAME_ME
            await erl.expect(f"nodeup {named.name}")


@needs_erlang
async def test_we_name_real_erl_that_asks_for_a_dynamic_name(epmd_port: int) -> None:
    listeners = await trio.open_tcp_listeners(0, host=HOST)
    listener = listeners[0]
    port = listener.socket.getsockname()[1]
    result: list[object] = []

    async def accept_one() -> None:
        stream = await listener.accept()
        async with stream:
            hs = ErlDistHandshake(
                Role.ACCEPT,
                name=OUR_NAME,
                cookie=ERL_COOKIE,
                creation=6,
                name_peer=lambda host: "given",
            )
            result.extend(await handshake(stream, hs))
            await count_ticks(stream, DistDecoder(), ticks=1000)

    # `-name undefined@host`: the first node it connects to names it.
    async with erl_node(epmd_port, name=f"undefined@{HOST}") as erl, listener:
        registration = await register(epmd_port, "py", port)
        async with registration, trio.open_nursery() as nursery:
            nursery.start_soon(accept_one)
            assert await erl.command(f"connect {OUR_NAME}", "connect") == "connect true"
            assert await erl.command("self", "self ") == f"self given@{HOST}"
            nursery.cancel_scope.cancel()
    [event] = result
    assert isinstance(event, Established) and event.peer.name == f"given@{HOST}"
