"""The node handshake state machine, without sockets."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import trioactors as ta
from trioactors.wire import handshake as hs
from trioactors.wire.cbor import dumps
from trioactors.wire.framing import encode_frame
from trioactors.wire.handshake import Handshake, Role
from trioactors.wire.names import parse_node


def _pair(
    a_cookie: bytes = b"secret",
    b_cookie: bytes = b"secret",
    *,
    a: str = "alpha",
    b: str = "beta",
    expected: str | None = "beta",
) -> tuple[Handshake, Handshake]:
    conn = Handshake(
        Role.CONNECT,
        name=a,
        creation=1,
        cookie=a_cookie,
        expected_peer=None if expected is None else parse_node(expected),
    )
    acc = Handshake(Role.ACCEPT, name=b, creation=7, cookie=b_cookie)
    return conn, acc


def _run(conn: Handshake, acc: Handshake) -> tuple[list[object], list[object]]:
    """Shuttle bytes until quiet, accepting every PeerHello."""
    c_events: list[object] = []
    a_events: list[object] = []
    for _ in range(10):
        out = conn.data_to_send()
        if out:
            for ev in acc.receive_data(out):
                a_events.append(ev)
                if isinstance(ev, hs.PeerHello):
                    acc.accept()
        back = acc.data_to_send()
        if back:
            c_events.extend(conn.receive_data(back))
        if not out and not back:
            break
    return c_events, a_events


def test_successful_handshake_both_sides_established() -> None:
    conn, acc = _pair()
    c_events, a_events = _run(conn, acc)
    assert isinstance(a_events[0], hs.PeerHello)
    assert a_events[0].peer == hs.PeerInfo("alpha", 1, hs.PROTOCOL_VERSION)
    assert isinstance(a_events[-1], hs.Established)
    assert c_events == [hs.Established(hs.PeerInfo("beta", 7, hs.PROTOCOL_VERSION))]
    assert conn.established and acc.established


def test_cookie_never_on_the_wire() -> None:
    cookie = b"super-secret-cookie-value"
    conn, acc = _pair(cookie, cookie)
    wire = bytearray()
    for _ in range(4):
        out = conn.data_to_send()
        wire += out
        for ev in acc.receive_data(out):
            if isinstance(ev, hs.PeerHello):
                acc.accept()
        back = acc.data_to_send()
        wire += back
        conn.receive_data(back)
    assert conn.established
    assert cookie not in wire


def test_wrong_cookie_connector_raises_acceptor_refuses() -> None:
    conn, acc = _pair(b"right", b"wrong")
    acc.receive_data(conn.data_to_send())
    acc.accept()
    conn.receive_data(acc.data_to_send())
    with pytest.raises(ta.AuthenticationFailed, match="failed the cookie challenge"):
        acc.receive_data(conn.data_to_send())
    assert not acc.established
    refusal = acc.data_to_send()
    with pytest.raises(ta.AuthenticationFailed, match="wrong cookie"):
        conn.receive_data(refusal)
    assert not conn.established


def test_acceptor_without_cookie_cannot_fake_the_ack() -> None:
    conn, acc = _pair(b"right", b"right")
    acc.receive_data(conn.data_to_send())
    acc.accept()
    conn.receive_data(acc.data_to_send())
    acc.receive_data(conn.data_to_send())
    # A forged ack (made with another cookie) is refused by the connector.
    forged = hs.RECORDS.frame(hs._CODEC, hs.ChallengeAck(b"\0" * 32))
    with pytest.raises(ta.AuthenticationFailed):
        conn.receive_data(forged)


def test_replayed_reply_fails_on_a_new_connection() -> None:
    conn, acc = _pair()
    acc.receive_data(conn.data_to_send())
    acc.accept()
    conn.receive_data(acc.data_to_send())
    reply = conn.data_to_send()
    acc.receive_data(reply)
    assert acc.established
    # A recorded exchange replayed against a fresh acceptor (new challenge).
    acc2 = Handshake(Role.ACCEPT, name="beta", creation=7, cookie=b"secret")
    conn2 = Handshake(Role.CONNECT, name="alpha", creation=1, cookie=b"x")
    acc2.receive_data(conn2.data_to_send())
    acc2.accept()
    acc2.data_to_send()
    with pytest.raises(ta.AuthenticationFailed):
        acc2.receive_data(reply)


def test_reflection_of_the_acceptor_digest_fails() -> None:
    # The connector's digest cannot be used as the acceptor's (role is bound in).
    conn, acc = _pair()
    acc.receive_data(conn.data_to_send())
    acc.accept()
    conn.receive_data(acc.data_to_send())
    reply = hs.RECORDS.decode(hs._CODEC, conn.data_to_send()[4:])
    with pytest.raises(ta.AuthenticationFailed):
        conn.receive_data(hs.RECORDS.frame(hs._CODEC, hs.ChallengeAck(reply.digest)))


def test_same_name_refused() -> None:
    conn, acc = _pair(a="beta", b="beta", expected=None)
    with pytest.raises(ta.ConnectionFailed, match="itself"):
        acc.receive_data(conn.data_to_send())


def test_bad_name_or_creation_is_a_protocol_error() -> None:
    for hello, what in [
        (hs.Hello(hs.PROTOCOL_VERSION, "alpha", 2**40), "creation"),
        (hs.Hello(hs.PROTOCOL_VERSION, "al\npha", 1), "invalid node name"),
        (hs.Hello(hs.PROTOCOL_VERSION, "", 1), "invalid node name"),
    ]:
        acc = Handshake(Role.ACCEPT, name="beta", creation=7, cookie=b"secret")
        with pytest.raises(ta.ProtocolError, match=what):
            acc.receive_data(hs.RECORDS.frame(hs._CODEC, hello))


def test_version_mismatch_refused() -> None:
    forged = hs.RECORDS.frame(hs._CODEC, hs.Hello(99, "alpha", 1))
    acc = Handshake(Role.ACCEPT, name="beta", creation=7, cookie=b"secret")
    with pytest.raises(ta.ConnectionFailed, match="version 99"):
        acc.receive_data(forged)
    conn = Handshake(Role.CONNECT, name="alpha", creation=1, cookie=b"secret")
    conn.data_to_send()
    with pytest.raises(ta.ConnectionFailed, match="version"):
        conn.receive_data(acc.data_to_send())


def test_a_node_of_the_first_protocol_version_is_told_so() -> None:
    # Version 1 (node ids in pids) sent [1, 1, name, node_id, incarnation]:
    # a different shape, still answered with the version, not a parse error.
    old = encode_frame(dumps([1, 1, "alpha", 12345, 1]))
    acc = Handshake(Role.ACCEPT, name="beta", creation=7, cookie=b"secret")
    with pytest.raises(ta.ConnectionFailed, match="version 1, this node speaks 2"):
        acc.receive_data(old)
    refusal = hs.RECORDS.decode(hs._CODEC, acc.data_to_send()[4:])
    assert refusal == hs.Refuse("version", refusal.detail) and "version 1" in refusal.detail


def test_a_direct_address_accepts_the_full_name() -> None:
    # Dialled as 'beta@h2:5000': a node calling itself 'beta@h2' is the one.
    conn = Handshake(
        Role.CONNECT,
        name="alpha",
        creation=1,
        cookie=b"secret",
        expected_peer=parse_node("beta@h2:5000"),
    )
    acc = Handshake(Role.ACCEPT, name="beta@h2", creation=7, cookie=b"secret")
    c_events, _ = _run(conn, acc)
    assert c_events == [hs.Established(hs.PeerInfo("beta@h2", 7, hs.PROTOCOL_VERSION))]


def test_wrong_node_answers() -> None:
    conn, acc = _pair(expected="gamma")
    acc.receive_data(conn.data_to_send())
    acc.accept()
    with pytest.raises(ta.ConnectionFailed, match="'beta' answered"):
        conn.receive_data(acc.data_to_send())


@pytest.mark.parametrize("reason", [hs.REFUSE_SIMULTANEOUS, hs.REFUSE_DUPLICATE])
def test_benign_refusal_is_an_event(reason: str) -> None:
    conn, acc = _pair()
    acc.receive_data(conn.data_to_send())
    acc.refuse(reason, "already connected")
    assert conn.receive_data(acc.data_to_send()) == [hs.Refused(reason, "already connected")]
    assert not conn.established


def test_trailing_node_traffic_is_handed_over() -> None:
    conn, acc = _pair()
    acc.receive_data(conn.data_to_send())
    acc.accept()
    conn.receive_data(acc.data_to_send())
    reply = conn.data_to_send()
    extra = encode_frame(b"\x01\x02") + encode_frame(b"x" * 10_000)[:100]
    acc.receive_data(reply + extra)
    assert acc.established
    assert acc.trailing_data() == extra  # oversize for the handshake, fine for traffic
    conn.receive_data(acc.data_to_send() + b"\0\0\0\0")
    assert conn.established and conn.trailing_data() == b"\0\0\0\0"


def test_oversized_handshake_frame() -> None:
    acc = Handshake(Role.ACCEPT, name="beta", creation=7, cookie=b"secret")
    with pytest.raises(ta.FrameTooLarge):
        acc.receive_data(b"\x7f\xff\xff\xff")


def test_out_of_order_frame() -> None:
    acc = Handshake(Role.ACCEPT, name="beta", creation=7, cookie=b"secret")
    with pytest.raises(ta.ProtocolError, match="unexpected ChallengeAck"):
        acc.receive_data(hs.RECORDS.frame(hs._CODEC, hs.ChallengeAck(b"x")))
    with pytest.raises(ta.ProtocolError):
        acc.receive_data(b"")  # a failed handshake stays failed


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_fuzz_acceptor_garbage(data: bytes) -> None:
    acc = Handshake(Role.ACCEPT, name="beta", creation=7, cookie=b"secret")
    try:
        for ev in acc.receive_data(data):
            if isinstance(ev, hs.PeerHello):
                acc.accept()
    except ta.TrioActorsError:
        return
    assert not acc.established


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_fuzz_connector_garbage(data: bytes) -> None:
    conn = Handshake(Role.CONNECT, name="alpha", creation=1, cookie=b"secret")
    try:
        conn.receive_data(data)
    except ta.TrioActorsError:
        return
    assert not conn.established


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=20))
def test_fuzz_chunking_of_a_valid_exchange(cuts: list[int]) -> None:
    """However the bytes are split, the handshake completes."""
    conn, acc = _pair()
    sizes = itertools.cycle(cuts)

    def feed(machine: Handshake, data: bytes) -> list[object]:
        events: list[object] = []
        while data:
            n = next(sizes)
            events += machine.receive_data(data[:n])
            data = data[n:]
        return events

    for ev in feed(acc, conn.data_to_send()):
        if isinstance(ev, hs.PeerHello):
            acc.accept()
    feed(conn, acc.data_to_send())
    assert feed(acc, conn.data_to_send())[-1] == hs.Established(conn_info := acc.peer)  # type: ignore[arg-type]
    assert conn_info is not None
    assert feed(conn, acc.data_to_send())[-1] == hs.Established(conn.peer)  # type: ignore[arg-type]
    assert conn.established and acc.established


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=200), st.integers(min_value=0, max_value=255))
def test_fuzz_bit_flip_in_exchange(pos: int, flip: int) -> None:
    """A tampered byte anywhere either fails cleanly or leaves a sound result."""
    conn, acc = _pair()
    wire = conn.data_to_send()
    try:
        for ev in acc.receive_data(wire):
            if isinstance(ev, hs.PeerHello):
                acc.accept()
        conn.receive_data(acc.data_to_send())
        reply = bytearray(conn.data_to_send())
        if flip and pos < len(reply):
            reply[pos] ^= flip
        acc.receive_data(bytes(reply))
    except ta.TrioActorsError:
        assert not acc.established
        return
    # Without an error the only tampering left is a longer length header: the
    # acceptor then waits for bytes that never come, and stays unauthenticated.
    assert acc.established == (not flip or pos >= len(reply))
