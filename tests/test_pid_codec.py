"""trioactors.wire.terms and trioactors.wire.cbor: unit and property tests."""

from __future__ import annotations

import datetime
import decimal
import struct
import uuid
from typing import Any

import attrs
import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import trioactors as ta
from trioactors.wire.cbor import (
    TAG_MESSAGE,
    TAG_PID,
    TAG_REF,
    MessageCodec,
    MessageRegistry,
    dumps,
    loads,
)
from trioactors.wire.framing import FrameDecoder, encode_frame
from trioactors.wire.terms import Pid, Ref

u32 = st.integers(min_value=0, max_value=2**32 - 1)
u64 = st.integers(min_value=0, max_value=2**64 - 1)
node_names = st.sampled_from(["alpha", "beta", "nonode@nohost", "e@host.example"]) | st.text(
    min_size=1, max_size=20
)
pids = st.builds(Pid, node_names, u64, u64, u64)
refs = st.builds(Ref, node_names, u64, st.lists(u32, min_size=1, max_size=5).map(tuple))

#: What `dumps`/`loads` carry (EPMD and handshake records): plain CBOR data.
plain = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text()
    | st.binary(),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=5), children, max_size=5)
    ),
    max_leaves=30,
)

#: What messages carry between nodes: plain data plus tuples, pids and refs.
messages = st.recursive(
    plain | pids | refs,
    lambda children: (
        st.lists(children, max_size=5)
        | st.tuples(children, children)
        | st.dictionaries(st.text(max_size=5), children, max_size=5)
    ),
    max_leaves=30,
)


# ------------------------------------------------------------------ pid


def test_pid_and_ref_display() -> None:
    pid = Pid("alpha", 12, 0, 7)
    assert str(pid) == "<alpha.12.0>" and repr(pid) == "Pid('alpha', 12, 0, 7)"
    assert Pid("alpha", 12) == Pid("alpha", 12, 0, 0)
    ref = Ref("alpha", 7, (3, 1))
    assert str(ref) == "#Ref<alpha.1.3>" and repr(ref) == "Ref('alpha', 7, (3, 1))"
    assert Ref.of("alpha", 7, 5) == Ref("alpha", 7, (5,))
    assert Ref.of("alpha", 7, 2**32 + 5) == Ref("alpha", 7, (5, 1))


def test_pid_ref_hashable_ordered_frozen() -> None:
    a, b = Pid("n", 1), Pid("n", 2)
    assert a < b and sorted([b, a]) == [a, b]
    assert {a: 1}[Pid("n", 1)] == 1
    # The same id on another node, or of another creation, is another actor.
    assert len({a, Pid("m", 1), Pid("n", 1, 0, 1)}) == 3
    assert len({Ref("n", 0, (1,)), Ref("n", 0, (1,)), Ref("n", 0, (2,))}) == 2
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        a.id = 5  # type: ignore[misc]


# ------------------------------------------------------------------ codec round trips


@settings(max_examples=200)
@given(plain)
def test_plain_round_trip(value: Any) -> None:
    assert loads(dumps(value)) == value


def test_plain_records_refuse_pids_and_tags() -> None:
    with pytest.raises(ta.NotSerializable):
        dumps(Pid("a", 1))
    tagged = MessageCodec().encode(Pid("a", 1))
    with pytest.raises(ta.ProtocolError):
        loads(tagged)


@settings(max_examples=200)
@given(messages)
def test_message_round_trip_between_nodes(value: Any) -> None:
    # Two nodes' codecs: what one writes the other reads back unchanged.
    assert MessageCodec().decode(MessageCodec().encode(value)) == value


@given(messages)
def test_tuples_stay_tuples_and_lists_stay_lists(value: Any) -> None:
    codec = MessageCodec()
    out = codec.decode(codec.encode((value, [value])))
    assert type(out) is tuple and type(out[1]) is list


@given(pids)
def test_pids_are_absolute_on_the_wire(pid: Pid) -> None:
    """Nothing is translated: a pid means the same actor on every node."""
    a, b = MessageCodec(), MessageCodec()
    seen = b.decode(a.encode(pid))
    assert seen == pid and a.decode(b.encode(seen)) == pid
    # Node names are interned: pids of one node share one string.
    assert seen.node is b.decode(a.encode(Pid(pid.node, 0))).node


def test_malformed_pids_and_refs_are_protocol_errors() -> None:
    codec = MessageCodec()
    for bad in [
        ["alpha", 1, 0],  # the three-field pid of protocol version 1
        [7, 1, 0, 0],  # a node id instead of a name
        ["", 1, 0, 0],
        ["alpha", -1, 0, 0],
        ["alpha", 1, 0, -1],
    ]:
        with pytest.raises(ta.ProtocolError, match="pid"):
            codec.decode(cbor2.dumps(cbor2.CBORTag(TAG_PID, bad)))
    for bad in [["alpha", 0], ["alpha", 0, 2**32], ["alpha", 0, 1, 2, 3, 4, 5, 6], [1, 0, 1]]:
        with pytest.raises(ta.ProtocolError, match="ref"):
            codec.decode(cbor2.dumps(cbor2.CBORTag(TAG_REF, bad)))


def test_signal_records_cross_nodes() -> None:
    a, b = MessageCodec(), MessageCodec()
    crash = ta.Crash("ValueError", "x", "Traceback...")
    pid, ref = Pid("a", 1, 0, 3), Ref("a", 3, (2,))
    for record in [
        ta.Exit(pid, "normal"),
        ta.Down(ref, pid, crash),
        ta.Down(ref, ("svc", "a"), "noproc"),
        ta.NodeUp("a"),
        ta.NodeDown("a", "noconnection"),
        crash,
        ta.TimerRef(3),
    ]:
        assert b.decode(a.encode(record)) == record
        assert type(b.decode(a.encode(record))) is type(record)
    down = b.decode(a.encode(ta.Down(ref, pid, crash)))
    assert down.reason.traceback == "Traceback..."
    # The gen_server protocol is plain data.
    call = ("$gen_call", (pid, ref), {"k": [1, 2]})
    assert b.decode(a.encode(call)) == call


def test_registered_message_class_and_isolated_registry() -> None:
    registry = MessageRegistry()

    @ta.message("test.Order", registry=registry)
    @attrs.frozen
    class Order:
        item: str
        qty: int
        who: Pid

    codec = MessageCodec(registry)
    order = Order("tea", 2, Pid("a", 3))
    out = MessageCodec(registry).decode(codec.encode(order))
    assert out == order
    assert "test.Order" in registry.names()
    # The default registry does not know it: refused on both sides.
    with pytest.raises(ta.NotSerializable):
        MessageCodec().encode(order)
    with pytest.raises(ta.ProtocolError, match="unknown message class"):
        MessageCodec().decode(codec.encode(order))


def test_isolated_registry_still_carries_trioactors_records() -> None:
    # A node given its own registry must still move Down, Exit, Crash, ...
    registry = MessageRegistry()
    a, b = MessageCodec(registry), MessageCodec(registry)
    down = ta.Down(Ref("a", 0, (2,)), Pid("a", 1), ta.Crash("ValueError", "bad", "tb"))
    assert b.decode(a.encode(down)) == down

    # ...but not the application's classes of the default registry.
    @ta.message("tests.codec.Point")
    @attrs.frozen
    class Point:
        x: int

    with pytest.raises(ta.NotSerializable):
        a.encode(Point(1))


def test_message_requires_attrs_and_unique_names() -> None:
    registry = MessageRegistry()
    with pytest.raises(TypeError, match="attrs"):
        ta.message("x.Plain", registry=registry)(type("Plain", (), {}))

    @attrs.frozen
    class One:
        a: int

    @attrs.frozen
    class Two:
        a: int

    registry.register("x.One", One)
    registry.register("x.One", One)  # the same class again is fine
    with pytest.raises(ValueError, match="already used"):
        registry.register("x.One", Two)


# ------------------------------------------------------------------ refusals


class NotAMessage:
    pass


@pytest.mark.parametrize(
    "value",
    [
        NotAMessage(),
        {1, 2},
        frozenset([1]),
        datetime.datetime(2020, 1, 1),
        decimal.Decimal("1.5"),
        uuid.uuid4(),
        lambda: None,
        [1, {"nested": object()}],
        cbor2.CBORTag(55, "x"),
    ],
)
def test_non_serialisable_values_are_refused(value: Any) -> None:
    with pytest.raises(ta.NotSerializable):
        MessageCodec().encode(value)


@pytest.mark.parametrize(
    "data",
    [
        cbor2.dumps(datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC), datetime_as_timestamp=True),
        cbor2.dumps(cbor2.CBORTag(0, "2020-01-01T00:00:00Z")),
        cbor2.dumps(cbor2.CBORTag(4, [-1, 15])),  # decimal fraction
        cbor2.dumps(cbor2.CBORTag(35, "a+")),  # regex
        cbor2.dumps(cbor2.CBORTag(258, [1, 2])),  # set
        cbor2.dumps(cbor2.CBORTag(37, b"\0" * 16)),  # uuid
        cbor2.dumps(cbor2.CBORTag(12345, "x")),  # unknown tag
        cbor2.dumps(cbor2.CBORTag(TAG_PID, [1, 2])),  # malformed pid
        cbor2.dumps(cbor2.CBORTag(TAG_PID, [1, -2, 0])),
        cbor2.dumps(cbor2.CBORTag(TAG_MESSAGE, ["nope.Unknown", {}])),
        cbor2.dumps(cbor2.CBORTag(TAG_MESSAGE, "bad")),
        b"\xff",
        b"",
        b"\x9f\x01\xff",  # indefinite-length array
    ],
)
def test_foreign_tags_and_garbage_are_protocol_errors(data: bytes) -> None:
    with pytest.raises(ta.ProtocolError):
        MessageCodec().decode(data)
    with pytest.raises(ta.ProtocolError):
        loads(data)


@settings(max_examples=300)
@given(st.binary(max_size=64))
def test_decoding_random_bytes_never_escapes_protocol_error(data: bytes) -> None:
    for decode in (loads, MessageCodec().decode):
        try:
            decode(data)
        except ta.ProtocolError:
            pass


# ------------------------------------------------------------------ framing


@given(st.lists(st.binary(max_size=300), max_size=8))
def test_frames_byte_by_byte(bodies: list[bytes]) -> None:
    stream = b"".join(encode_frame(b) for b in bodies)
    dec = FrameDecoder()
    out: list[bytes] = []
    for i in range(len(stream)):
        dec.feed(stream[i : i + 1])
        out.extend(dec)
    assert out == bodies
    assert dec.buffered == 0


@given(st.lists(st.binary(max_size=100), max_size=6), st.integers(min_value=1, max_value=50))
def test_frames_in_arbitrary_chunks(bodies: list[bytes], chunk: int) -> None:
    stream = b"".join(encode_frame(b) for b in bodies)
    dec = FrameDecoder()
    out: list[bytes] = []
    for i in range(0, len(stream), chunk):
        dec.feed(stream[i : i + chunk])
        out.extend(dec)
    assert out == bodies


@given(
    st.lists(st.binary(max_size=100), max_size=8),
    st.lists(st.integers(min_value=1, max_value=60), min_size=1, max_size=20),
    st.lists(st.sampled_from(["take", "bodies", "next_frame"]), min_size=1, max_size=20),
)
def test_bodies_takes_what_next_frame_would(
    bodies: list[bytes], chunks: list[int], ways: list[str]
) -> None:
    # take(), bodies() and next_frame() mixed at random over random chunks
    # (some of them exactly one frame): the same frames, in order, nothing
    # left over.
    stream = b"".join(encode_frame(b) for b in bodies)
    dec = FrameDecoder()
    out: list[bytes] = []
    pos = i = 0
    while pos < len(stream):
        size = chunks[i % len(chunks)]
        piece = stream[pos : pos + size]
        pos += size
        way = ways[i % len(ways)]
        if way == "take":
            out.extend(dec.take(piece))
        else:
            dec.feed(piece)
            if way == "bodies":
                out.extend(dec.bodies())
            elif (body := dec.next_frame()) is not None:
                out.append(body)
        i += 1
    out.extend(dec)
    assert out == bodies
    assert dec.buffered == 0 and dec.bodies() == []


def test_take_of_exactly_one_frame() -> None:
    dec = FrameDecoder(max_size=10)
    assert dec.take(encode_frame(b"abc")) == [b"abc"]
    assert dec.buffered == 0
    with pytest.raises(ta.FrameTooLarge):
        dec.take(encode_frame(b"x" * 11))  # the limit holds on the short cut too
    dec = FrameDecoder()
    dec.feed(b"\0\0")  # half a header waiting: no short cut
    assert dec.take(b"\0\2" + encode_frame(b"zz")[4:]) == [b"zz"]


def test_bodies_hands_out_the_frames_before_an_oversize_one() -> None:
    dec = FrameDecoder(max_size=10)
    dec.feed(encode_frame(b"a") + encode_frame(b"bc") + struct.pack(">I", 11))
    assert dec.bodies() == [b"a", b"bc"]
    with pytest.raises(ta.FrameTooLarge):
        dec.bodies()


def test_bodies_waits_for_a_big_frame_without_joining_each_chunk() -> None:
    dec = FrameDecoder()
    body = bytes(range(256)) * 64
    frame = encode_frame(body)
    dec.feed(frame[:100])
    assert dec.bodies() == []
    for i in range(100, len(frame) - 1, 100):
        dec.feed(frame[i : min(i + 100, len(frame) - 1)])
        assert dec.bodies() == []
        assert dec._chunks  # the pieces wait unjoined until the frame is whole
    dec.feed(frame[-1:])
    assert dec.bodies() == [body]


def test_oversize_frame_is_refused_before_the_body() -> None:
    dec = FrameDecoder(max_size=10)
    dec.feed(struct.pack(">I", 11))
    with pytest.raises(ta.FrameTooLarge) as info:
        dec.next_frame()
    assert info.value.size == 11 and info.value.limit == 10
    assert isinstance(info.value, ta.ProtocolError)
    ok = FrameDecoder(max_size=10)
    ok.feed(encode_frame(b"0123456789"))
    assert list(ok) == [b"0123456789"]


def test_partial_header_waits() -> None:
    dec = FrameDecoder()
    dec.feed(b"\x00\x00")
    assert dec.next_frame() is None
    dec.feed(b"\x00\x01x")
    assert dec.next_frame() == b"x"
    assert dec.next_frame() is None
