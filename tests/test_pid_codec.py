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
    MessageCodec,
    MessageRegistry,
    dumps,
    loads,
)
from trioactors.wire.framing import FrameDecoder, encode_frame
from trioactors.wire.terms import Pid, Ref, _Counter, node_id_for

u32 = st.integers(min_value=0, max_value=2**32 - 1)
u64 = st.integers(min_value=0, max_value=2**64 - 1)
pids = st.builds(Pid, u32, u64, u32)
refs = st.builds(Ref, u32, u64, u32)

plain = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text()
    | st.binary()
    | pids
    | refs,
    lambda children: (
        st.lists(children, max_size=5)
        | st.tuples(children, children)
        | st.dictionaries(st.text(max_size=5), children, max_size=5)
    ),
    max_leaves=30,
)


# ------------------------------------------------------------------ pid


def test_pid_display_and_locality() -> None:
    pid = Pid(0, 12, 0)
    assert str(pid) == "<0.12.0>" and repr(pid) == "Pid<0.12.0>"
    assert pid.is_local()
    remote = Pid.with_node(7, 12)
    assert remote == Pid(7, 12, 0) and not remote.is_local()
    assert str(Ref(0, 3, 1)) == "#Ref<0.3.1>"


def test_pid_ref_hashable_ordered_frozen() -> None:
    a, b = Pid(0, 1, 0), Pid(0, 2, 0)
    assert a < b and sorted([b, a]) == [a, b]
    assert {a: 1}[Pid(0, 1, 0)] == 1
    assert len({Ref(0, 1), Ref(0, 1), Ref(0, 2)}) == 2
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        a.id = 5  # type: ignore[misc]


def test_node_id_is_stable_32_bit_and_never_zero() -> None:
    assert node_id_for("alpha") == node_id_for("alpha")
    assert node_id_for("alpha") != node_id_for("beta")
    assert node_id_for("alpha") == int.from_bytes(
        __import__("hashlib").blake2b(b"alpha", digest_size=4).digest(), "big"
    )


@given(st.text())
def test_node_id_range(name: str) -> None:
    assert 1 <= node_id_for(name) < 2**32


def test_counter_is_per_instance() -> None:
    c1, c2 = _Counter(), _Counter(5)
    assert [c1.next(), c1.next(), c2.next()] == [1, 2, 5]


# ------------------------------------------------------------------ codec round trips


@settings(max_examples=200)
@given(plain)
def test_plain_round_trip(value: Any) -> None:
    assert loads(dumps(value)) == value


@given(plain)
def test_tuples_stay_tuples_and_lists_stay_lists(value: Any) -> None:
    out = loads(dumps((value, [value])))
    assert type(out) is tuple and type(out[1]) is list


@given(pids, u32.filter(lambda n: n != 0))
def test_pid_translation_between_nodes(pid: Pid, sender_id: int) -> None:
    """A local pid leaves with the sender's node id; a pid naming the receiver
    comes back as local (node 0); third-party pids are untouched."""
    local = Pid(0, pid.id, pid.serial)
    receiver_id = sender_id % (2**32 - 1) + 1
    sender, receiver = MessageCodec(sender_id), MessageCodec(receiver_id)
    seen = receiver.decode(sender.encode(local))
    assert seen == Pid(sender_id, pid.id, pid.serial)
    # ...and sent back, it is local again on the original node.
    assert sender.decode(receiver.encode(seen)) == local
    # A pid of the receiver itself, sent by the sender, is local at the receiver.
    assert receiver.decode(sender.encode(Pid(receiver_id, 4, 1))) == Pid(0, 4, 1)
    if pid.node not in (0, sender_id, receiver_id):
        assert receiver.decode(sender.encode(pid)) == pid


def test_ref_translation() -> None:
    a, b = MessageCodec(10), MessageCodec(20)
    assert b.decode(a.encode(Ref(0, 5, 1))) == Ref(10, 5, 1)
    assert a.decode(b.encode(Ref(10, 5, 1))) == Ref(0, 5, 1)


def test_signal_records_cross_nodes() -> None:
    a, b = MessageCodec(10), MessageCodec(20)
    crash = ta.Crash("ValueError", "x", "Traceback...")
    for record in [
        ta.Exit(Pid(0, 1, 0), "normal"),
        ta.Down(Ref(0, 2, 0), Pid(0, 1, 0), crash),
        ta.Down(Ref(0, 2, 0), ("svc", "a"), "noproc"),
        ta.NodeUp("a"),
        ta.NodeDown("a", "noconnection"),
        crash,
        ta.TimerRef(3),
    ]:
        assert a.decode(a.encode(record)) == record
        assert type(b.decode(a.encode(record))) is type(record)
    down = b.decode(a.encode(ta.Down(Ref(0, 2, 0), Pid(0, 1, 0), crash)))
    assert down.pid == Pid(10, 1, 0) and down.reason.traceback == "Traceback..."
    # The gen_server protocol is plain data.
    call = ("$gen_call", (Pid(0, 1, 0), Ref(0, 9, 0)), {"k": [1, 2]})
    assert b.decode(a.encode(call)) == ("$gen_call", (Pid(10, 1, 0), Ref(10, 9, 0)), {"k": [1, 2]})


def test_registered_message_class_and_isolated_registry() -> None:
    registry = MessageRegistry()

    @ta.message("test.Order", registry=registry)
    @attrs.frozen
    class Order:
        item: str
        qty: int
        who: Pid

    codec = MessageCodec(1, registry)
    order = Order("tea", 2, Pid(0, 3, 0))
    out = MessageCodec(2, registry).decode(codec.encode(order))
    assert out == Order("tea", 2, Pid(1, 3, 0))
    assert "test.Order" in registry.names()
    # The default registry does not know it: refused on both sides.
    with pytest.raises(ta.NotSerializable):
        MessageCodec(1).encode(order)
    with pytest.raises(ta.ProtocolError, match="unknown message class"):
        MessageCodec(1).decode(codec.encode(order))


def test_isolated_registry_still_carries_trioactors_records() -> None:
    # A node given its own registry must still move Down, Exit, Crash, ...
    registry = MessageRegistry()
    a, b = MessageCodec(1, registry), MessageCodec(2, registry)
    down = ta.Down(Ref(0, 2, 0), Pid(0, 1, 0), ta.Crash("ValueError", "bad", "tb"))
    out = b.decode(a.encode(down))
    assert out == ta.Down(Ref(1, 2, 0), Pid(1, 1, 0), ta.Crash("ValueError", "bad", "tb"))

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
        dumps(value)


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
        loads(data)


@settings(max_examples=300)
@given(st.binary(max_size=64))
def test_decoding_random_bytes_never_escapes_protocol_error(data: bytes) -> None:
    try:
        loads(data)
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
