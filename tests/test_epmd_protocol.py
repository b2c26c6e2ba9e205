"""EPMD wire protocols without sockets: Erlang parsing/encoding, native records,
the protocol-detection rule, and garbage input (hypothesis)."""

from __future__ import annotations

import struct

import pytest
from helpers import packet
from hypothesis import given, settings
from hypothesis import strategies as st

import trioactors as ta
from trioactors.wire import epmd_erlang as erl
from trioactors.wire import epmd_native as nat
from trioactors.wire.cbor import dumps
from trioactors.wire.epmd_protocol import (
    ERLANG,
    NATIVE,
    NativeHello,
    ServerConnection,
    detect_protocol,
)
from trioactors.wire.framing import encode_frame


def alive2_body(
    name: bytes, port: int = 5000, *, high: int = 6, low: int = 5, extra: bytes = b""
) -> bytes:
    return (
        struct.pack(">BHBBHHH", erl.ALIVE2_REQ, port, 77, 0, high, low, len(name))
        + name
        + struct.pack(">H", len(extra))
        + extra
    )


def feed_all(data: bytes, chunk: int = 0) -> list[object]:
    conn = ServerConnection()
    events: list[object] = []
    step = chunk or len(data) or 1
    for i in range(0, len(data), step):
        conn.feed(data[i : i + step])
        while more := conn.events():
            events += more
    return events


# --------------------------------------------------------------------------- Erlang requests


def test_alive2_request_parses_every_field() -> None:
    req = erl.parse_request(alive2_body(b"x\xc3\xa9", 4242, high=6, low=5, extra=b"\x01\x02"))
    assert req == erl.Alive2Req(4242, 77, 0, 6, 5, b"x\xc3\xa9", b"\x01\x02")
    assert erl.alive2_refusal(req) is None


def test_alive2_request_trailing_bytes_are_ignored_like_epmd() -> None:
    req = erl.parse_request(alive2_body(b"node") + b"junk")
    assert isinstance(req, erl.Alive2Req) and req.name == b"node" and req.extra == b""


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "empty"),
        (b"x" + b"\x00" * 12, "too small"),  # 13 bytes: epmd wants more than 13
        (struct.pack(">BHBBHHH", 120, 1, 77, 0, 6, 5, 50) + b"ab\x00\x00", "name size"),
        (struct.pack(">BHBBHHH", 120, 1, 77, 0, 6, 5, 2) + b"ab\x00\x09", "extra info"),
        (alive2_body(b"a\x00b"), "NUL"),
        (b"Q", "unknown request tag 81"),
        (b"z", "too small for PORT2"),
        (b"za\x00b", "NUL"),
        (b"z\xff\xfe", "invalid node name"),
        (b"z" + b"a" * 256, "invalid node name"),
        (b"s", "too small for STOP"),
    ],
)
def test_malformed_requests_are_protocol_errors(body: bytes, reason: str) -> None:
    with pytest.raises(ta.ProtocolError, match=reason):
        erl.parse_request(body)


def test_alive2_refusals_match_epmd() -> None:
    assert "too long" in (erl.alive2_refusal(erl.parse_request(alive2_body(b"a" * 256))) or "")  # type: ignore[arg-type]
    assert erl.alive2_refusal(erl.parse_request(alive2_body(b"a" * 255))) is None  # type: ignore[arg-type]
    # 255 characters of 4 bytes each is still a valid name (epmd's MAXSYMLEN).
    four = "\U0001f600".encode()
    assert erl.alive2_refusal(erl.parse_request(alive2_body(four * 255))) is None  # type: ignore[arg-type]
    bad = erl.parse_request(alive2_body(b"\xc0\xafoverlong"))
    assert erl.alive2_refusal(bad) == "invalid node name encoding"  # type: ignore[arg-type]
    surrogate = erl.parse_request(alive2_body(b"\xed\xa0\x80"))
    assert erl.alive2_refusal(surrogate) == "invalid node name encoding"  # type: ignore[arg-type]
    long_extra = erl.parse_request(alive2_body(b"n", extra=b"e" * 1021))
    assert "extra" in (erl.alive2_refusal(long_extra) or "")  # type: ignore[arg-type]


def test_port2_request_tolerates_one_trailing_nul() -> None:
    assert erl.parse_request(b"zalpha\x00") == erl.Port2Req("alpha")
    assert erl.parse_request(b"zalpha") == erl.Port2Req("alpha")


def test_stop_request_name_ends_at_nul() -> None:
    assert erl.parse_request(b"sfoo\x00bar") == erl.StopReq(b"foo")


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\x00\x00", "invalid packet size \\(0\\)"),
        (b"\x0b\xf2", "invalid packet size \\(3058\\)"),
        (b"GET / HTTP/1.1\r\n\r\n", "invalid packet size"),
        (b"\x00\x01nX", "expected 1"),
    ],
)
def test_request_parser_refuses_bad_sizes_before_the_body(data: bytes, reason: str) -> None:
    parser = erl.ErlangRequestParser()
    with pytest.raises(ta.ProtocolError, match=reason):
        parser.feed(data)


def test_largest_accepted_request_size() -> None:
    parser = erl.ErlangRequestParser()
    parser.feed(b"\x0b\xf1")  # 3057: epmd's INBUF_SIZE - 3
    assert parser.request() is None


def test_request_parser_byte_by_byte() -> None:
    data = packet(alive2_body(b"slow"))
    parser = erl.ErlangRequestParser()
    for i, byte in enumerate(data):
        assert parser.request() is None, i
        parser.feed(bytes((byte,)))
    assert isinstance(parser.request(), erl.Alive2Req)


# --------------------------------------------------------------------------- Erlang responses


def test_alive2_responses_exact_bytes() -> None:
    assert erl.encode_alive2_resp(True, 0x01020304, 6) == b"v\x00\x01\x02\x03\x04"
    assert erl.encode_alive2_resp(True, 3, 5) == b"y\x00\x00\x03"
    assert erl.encode_alive2_resp(False, 7, 6) == b"v\x01\x00\x00\x00\x63"
    assert erl.encode_alive2_resp(False, 7, 5) == b"y\x01\x00\x63"
    assert erl.parse_alive2_resp(b"v\x00\x01\x02\x03\x04") == (True, 0x01020304)
    assert erl.parse_alive2_resp(b"y\x01\x00\x63") == (False, 99)
    assert erl.parse_alive2_resp(b"v\x00\x01") is None


def test_port2_response_round_trip_keeps_extra_exactly() -> None:
    fields = erl.ErlangNodeFields(77, 0, 6, 5, b"\x00extra\xff")
    data = erl.encode_port2_resp("né", 4000, fields)
    assert data[:12] == b"w\x00\x0f\xa0M\x00\x00\x06\x00\x05\x00\x03"
    assert data[12:15] == "né".encode()
    assert data[15:] == b"\x00\x07\x00extra\xff"
    assert erl.parse_port2_resp(data) == erl.Port2Result("né", 4000, fields)
    assert erl.parse_port2_resp(erl.PORT2_NOT_FOUND) is None
    with pytest.raises(ta.ProtocolError):
        erl.parse_port2_resp(data[:-1])


def test_names_and_dump_lines_exact_bytes() -> None:
    assert erl.encode_names_header(4369) == b"\x00\x00\x11\x11"
    assert erl.encode_names_line("a", 5) == b"name a at port 5\n"
    assert (
        erl.encode_dump_line("a", 5, 7, active=True)
        == b"active name     <a> at port 5, fd = 7\n\x00"
    )
    assert (
        erl.encode_dump_line("a", 5, 7, active=False)
        == b"old/unused name <a>, port = 5, fd = 7 \n\x00"
    )
    data = erl.names_response(4369, [("a", 1), ("b c", 2)])
    assert erl.parse_names_resp(data) == (4369, [("a", 1), ("b c", 2)])


def test_client_requests_exact_bytes() -> None:
    assert erl.encode_port2_req("ab") == b"\x00\x03zab"
    assert (
        erl.encode_alive2_req("n", 9) == b"\x00\x0ex\x00\x09H\x00\x00\x06\x00\x05\x00\x01n\x00\x00"
    )
    with pytest.raises(ValueError):
        erl.encode_request(b"")


# --------------------------------------------------------------------------- native


NODE = nat.NodeInfo(
    "alpha",
    "127.0.0.1",
    5000,
    capabilities=("tls",),
    metadata={"role": "web"},
    creation=12,
)
ERL_NODE = nat.NodeInfo(
    "beam",
    "127.0.0.1",
    6000,
    kind="erlang",
    protocol_version=0,
    creation=5,
    erlang=erl.ErlangNodeFields(77, 0, 6, 5, b"x"),
)

MESSAGES = [
    nat.Register(1, "alpha", "h", 1, 1, ("a",), {"k": "v"}, b"tok"),
    nat.Unregister(2, "alpha"),
    nat.Lookup(3, "alpha"),
    nat.ListNodes(4),
    nat.Ping(5),
    nat.KeepAlive(6, ("a", "b")),
    nat.Registered(1, NODE),
    nat.Unregistered(2, True),
    nat.Found(3, ERL_NODE),
    nat.Found(3, None),
    nat.NodeList(4, (NODE, ERL_NODE)),
    nat.Pong(5),
    nat.Alive(6, ("b",)),
    nat.Refused(7, "name_taken", "taken"),
]


@pytest.mark.parametrize("msg", MESSAGES, ids=lambda m: type(m).__name__)
def test_native_messages_round_trip(msg: object) -> None:
    frame = nat.encode_message(msg)  # type: ignore[arg-type]
    (size,) = struct.unpack(">I", frame[:4])
    assert size == len(frame) - 4
    assert nat.decode_message(frame[4:]) == msg


def test_native_wire_is_plain_cbor_arrays() -> None:
    # The documented layout, written by hand: [kind, id, fields...].
    body = dumps(["lookup", 9, "alpha"])
    assert nat.decode_message(body) == nat.Lookup(9, "alpha")
    assert nat.encode_message(nat.Lookup(9, "alpha")) == encode_frame(body)


def test_node_info_ignores_unknown_keys() -> None:
    wire = NODE.to_wire() | {"future": [1, 2]}
    assert nat.NodeInfo.from_wire(wire) == NODE
    assert hash(NODE) == hash(nat.NodeInfo.from_wire(NODE.to_wire()))


@pytest.mark.parametrize(
    "value",
    [
        ["lookup", 1],
        ["lookup", 1, ""],
        ["lookup", 1, "a\x00b"],
        ["lookup", 1, "a" * 256],
        ["lookup", -1, "a"],
        ["lookup", "1", "a"],
        ["nope", 1],
        [1, 1],
        {"kind": "ping"},
        ["register", 1, "a", "h", 70000, 1, [], {}, b""],
        ["register", 1, "a", "h", 1, 1, [], {"k": 1}, b""],
        ["register", 1, "a", "h", 1, 1, "caps", {}, b""],
        ["ping", 1, "extra"],
        ["keepalive", 1, "a"],
        ["unregistered", 1, "yes"],
    ],
)
def test_native_malformed_messages(value: object) -> None:
    with pytest.raises(ta.ProtocolError):
        nat.decode_message(dumps(value))


def test_native_preamble() -> None:
    assert nat.encode_preamble() == b"TAEPMD\x00\x01"
    assert nat.parse_preamble(b"TAEPMD\x00\x07") == 7
    for bad in (b"TAEPMX\x00\x01", b"TAEPMD\x00\x00", b"TAEPMD\x00"):
        with pytest.raises(ta.ProtocolError):
            nat.parse_preamble(bad)


# --------------------------------------------------------------------------- detection


def test_detection_rule_cannot_misread_an_erlang_request() -> None:
    assert detect_protocol(b"T") is None
    assert detect_protocol(b"TA") == NATIVE
    assert detect_protocol(b"\x00\x01") == ERLANG
    # b"TA" as an Erlang length is far beyond what epmd accepts.
    (as_length,) = struct.unpack(">H", b"TA")
    assert as_length + 2 >= erl.INBUF_SIZE


@pytest.mark.parametrize("chunk", [0, 1, 3])
def test_server_connection_native_stream(chunk: int) -> None:
    data = nat.encode_preamble() + b"".join(
        nat.encode_message(m) for m in (nat.Ping(1), nat.Lookup(2, "a"))
    )
    assert feed_all(data, chunk) == [NativeHello(1), nat.Ping(1), nat.Lookup(2, "a")]


@pytest.mark.parametrize("chunk", [0, 1])
def test_server_connection_erlang_request(chunk: int) -> None:
    assert feed_all(packet(b"n"), chunk) == [erl.NamesReq()]


def test_server_connection_refuses_more_after_an_erlang_request() -> None:
    conn = ServerConnection()
    conn.feed(packet(alive2_body(b"n")))
    assert len(conn.events()) == 1
    with pytest.raises(ta.ProtocolError, match="more than expected"):
        conn.feed(b"!")


def test_server_connection_refuses_responses_and_bad_preambles() -> None:
    with pytest.raises(ta.ProtocolError, match="not a request"):
        feed_all(nat.encode_preamble() + nat.encode_message(nat.Pong(1)))
    with pytest.raises(ta.ProtocolError, match="preamble"):
        feed_all(b"TAX")
    with pytest.raises(ta.FrameTooLarge):
        feed_all(nat.encode_preamble() + struct.pack(">I", nat.MAX_REQUEST_SIZE + 1))


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300), st.integers(min_value=1, max_value=17))
def test_random_bytes_give_events_or_protocol_errors(data: bytes, chunk: int) -> None:
    try:
        events = feed_all(data, chunk)
    except ta.ProtocolError:
        return
    for ev in events:
        assert isinstance(ev, NativeHello | nat.NativeRequest | erl.ErlangRequest)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_random_native_frames_give_requests_or_protocol_errors(body: bytes) -> None:
    try:
        feed_all(nat.encode_preamble() + encode_frame(body))
    except ta.ProtocolError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=1, max_size=100))
def test_random_erlang_bodies(body: bytes) -> None:
    try:
        req = erl.parse_request(body)
    except ta.ProtocolError:
        return
    if isinstance(req, erl.Alive2Req):
        erl.alive2_refusal(req)


@settings(max_examples=200, deadline=None)
@given(
    st.text(min_size=1, max_size=40).filter(lambda s: "\x00" not in s),
    st.dictionaries(st.text(max_size=10), st.text(max_size=10), max_size=5),
    st.lists(st.text(max_size=8), max_size=4),
)
def test_register_round_trip_property(name: str, meta: dict[str, str], caps: list[str]) -> None:
    msg = nat.Register(1, name, "h", 80, 1, tuple(caps), meta, b"t")
    assert nat.decode_message(nat.encode_message(msg)[4:]) == msg
