"""The Erlang External Term Format codec (`ta.EtfCodec`), without Erlang.

Byte strings written out here were produced by Erlang/OTP 25's
`term_to_binary/2`; `test_etf_erlang.py` checks the same against a live `erl`.
"""

from __future__ import annotations

import math
import struct
import zlib
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import trioactors as ta
from trioactors.wire import etf

codec = ta.EtfCodec()
NONODE = "nonode@nohost"
A = ta.Atom


def atom_bytes(name: str) -> bytes:
    raw = name.encode()
    return bytes((119, len(raw))) + raw


# --------------------------------------------------------------------------- atoms


def test_atom_is_not_a_str() -> None:
    assert A("ok") != "ok"  # type: ignore[comparison-overlap]
    assert "ok" != A("ok")  # type: ignore[comparison-overlap]
    assert not isinstance(A("ok"), str)
    assert len({A("ok"): 1, "ok": 2}) == 2
    assert str(A("ok")) == "ok" and A("ok").name == "ok"
    assert repr(A("ok")) == "Atom('ok')"
    assert A("a") < A("b")


def test_atom_longer_than_255_characters_is_refused() -> None:
    A("é" * 255)
    with pytest.raises(ValueError, match="at most 255"):
        A("a" * 256)
    with pytest.raises(TypeError):
        A(b"ok")  # type: ignore[arg-type]


def test_atoms_encode_as_utf8_like_otp_minor_version_2() -> None:
    assert codec.encode(A("ok")) == b"\x83\x77\x02ok"
    long = A("é" * 200)  # 400 bytes of UTF-8: ATOM_UTF8_EXT
    assert codec.encode(long) == b"\x83\x76\x01\x90" + ("é" * 200).encode()
    assert codec.decode(codec.encode(long)) == long


def test_legacy_latin1_atoms_decode() -> None:
    assert codec.decode(b"\x83\x64\x00\x02ok") == A("ok")
    assert codec.decode(b"\x83\x73\x02ok") == A("ok")
    assert codec.decode(b"\x83\x64\x00\x01\xe9") == A("é")
    assert codec.decode(b"\x83\x73\x04true") is True


def test_booleans_and_none() -> None:
    assert codec.encode(True) == b"\x83\x77\x04true"
    assert codec.encode(False) == b"\x83\x77\x05false"
    assert codec.encode(None) == b"\x83\x77\x09undefined"
    assert codec.decode(b"\x83\x77\x04true") is True
    assert codec.decode(b"\x83\x77\x09undefined") is None
    assert codec.decode(codec.encode(A("undefined"))) is None
    assert codec.decode(b"\x83\x77\x03nil") == A("nil")


def test_none_atom_option() -> None:
    elixir = ta.EtfCodec(none_atom="nil")
    assert elixir.encode(None) == b"\x83\x77\x03nil"
    assert elixir.decode(b"\x83\x77\x03nil") is None
    assert elixir.decode(b"\x83\x77\x09undefined") == A("undefined")
    plain = ta.EtfCodec(none_atom=None)
    assert plain.decode(b"\x83\x77\x09undefined") == A("undefined")
    with pytest.raises(ta.NotSerializable, match="none_atom=None"):
        plain.encode([None])
    with pytest.raises(ValueError):
        ta.EtfCodec(none_atom="true")


# --------------------------------------------------------------------------- numbers


@pytest.mark.parametrize(
    ("value", "data"),
    [
        (0, b"\x61\x00"),
        (255, b"\x61\xff"),
        (256, b"\x62\x00\x00\x01\x00"),
        (-1, b"\x62\xff\xff\xff\xff"),
        (2**31 - 1, b"\x62\x7f\xff\xff\xff"),
        (-(2**31), b"\x62\x80\x00\x00\x00"),
        (2**31, b"\x6e\x04\x00\x00\x00\x00\x80"),
        (-(2**31) - 1, b"\x6e\x04\x01\x01\x00\x00\x80"),
        (2**64, b"\x6e\x09\x00" + b"\x00" * 8 + b"\x01"),
    ],
)
def test_integers(value: int, data: bytes) -> None:
    assert codec.encode(value) == b"\x83" + data
    assert codec.decode(b"\x83" + data) == value


def test_large_bignum() -> None:
    value = -(2**2040)  # 256 bytes: LARGE_BIG_EXT
    data = codec.encode(value)
    assert data[:7] == b"\x83\x6f\x00\x00\x01\x00\x01"
    assert codec.decode(data) == value


def test_floats() -> None:
    assert codec.encode(1.5) == b"\x83\x46\x3f\xf8" + b"\x00" * 6
    assert codec.decode(b"\x83\x46\x3f\xf8" + b"\x00" * 6) == 1.5
    old = b"\x83\x63" + b"1.50000000000000000000e+00".ljust(31, b"\x00")
    assert codec.decode(old) == 1.5
    for bad in (math.nan, math.inf, -math.inf):
        with pytest.raises(ta.NotSerializable, match="finite"):
            codec.encode(bad)
    with pytest.raises(ta.EtfDecodeError, match="finite"):
        codec.decode(b"\x83\x46\x7f\xf8" + b"\x00" * 6)
    with pytest.raises(ta.EtfDecodeError, match="FLOAT_EXT"):
        codec.decode(b"\x83\x63" + b"nonsense".ljust(31, b"\x00"))


# --------------------------------------------------------------------------- binaries


def test_binaries_and_strings() -> None:
    assert codec.encode(b"abc") == b"\x83\x6d\x00\x00\x00\x03abc"
    assert codec.encode("hé") == b"\x83\x6d\x00\x00\x00\x03h\xc3\xa9"
    assert codec.encode(bytearray(b"x")) == codec.encode(memoryview(b"x")) == codec.encode(b"x")
    assert codec.decode(codec.encode("hé")) == "hé".encode()
    text = ta.EtfCodec(binaries_as_str=True)
    assert text.decode(codec.encode("hé")) == "hé"
    assert text.decode(codec.encode(b"\xff")) == b"\xff"
    with pytest.raises(ta.NotSerializable, match="surrogate"):
        codec.encode("\ud800")


def test_bitstrings() -> None:
    bits = ta.BitString(b"\xff", 3)  # unused bits are cleared, as in Erlang
    assert bits == ta.BitString(b"\xe0", 3) and bits.bit_length == 3
    assert codec.encode(bits) == b"\x83\x4d\x00\x00\x00\x01\x03\xe0"
    assert codec.decode(b"\x83\x4d\x00\x00\x00\x01\x03\xff") == bits
    assert codec.decode(b"\x83\x4d\x00\x00\x00\x01\x08\xff") == b"\xff"
    assert codec.decode(b"\x83\x4d\x00\x00\x00\x00\x00") == b""
    for bad in (b"\x83\x4d\x00\x00\x00\x00\x03", b"\x83\x4d\x00\x00\x00\x01\x09\xff"):
        with pytest.raises(ta.EtfDecodeError, match="bitstring"):
            codec.decode(bad)
    for data, tail in ((b"", 3), (b"\x01", 0), (b"\x01", 8)):
        with pytest.raises(ValueError, match="BitString"):
            ta.BitString(data, tail)


# --------------------------------------------------------------------------- containers


def test_tuples() -> None:
    assert codec.encode(()) == b"\x83\x68\x00"
    assert codec.encode((A("a"), 1)) == b"\x83\x68\x02" + atom_bytes("a") + b"\x61\x01"
    big = tuple(range(300))
    assert codec.encode(big)[:6] == b"\x83\x69\x00\x00\x01\x2c"
    assert codec.decode(codec.encode(big)) == big


def test_lists_and_strings() -> None:
    assert codec.encode([]) == b"\x83\x6a"
    assert codec.encode([1, 2, 3]) == b"\x83\x6b\x00\x03\x01\x02\x03"
    assert codec.decode(b"\x83\x6b\x00\x03abc") == [97, 98, 99]
    assert codec.encode([1000, 97]) == b"\x83\x6c\x00\x00\x00\x02\x62\x00\x00\x03\xe8\x61\x61\x6a"
    # Booleans are atoms, never the integers 0 and 1 of a string.
    assert codec.encode([True])[1] == etf.LIST_EXT
    assert codec.encode([1] * 65536)[1] == etf.LIST_EXT
    assert codec.decode(codec.encode([1] * 65536)) == [1] * 65536


def test_improper_lists() -> None:
    improper = ta.ImproperList([1], 2)
    assert codec.encode(improper) == b"\x83\x6c\x00\x00\x00\x01\x61\x01\x61\x02"
    assert codec.decode(codec.encode(improper)) == ta.ImproperList((1,), 2)
    # A list as the tail is the rest of the list (Erlang reads it so too).
    assert codec.decode(b"\x83\x6c\x00\x00\x00\x01\x61\x01\x6b\x00\x02\x01\x02") == [1, 1, 2]
    nested = b"\x83\x6c\x00\x00\x00\x01\x61\x01\x6c\x00\x00\x00\x01\x61\x02\x61\x03"
    assert codec.decode(nested) == ta.ImproperList((1, 2), 3)
    with pytest.raises(ValueError, match="not a list"):
        ta.ImproperList([1], [2])
    with pytest.raises(ValueError, match="at least one"):
        ta.ImproperList([], 2)


def test_maps() -> None:
    value = {1: A("x"), A("a"): 2, b"k": [3]}
    data = codec.encode(value)
    assert data == (
        b"\x83\x74\x00\x00\x00\x03\x61\x01"
        + atom_bytes("x")
        + atom_bytes("a")
        + b"\x61\x02\x6d\x00\x00\x00\x01k\x6b\x00\x01\x03"
    )
    assert codec.decode(data) == value


def test_lists_as_map_keys_decode_as_frozen_lists() -> None:
    data = codec.encode({ta.FrozenList([107]): 1, (ta.FrozenList([1000]),): 2})
    assert data[6:10] == b"\x6b\x00\x01k"
    decoded = codec.decode(data)
    assert decoded == {ta.FrozenList((107,)): 1, (ta.FrozenList((1000,)),): 2}
    # Only inside keys: a list value is a list.
    assert codec.decode(codec.encode({1: ta.FrozenList([1])})) == {1: [1]}
    map_key = b"\x83\x74\x00\x00\x00\x01\x74\x00\x00\x00\x00\x61\x01"
    with pytest.raises(ta.EtfDecodeError, match="map used as a map key"):
        codec.decode(map_key)


def test_map_keys_that_collide() -> None:
    duplicate = b"\x83\x74\x00\x00\x00\x02\x61\x01\x61\x01\x61\x01\x61\x02"
    with pytest.raises(ta.EtfDecodeError, match="duplicate keys"):
        codec.decode(duplicate)
    one_and_float = b"\x83\x74\x00\x00\x00\x02\x61\x01\x61\x01\x46" + struct.pack(">d", 1.0)
    with pytest.raises(ta.EtfDecodeError, match="Python deems equal"):
        codec.decode(one_and_float + b"\x61\x02")
    for value in ({"a": 1, b"a": 2}, {True: 1, A("true"): 2}, {("a",): 1, (b"a",): 2}):
        with pytest.raises(ta.NotSerializable, match="same Erlang term"):
            codec.encode(value)


# --------------------------------------------------------------------------- identifiers


def test_pids() -> None:
    pid = ta.Pid(NONODE, 9, 0, 0)
    data = b"\x83\x58" + atom_bytes(NONODE) + b"\x00\x00\x00\x09" + b"\x00" * 8
    assert codec.encode(pid) == data
    assert codec.decode(data) == pid
    assert codec.decode(data).node is codec.decode(data).node  # interned
    remote = ta.Pid("alpha@host", 2**32 - 1, 7, 2**32 - 1)
    assert codec.decode(codec.encode(remote)) == remote
    old = b"\x83\x67" + atom_bytes("a@b") + b"\x00\x00\x00\x05\x00\x00\x00\x01\x02"
    assert codec.decode(old) == ta.Pid("a@b", 5, 1, 2)
    with pytest.raises(ta.NotSerializable, match="32-bit"):
        codec.encode(ta.Pid("a@b", 2**32))


def test_refs() -> None:
    ref = ta.Ref(NONODE, 0, (169823, 432013314, 1680345204))
    data = b"\x83\x5a\x00\x03" + atom_bytes(NONODE) + b"\x00" * 4
    data += bytes([0, 2, 151, 95, 25, 192, 0, 2, 100, 40, 8, 116])
    assert codec.encode(ref) == data
    assert codec.decode(data) == ref
    newer_one_byte_creation = b"\x83\x72\x00\x01" + atom_bytes("a@b") + b"\x03\x00\x00\x00\x07"
    assert codec.decode(newer_one_byte_creation) == ta.Ref("a@b", 3, (7,))
    oldest = b"\x83\x65" + atom_bytes("a@b") + b"\x00\x00\x00\x07\x03"
    assert codec.decode(oldest) == ta.Ref("a@b", 3, (7,))
    with pytest.raises(ta.NotSerializable, match=r"1\.\.5"):
        codec.encode(ta.Ref("a@b", 0, (1,) * 6))
    with pytest.raises(ta.EtfDecodeError, match="reference of 6 words"):
        codec.decode(b"\x83\x5a\x00\x06" + atom_bytes("a@b") + b"\x00" * 28)


def test_ports() -> None:
    port = ta.Port(NONODE, 7, 0)
    assert (
        codec.encode(port) == b"\x83\x59" + atom_bytes(NONODE) + b"\x00\x00\x00\x07" + b"\x00" * 4
    )
    legacy = b"\x83\x59\x64\x00\x0d" + NONODE.encode() + b"\x00\x00\x00\x07" + b"\x00" * 4
    assert codec.decode(legacy) == port
    wide = ta.Port("a@b", 2**40, 3)
    assert codec.encode(wide)[1] == etf.V4_PORT_EXT
    assert codec.decode(codec.encode(wide)) == wide
    oldest = b"\x83\x66" + atom_bytes("a@b") + b"\x00\x00\x00\x07\x02"
    assert codec.decode(oldest) == ta.Port("a@b", 7, 2)
    assert str(port) == "#Port<nonode@nohost.7>"


def test_export_fun() -> None:
    fun = ta.ErlangFun.export("lists", "map", 2)
    data = bytes([131, 113, 119, 5, *b"lists", 119, 3, *b"map", 97, 2])
    assert codec.encode(fun) == data
    decoded = codec.decode(data)
    assert decoded == fun and decoded.module == A("lists") and decoded.function == A("map")
    assert decoded.arity == 2 and repr(decoded) == "ErlangFun.export('lists', 'map', 2)"
    legacy = bytes([131, 113, 100, 0, 5, *b"lists", 100, 0, 3, *b"map", 97, 2])
    assert codec.decode(legacy) == fun and hash(codec.decode(legacy)) == hash(fun)
    assert codec.encode(codec.decode(legacy)) == legacy  # sent back as received


# `fun(X) -> X + 1 end` in erl's shell (OTP 25): a closure of erl_eval.
CLOSURE = bytes.fromhex(
    "8370000000b101065361aa461590d1bdf1eb62d1a6eb080000002a00000001770865726c5f657661"
    "6c612a6200329b0d58770d6e6f6e6f6465406e6f686f737400000009000000000000000068066115"
    "6a77046e6f6e6577046e6f6e6574000000006c0000000168057706636c6175736561156c00000001"
    "6803770376617261157701586a6a6c00000001680577026f70611577012b68037703766172611577"
    "015868037707696e7465676572611561016a6a"
)


def test_closure_is_opaque_and_reencoded_byte_for_byte() -> None:
    fun = codec.decode(CLOSURE)
    assert isinstance(fun, ta.ErlangFun)
    assert fun.module == A("erl_eval") and fun.arity == 1 and fun.function is None
    assert codec.encode(fun) == CLOSURE
    assert codec.encode([fun, fun]) == b"\x83\x6c\x00\x00\x00\x02" + CLOSURE[1:] * 2 + b"\x6a"
    wrong_size = bytearray(CLOSURE)
    wrong_size[5] -= 1
    with pytest.raises(ta.EtfDecodeError, match="fun"):
        codec.decode(bytes(wrong_size))


# --------------------------------------------------------------------------- framing


def test_compressed_terms_decode() -> None:
    value = [A("ok")] * 1000
    body = codec.encode(value)[1:]
    data = b"\x83\x50" + struct.pack(">I", len(body)) + zlib.compress(body)
    assert codec.decode(data) == value
    assert codec.decode_prefix(data + b"rest", 0) == (value, len(data))
    lying = b"\x83\x50" + struct.pack(">I", len(body) - 1) + zlib.compress(body)
    with pytest.raises(ta.EtfDecodeError, match="inflates"):
        codec.decode(lying)
    with pytest.raises(ta.EtfDecodeError, match="compressed"):
        codec.decode(b"\x83\x50\x00\x00\x00\x05" + b"junk!")
    with pytest.raises(ta.EtfDecodeError, match="only follow the version"):
        codec.decode(b"\x83\x68\x01\x50\x00\x00\x00\x01" + zlib.compress(b"\x6a"))


def test_decode_prefix_reads_consecutive_terms() -> None:
    control = codec.encode((2, A(""), ta.Pid(NONODE, 1)))
    message = codec.encode({A("hello"): "world"})
    data = b"p" + control + message
    first, offset = codec.decode_prefix(data, 1)
    assert first == (2, A(""), ta.Pid(NONODE, 1))
    second, end = codec.decode_prefix(data, offset)
    assert second == {A("hello"): b"world"} and end == len(data)


def test_unversioned_terms_and_the_atom_cache() -> None:
    assert codec.encode(A("ok"), versioned=False) == b"\x77\x02ok"
    assert codec.decode_prefix(b"\x77\x02ok", versioned=False) == (A("ok"), 4)
    cache = [A("reg_send"), A("true")]
    data = b"\x68\x02\x52\x00\x52\x01"
    assert codec.decode_prefix(data, versioned=False, atom_cache=cache) == (
        (A("reg_send"), True),
        6,
    )
    with pytest.raises(ta.EtfDecodeError, match="ATOM_CACHE_REF 1"):
        codec.decode_prefix(b"\x52\x01", versioned=False, atom_cache=cache[:1])


def test_malformed_framing() -> None:
    with pytest.raises(ta.EtfDecodeError, match="version byte 130"):
        codec.decode(b"\x82\x6a")
    with pytest.raises(ta.EtfDecodeError, match="1 bytes after the term"):
        codec.decode(b"\x83\x6a\x6a")
    with pytest.raises(ta.EtfDecodeError, match="data ends"):
        codec.decode(b"\x83")
    with pytest.raises(ta.EtfDecodeError, match="unknown tag 1"):
        codec.decode(b"\x83\x01")
    assert issubclass(ta.EtfDecodeError, ta.ProtocolError)


# --------------------------------------------------------------------------- limits


def test_depth_limit() -> None:
    deep = b"\x83" + b"\x6c\x00\x00\x00\x01" * 100_000
    with pytest.raises(ta.EtfLimitExceeded, match="max_depth") as info:
        codec.decode(deep)
    assert info.value.limit == "max_depth"
    shallow = ta.EtfCodec(max_depth=3)
    assert shallow.decode(shallow.encode([[[1000]]])) == [[[1000]]]
    with pytest.raises(ta.EtfLimitExceeded, match="max_depth"):
        shallow.decode(codec.encode([[[[1000]]]]))
    with pytest.raises(ta.NotSerializable, match="max_depth"):
        shallow.encode([[[[1000]]]])
    cycle: list[Any] = [1000]
    cycle.append(cycle)
    with pytest.raises(ta.NotSerializable, match="contains itself"):
        codec.encode(cycle)


def test_size_limits() -> None:
    small = ta.EtfCodec(max_size=100)
    with pytest.raises(ta.EtfLimitExceeded, match="max_size"):
        small.decode(codec.encode(b"x" * 200))
    bomb = b"\x83\x50" + struct.pack(">I", 2**32 - 1) + zlib.compress(b"\x6a")
    with pytest.raises(ta.EtfLimitExceeded, match="max_size"):
        codec.decode(bomb)
    body = codec.encode([0] * 1000)[1:]
    with pytest.raises(ta.EtfLimitExceeded, match="max_size"):
        small.decode(b"\x83\x50" + struct.pack(">I", len(body)) + zlib.compress(body))
    # Announced counts larger than the data fail at once, allocating nothing.
    for tag in (b"\x6c", b"\x69", b"\x74", b"\x6d"):
        with pytest.raises(ta.EtfDecodeError, match="data ends"):
            codec.decode(b"\x83" + tag + b"\xff\xff\xff\xff\x6a")


def test_atom_limits() -> None:
    with pytest.raises(ta.EtfLimitExceeded, match="atom_length"):
        codec.decode(b"\x83\x76\x01\x00" + b"a" * 256)
    with pytest.raises(ta.EtfLimitExceeded, match="atom_length"):
        codec.decode(b"\x83\x76\x04\x00" + b"a" * 1024)
    with pytest.raises(ta.EtfDecodeError, match="UTF-8"):
        codec.decode(b"\x83\x77\x01\xff")
    few = ta.EtfCodec(max_atoms=3)
    assert few.decode(few.encode([A("a"), A("b"), A("c"), A("a")])) == [A(x) for x in "abca"]
    with pytest.raises(ta.EtfLimitExceeded, match="max_atoms"):
        few.decode(few.encode([A("d"), A("e"), A("f"), A("g")]))


def test_bignum_limit() -> None:
    narrow = ta.EtfCodec(max_bignum_bytes=8)
    assert narrow.decode(narrow.encode(2**63)) == 2**63
    with pytest.raises(ta.EtfLimitExceeded, match="max_bignum_bytes"):
        narrow.decode(narrow.encode(2**64))
    with pytest.raises(ta.EtfDecodeError, match="sign"):
        codec.decode(b"\x83\x6e\x01\x02\x01")


# --------------------------------------------------------------------------- encoding


def test_unsupported_values_are_not_serializable() -> None:
    for value in (object(), {1, 2}, 1j, [print]):
        with pytest.raises(ta.NotSerializable, match="no Erlang term form"):
            codec.encode(value)


def test_subclasses_of_plain_types_encode_as_their_base() -> None:
    import enum

    class Colour(enum.IntEnum):
        RED = 1

    assert codec.encode(Colour.RED) == codec.encode(1)


# --------------------------------------------------------------------------- properties

u32 = st.integers(0, 2**32 - 1)
nodes = st.text(min_size=1, max_size=20)
atoms = st.builds(A, st.text(max_size=255))
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**3000), max_value=2**3000),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.binary(max_size=20),
    atoms,
    st.builds(ta.Pid, nodes, u32, u32, u32),
    st.builds(ta.Ref, nodes, u32, st.lists(u32, min_size=1, max_size=5).map(tuple)),
    st.builds(ta.Port, nodes, st.integers(0, 2**64 - 1), u32),
    st.builds(ta.BitString, st.binary(min_size=1, max_size=8), st.integers(1, 7)),
    st.builds(ta.ErlangFun.export, st.text(max_size=20), st.text(max_size=20), st.integers(0, 255)),
)
hashables = st.recursive(
    scalars,
    lambda inner: st.tuples(inner, inner) | st.lists(inner, max_size=3).map(ta.FrozenList),
    max_leaves=8,
)
not_lists = st.one_of(scalars, st.tuples(scalars))
terms = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        st.lists(inner, max_size=5).map(tuple),
        st.dictionaries(hashables, inner, max_size=4),
        st.builds(ta.ImproperList, st.lists(inner, min_size=1, max_size=3), not_lists),
        st.lists(st.integers(0, 255), max_size=5),
    ),
    max_leaves=30,
)


class Collision(Exception):
    pass


def expected(value: Any, key: bool = False) -> Any:
    """What decoding the encoding of `value` gives (the mapping rules)."""
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, ta.Atom) and value.name in ("true", "false", "undefined"):
        return {"true": True, "false": False, "undefined": None}[value.name]
    if isinstance(value, list | ta.FrozenList):
        items = [
            expected(x, key) for x in (value.items if isinstance(value, ta.FrozenList) else value)
        ]
        return ta.FrozenList(items) if key else items
    if isinstance(value, tuple):
        return tuple(expected(x, key) for x in value)
    if isinstance(value, ta.ImproperList):
        return ta.ImproperList([expected(x, key) for x in value.items], expected(value.tail, key))
    if isinstance(value, dict):
        result = {expected(k, True): expected(v) for k, v in value.items()}
        if len(result) != len(value):
            raise Collision
        return result
    return value


@given(terms)
@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=300)
def test_round_trip(value: Any) -> None:
    try:
        want = expected(value)
    except Collision:
        with pytest.raises(ta.NotSerializable, match="same Erlang term"):
            codec.encode(value)
        return
    data = codec.encode(value)
    assert codec.decode(data) == want
    # Decoded values encode to the very same bytes.
    assert codec.encode(codec.decode(data)) == data
    assert codec.decode_prefix(b"xy" + data + b"z", 2) == (want, 2 + len(data))


ERRORS = (ta.EtfDecodeError,)


@given(st.binary(max_size=64))
@settings(max_examples=1000)
def test_fuzz_random_bytes(data: bytes) -> None:
    for blob in (data, b"\x83" + data):
        try:
            codec.decode(blob)
        except ERRORS:
            pass


@given(terms, st.data())
@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=500)
def test_fuzz_mutated_encodings(value: Any, data: st.DataObject) -> None:
    try:
        encoded = bytearray(codec.encode(value))
    except ta.NotSerializable:
        return
    if data.draw(st.booleans()):
        encoded = bytearray(b"\x83\x50" + struct.pack(">I", len(encoded) - 1))
        encoded += zlib.compress(codec.encode(value)[1:])
    for _ in range(data.draw(st.integers(1, 4))):
        where = data.draw(st.integers(0, len(encoded)))
        action = data.draw(st.sampled_from(["flip", "drop", "insert", "truncate"]))
        if action == "flip" and where < len(encoded):
            encoded[where] = data.draw(st.integers(0, 255))
        elif action == "drop" and where < len(encoded):
            del encoded[where]
        elif action == "insert":
            encoded.insert(where, data.draw(st.integers(0, 255)))
        elif action == "truncate":
            del encoded[where:]
    try:
        codec.decode(bytes(encoded))
    except ERRORS:
        pass
