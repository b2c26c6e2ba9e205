"""Erlang's External Term Format (version 131), both directions, sans-IO.

The encoding Erlang nodes speak to each other (and `term_to_binary/1`
writes). `EtfCodec` turns Python values into those bytes and back, checked
byte for byte against Erlang/OTP 25's own `term_to_binary(T, [{minor_version,
2}])` and `binary_to_term/1` (``tests/test_etf_erlang.py``).

Mapping rules
-------------

=============================  ===========================  ==========================
Erlang term                    decodes to                   encoded from
=============================  ===========================  ==========================
atom ``ok``                    ``Atom("ok")``               ``Atom("ok")``
``true`` / ``false``           ``True`` / ``False``         ``bool``
``undefined`` (configurable)   ``None``                     ``None``
integer (any size)             ``int``                      ``int``
float                          ``float``                    ``float`` (finite only)
binary ``<<"héllo">>``         ``bytes`` (or ``str``, see   ``bytes``, ``bytearray``,
                               ``binaries_as_str``)         ``memoryview``, ``str``
                                                            (as UTF-8)
bitstring ``<<5:3>>``          ``BitString``                ``BitString``
tuple                          ``tuple``                    ``tuple``
proper list, ``[]``, string    ``list`` (a string ``"ab"``  ``list``, ``FrozenList``
                               is ``[97, 98]``)
improper list ``[1 | 2]``      ``ImproperList((1,), 2)``    ``ImproperList``
map                            ``dict``                     ``dict``
pid                            ``Pid``                      ``Pid``
reference                      ``Ref``                      ``Ref``
port                           ``Port``                     ``Port``
fun, ``fun m:f/a``             ``ErlangFun`` (opaque)       ``ErlangFun``
=============================  ===========================  ==========================

Why these choices:

* **Atoms are not strings.** `Atom` is its own frozen type, not a ``str``
  subclass: ``Atom("ok") != "ok"`` and they hash differently, so the Erlang
  map ``#{ok => 1, <<"ok">> => 2}`` is the Python dict ``{Atom("ok"): 1,
  "ok" (sent as a binary): 2}`` with two keys, and a function given a
  ``str`` can never mistake it for an atom (a ``str`` subclass would also
  silently turn back into a plain ``str`` under every string method).
  ``str(atom)`` / ``atom.name`` give the text.
* **Python ``str`` is sent as a UTF-8 binary**, Elixir's and modern
  Erlang's string type; binaries decode to ``bytes`` because a binary is
  arbitrary bytes (``EtfCodec(binaries_as_str=True)`` gives ``str`` for
  binaries that are valid UTF-8, convenient with Elixir peers; other
  binaries stay ``bytes``). Erlang "strings" (lists of character codes)
  stay lists of ints: ``"ab"`` arrives as ``[97, 98]``, and a list of ints
  0..255 is sent as ``STRING_EXT`` exactly as Erlang does.
* **``None`` is ``undefined``**, Erlang's conventional "no value" (as in
  ErlPort); ``EtfCodec(none_atom="nil")`` for Elixir peers, whose ``nil``
  is the atom ``nil``, or ``none_atom=None`` to keep ``undefined`` an
  `Atom` and refuse ``None``. Consequently ``Atom("undefined")`` (and
  ``Atom("true")``, ``Atom("false")``) decode as ``None`` (``True``,
  ``False``).
* **Lists as map keys** (``#{"key" => 1}``): a Python ``list`` cannot be a
  dict key, so a list inside a map key decodes as `FrozenList`, which
  encodes back as the same list. A map as a map key cannot be decoded.
  Python also considers ``1 == 1.0 == True``; an Erlang map with both ``1``
  and ``1.0`` (or ``true``) as keys is refused with `EtfDecodeError`, and
  a dict whose keys would encode to the same term (``"a"`` and ``b"a"``)
  is refused with `NotSerializable` (Erlang would refuse it too).
* **Funs stay opaque**: `ErlangFun` keeps the exact bytes of a fun, so it
  is sent back byte for byte; ``ErlangFun.export("lists", "map", 2)``
  builds ``fun lists:map/2``.

Encoding writes what OTP 25 writes with ``{minor_version, 2}`` (the form
distribution uses): UTF-8 atoms, NEW_FLOAT_EXT, NEW_PID_EXT,
NEWER_REFERENCE_EXT, NEW_PORT_EXT (V4_PORT_EXT past 32 bits), the smallest
integer and tuple forms. Decoding also reads the legacy forms (Latin-1
atoms, FLOAT_EXT, PID_EXT, PORT_EXT, REFERENCE_EXT, NEW_REFERENCE_EXT) and
compressed terms (tag 80), and ATOM_CACHE_REF when given the atom cache of
a distribution header.

Untrusted input: decoding is bounded by `EtfCodec`'s limits (nesting
depth, input and decompressed size, distinct atoms, bignum bytes, and
Erlang's 255-character atoms); anything malformed raises `EtfDecodeError`,
a broken limit `EtfLimitExceeded`, never another exception.
"""

from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Iterable, Sequence
from math import isfinite
from typing import Any, Final

import attrs

from ..errors import EtfDecodeError, EtfLimitExceeded, NotSerializable
from .framing import DEFAULT_MAX_FRAME_SIZE
from .terms import Pid, Ref, intern_node

__all__ = [
    "MAX_ATOM_LENGTH",
    "VERSION",
    "Atom",
    "BitString",
    "ErlangFun",
    "EtfCodec",
    "FrozenList",
    "ImproperList",
    "Port",
]

#: The version byte in front of every external term.
VERSION: Final = 131
#: Erlang's limit on the characters of an atom.
MAX_ATOM_LENGTH: Final = 255

# Tags (erts' erl_ext_dist).
NEW_FLOAT_EXT: Final = 70
BIT_BINARY_EXT: Final = 77
COMPRESSED: Final = 80
ATOM_CACHE_REF: Final = 82
NEW_PID_EXT: Final = 88
NEW_PORT_EXT: Final = 89
NEWER_REFERENCE_EXT: Final = 90
SMALL_INTEGER_EXT: Final = 97
INTEGER_EXT: Final = 98
FLOAT_EXT: Final = 99
ATOM_EXT: Final = 100
REFERENCE_EXT: Final = 101
PORT_EXT: Final = 102
PID_EXT: Final = 103
SMALL_TUPLE_EXT: Final = 104
LARGE_TUPLE_EXT: Final = 105
NIL_EXT: Final = 106
STRING_EXT: Final = 107
LIST_EXT: Final = 108
BINARY_EXT: Final = 109
SMALL_BIG_EXT: Final = 110
LARGE_BIG_EXT: Final = 111
NEW_FUN_EXT: Final = 112
EXPORT_EXT: Final = 113
NEW_REFERENCE_EXT: Final = 114
SMALL_ATOM_EXT: Final = 115
MAP_EXT: Final = 116
ATOM_UTF8_EXT: Final = 118
SMALL_ATOM_UTF8_EXT: Final = 119
V4_PORT_EXT: Final = 120

_U8 = struct.Struct(">B")
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_I32 = struct.Struct(">i")
_U64 = struct.Struct(">Q")
_F64 = struct.Struct(">d")
_U32_U32 = struct.Struct(">II")
_U32_U32_U32 = struct.Struct(">III")
_U64_U32 = struct.Struct(">QI")
_FUN_HEAD = struct.Struct(">IB16sII")  # Size, Arity, Uniq, Index, NumFree
_TAG_U32 = struct.Struct(">BI")
_TAG_U32_U8 = struct.Struct(">BIB")
_TAG_I32 = struct.Struct(">Bi")
_TAG_F64 = struct.Struct(">Bd")
_TAG_U16 = struct.Struct(">BH")
_TAG_U8_U8 = struct.Struct(">BB")

_REF_WORDS: Final = tuple(struct.Struct(f">{n}I") for n in range(6))
_WORD: Final = 2**32
_DWORD: Final = 2**64
_MAX_REF_WORDS: Final = 5
#: Entries kept by each of a codec's memo caches (bytes of pids and atoms).
_CACHE_SIZE: Final = 4096


# --------------------------------------------------------------------------- term types


def _check_atom_name(instance: Atom, attribute: Any, value: str) -> None:
    if type(value) is not str:
        raise TypeError(f"an atom's name is a str, not {type(value).__name__}")
    if len(value) > MAX_ATOM_LENGTH:
        raise ValueError(
            f"atom of {len(value)} characters: Erlang atoms have at most {MAX_ATOM_LENGTH}"
        )


@attrs.frozen(order=True, slots=True, repr=False, cache_hash=True)
class Atom:
    """An Erlang atom (``ok``, ``'EXIT'``, ``'$gen_call'``): `name` is its text.

    Deliberately not a ``str``: ``Atom("ok") != "ok"`` (a Python ``str``
    travels as a binary), so atoms and binaries stay distinct in dicts,
    comparisons and pattern matches, as in Erlang. At most 255 characters.
    The atoms ``true``, ``false`` and ``undefined`` decode as ``True``,
    ``False`` and ``None`` (see `EtfCodec`).
    """

    name: str = attrs.field(validator=_check_atom_name)
    # The atom's encoding, made once: atoms are sent over and over.
    _etf: bytes = attrs.field(init=False, eq=False, order=False, repr=False, hash=False)

    def __attrs_post_init__(self) -> None:
        buf = bytearray()
        _put_atom(buf, self.name)
        object.__setattr__(self, "_etf", bytes(buf))

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"Atom({self.name!r})"


@attrs.frozen(order=True, slots=True, repr=False)
class Port:
    """An Erlang port identifier (``#Port<node.id>``), as received: opaque to
    Python, sent back unchanged. `id` fits 64 bits, `creation` 32."""

    node: str
    id: int
    creation: int = 0

    def __str__(self) -> str:
        return f"#Port<{self.node}.{self.id}>"

    def __repr__(self) -> str:
        return f"Port({self.node!r}, {self.id}, {self.creation})"


@attrs.frozen(slots=True)
class BitString:
    """An Erlang bitstring whose length is not a whole number of bytes
    (``<<5:3>>`` is ``BitString(b"\\xa0", 3)``).

    `data` holds the bits, most significant first; only the first
    `tail_bits` (1..7) bits of its last byte count, and the others are
    cleared (as Erlang does), so equal bitstrings compare equal. Whole-byte
    binaries are ``bytes``.
    """

    data: bytes
    tail_bits: int

    def __attrs_post_init__(self) -> None:
        if type(self.data) is not bytes:
            object.__setattr__(self, "data", bytes(self.data))
        if not 1 <= self.tail_bits <= 7 or not self.data:
            raise ValueError(
                "a BitString has at least one byte and 1..7 bits used in its last "
                f"byte (got {len(self.data)} bytes, tail_bits={self.tail_bits}); "
                "use bytes for whole bytes"
            )
        mask = (0xFF << (8 - self.tail_bits)) & 0xFF
        last = self.data[-1]
        if last & ~mask:
            object.__setattr__(self, "data", self.data[:-1] + bytes((last & mask,)))

    @property
    def bit_length(self) -> int:
        """The number of bits (``bit_size/1`` in Erlang)."""
        return 8 * (len(self.data) - 1) + self.tail_bits


def _to_tuple(items: Iterable[Any]) -> tuple[Any, ...]:
    return tuple(items)


def _check_improper(instance: ImproperList, attribute: Any, value: Any) -> None:
    if isinstance(value, list | FrozenList | ImproperList):
        raise ValueError("the tail of an ImproperList is not a list: use a list instead")


@attrs.frozen(slots=True)
class ImproperList:
    """An Erlang list whose tail is not ``[]``: ``[1, 2 | tail]`` is
    ``ImproperList((1, 2), tail)``. `items` has at least one element."""

    items: tuple[Any, ...] = attrs.field(converter=_to_tuple)
    tail: Any = attrs.field(validator=_check_improper)

    def __attrs_post_init__(self) -> None:
        if not self.items:
            raise ValueError("an ImproperList has at least one item before its tail")


@attrs.frozen(slots=True)
class FrozenList:
    """A proper Erlang list that can be a dict key: lists inside map keys
    decode as `FrozenList` (a Python list is not hashable); it encodes as the
    same list. Elsewhere lists are plain Python lists."""

    items: tuple[Any, ...] = attrs.field(converter=_to_tuple)


@attrs.frozen(slots=True, repr=False, eq=False)
class ErlangFun:
    """An Erlang fun, kept opaque: `data` is its exact external encoding (tag
    included, without the version byte), so it goes back to Erlang byte for
    byte. `module` and `arity` (and `function` for ``fun M:F/A``) are read
    from it.

    Export funs (``fun M:F/A``) are equal when module, function and arity
    are (whatever atom encoding the sender used); closures when their bytes
    are. Get one from `EtfCodec.decode`, or build ``fun M:F/A`` with
    `ErlangFun.export`.
    """

    data: bytes
    module: Atom
    arity: int
    function: Atom | None = None

    def _identity(self) -> Any:
        if self.function is not None:
            return (self.module, self.function, self.arity)
        return self.data

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ErlangFun):
            return NotImplemented
        return bool(self._identity() == other._identity())

    def __hash__(self) -> int:
        return hash(self._identity())

    @classmethod
    def export(cls, module: str | Atom, function: str | Atom, arity: int) -> ErlangFun:
        """``fun module:function/arity``."""
        mod = module if isinstance(module, Atom) else Atom(module)
        fun = function if isinstance(function, Atom) else Atom(function)
        if not 0 <= arity <= 255:
            raise ValueError(f"fun arity {arity} is outside 0..255")
        data = bytearray((EXPORT_EXT,))
        _put_atom(data, mod.name)
        _put_atom(data, fun.name)
        data += _TAG_U8_U8.pack(SMALL_INTEGER_EXT, arity)
        return cls(bytes(data), mod, arity, fun)

    def __repr__(self) -> str:
        if self.function is not None:
            return f"ErlangFun.export({self.module.name!r}, {self.function.name!r}, {self.arity})"
        return f"<ErlangFun {self.module.name}/{self.arity}, {len(self.data)} bytes>"


def _put_atom(out: bytearray, name: str) -> None:
    raw = name.encode("utf-8")
    if len(raw) < 256:
        out += _TAG_U8_U8.pack(SMALL_ATOM_UTF8_EXT, len(raw))
    else:
        out += _TAG_U16.pack(ATOM_UTF8_EXT, len(raw))
    out += raw


# --------------------------------------------------------------------------- codec

_CONTAINER_KEYS: Final = frozenset({tuple, FrozenList, ImproperList})
_BYTES_TYPES: Final = (bytes, bytearray, memoryview)
_SUPPORTED: Final = (
    "None, bool, int, float, str, bytes, list, tuple, dict, ta.Atom, ta.Pid, ta.Ref, "
    "ta.Port, ta.BitString, ta.ImproperList, ta.FrozenList, ta.ErlangFun"
)


_MISSING: Final = object()
_ATOM_TAGS: Final = frozenset(
    {SMALL_ATOM_UTF8_EXT, ATOM_UTF8_EXT, ATOM_EXT, SMALL_ATOM_EXT, ATOM_CACHE_REF}
)


class _Truncated(Exception):
    pass


class EtfCodec:
    """Encodes Python values as Erlang external terms and decodes them back.

    ``encode(term)`` and ``decode(data)`` work on whole terms (version byte
    131 first); ``decode_prefix(data, offset)`` reads one term from a buffer
    holding several, as a distribution message does (a control term and a
    message term, each with its own version byte; after a distribution
    header the terms have none: ``versioned=False``).

    The mapping to Python values is in this module's docstring. Options:

    * `none_atom`: the atom ``None`` stands for (``"undefined"``; ``"nil"``
      for Elixir; ``None`` for no mapping).
    * `binaries_as_str`: decode binaries that are valid UTF-8 as ``str``.

    Limits for untrusted input (a broken one raises `EtfLimitExceeded`):
    `max_depth` nested tuples/lists/maps/funs, `max_size` bytes of input
    and of decompressed data, `max_atoms` distinct atoms in one term,
    `max_bignum_bytes` bytes in one integer. Encoding nests at most
    `max_depth` too (deeper, or a value that contains itself, raises
    `NotSerializable`).

    A codec keeps small bounded memos of the bytes of pids and atoms; the
    output is the same with or without them. Use one codec per connection
    or node.
    """

    def __init__(
        self,
        *,
        none_atom: str | None = "undefined",
        binaries_as_str: bool = False,
        max_depth: int = 256,
        max_size: int = DEFAULT_MAX_FRAME_SIZE,
        max_atoms: int = 65536,
        max_bignum_bytes: int = 4096,
    ) -> None:
        if none_atom in ("true", "false"):
            raise ValueError(f"none_atom cannot be {none_atom!r}: that atom is a bool")
        if none_atom is not None:
            Atom(none_atom)  # validates the length
        self.none_atom = none_atom
        self.binaries_as_str = binaries_as_str
        self.max_depth = max_depth
        self.max_size = max_size
        self.max_atoms = max_atoms
        self.max_bignum_bytes = max_bignum_bytes
        self._pid_bytes: dict[Pid, bytes] = {}
        self._atoms: dict[bytes, Any] = {}
        self._pids: dict[bytes, Pid] = {}
        self._node_bytes: dict[str, bytes] = {}
        none_bytes = bytearray()
        if none_atom is not None:
            _put_atom(none_bytes, none_atom)
        self._none_bytes = bytes(none_bytes)
        self._encoders: dict[type[Any], Any] = {
            Atom: self._enc_atom,
            bool: self._enc_bool,
            int: self._enc_int,
            float: self._enc_float,
            str: self._enc_str,
            bytes: self._enc_bytes,
            bytearray: self._enc_bytes,
            memoryview: self._enc_bytes,
            tuple: self._enc_tuple,
            list: self._enc_list,
            FrozenList: self._enc_frozen_list,
            dict: self._enc_dict,
            Pid: self._enc_pid,
            Ref: self._enc_ref,
            Port: self._enc_port,
            BitString: self._enc_bitstring,
            ImproperList: self._enc_improper,
            ErlangFun: self._enc_fun,
            type(None): self._enc_none,
        }

    # ------------------------------------------------------------------ encoding

    def encode(self, term: Any, *, versioned: bool = True) -> bytes:
        """The external term format bytes of `term` (behind the version byte 131
        unless `versioned` is false); `NotSerializable` if `term` holds a value
        with no Erlang counterpart."""
        out = bytearray((VERSION,)) if versioned else bytearray()
        try:
            self._enc(term, out, 0)
        except RecursionError:
            raise NotSerializable(
                "value nested too deeply to encode (or it contains itself)"
            ) from None
        return bytes(out)

    def _enc(self, term: Any, out: bytearray, depth: int) -> None:
        enc = self._encoders.get(type(term))
        if enc is None:
            enc = self._subclass_encoder(term)
        enc(term, out, depth)

    def _subclass_encoder(self, term: Any) -> Any:
        # Subclasses of the plain types (IntEnum, str enums, named tuples...)
        # travel as their base type; anything else has no Erlang form.
        for base in (int, float, str, tuple, list, dict, bytes, bytearray):
            if isinstance(term, base):
                return self._encoders[base]
        raise NotSerializable(
            f"{type(term).__qualname__} has no Erlang term form; send {_SUPPORTED}"
        )

    def _enc_none(self, term: None, out: bytearray, depth: int) -> None:
        if not self._none_bytes:
            raise NotSerializable(
                "None cannot be encoded: this EtfCodec has none_atom=None; send an Atom"
            )
        out += self._none_bytes

    def _enc_bool(self, term: bool, out: bytearray, depth: int) -> None:
        out += b"\x77\x04true" if term else b"\x77\x05false"

    def _enc_atom(self, term: Atom, out: bytearray, depth: int) -> None:
        out += term._etf

    def _enc_int(self, term: int, out: bytearray, depth: int) -> None:
        if 0 <= term <= 255:
            out += _TAG_U8_U8.pack(SMALL_INTEGER_EXT, term)
        elif -(2**31) <= term < 2**31:
            out += _TAG_I32.pack(INTEGER_EXT, term)
        else:
            term = int(term)
            magnitude = -term if term < 0 else term
            raw = magnitude.to_bytes((magnitude.bit_length() + 7) // 8, "little")
            sign = 1 if term < 0 else 0
            if len(raw) < 256:
                out += bytes((SMALL_BIG_EXT, len(raw), sign))
            elif len(raw) < _WORD:
                out += _TAG_U32_U8.pack(LARGE_BIG_EXT, len(raw), sign)
            else:
                raise NotSerializable("integer too large for the external term format")
            out += raw

    def _enc_float(self, term: float, out: bytearray, depth: int) -> None:
        if not math.isfinite(term):
            raise NotSerializable(f"{term!r} cannot be sent to Erlang: its floats are finite")
        out += _TAG_F64.pack(NEW_FLOAT_EXT, term)

    def _enc_str(self, term: str, out: bytearray, depth: int) -> None:
        try:
            raw = term.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise NotSerializable(f"str is not valid Unicode (lone surrogate?): {exc}") from None
        out += _TAG_U32.pack(BINARY_EXT, len(raw))
        out += raw

    def _enc_bytes(self, term: bytes | bytearray | memoryview, out: bytearray, depth: int) -> None:
        if type(term) is memoryview:
            term = term.tobytes()
        if len(term) >= _WORD:
            raise NotSerializable("binary too large for the external term format")
        out += _TAG_U32.pack(BINARY_EXT, len(term))
        out += term

    def _enc_bitstring(self, term: BitString, out: bytearray, depth: int) -> None:
        out += _TAG_U32_U8.pack(BIT_BINARY_EXT, len(term.data), term.tail_bits)
        out += term.data

    def _deeper(self, depth: int) -> int:
        if depth >= self.max_depth:
            raise NotSerializable(
                f"value nested deeper than max_depth={self.max_depth} (or it contains itself)"
            )
        return depth + 1

    def _enc_tuple(self, term: tuple[Any, ...], out: bytearray, depth: int) -> None:
        depth = self._deeper(depth)
        n = len(term)
        if n < 256:
            out += _TAG_U8_U8.pack(SMALL_TUPLE_EXT, n)
        else:
            out += _TAG_U32.pack(LARGE_TUPLE_EXT, n)
        encoders = self._encoders
        for item in term:
            (encoders.get(type(item)) or self._subclass_encoder(item))(item, out, depth)

    def _enc_list(self, term: Sequence[Any], out: bytearray, depth: int) -> None:
        n = len(term)
        if n == 0:
            out.append(NIL_EXT)
            return
        if n < 65536 and all(type(x) is int and 0 <= x <= 255 for x in term):
            # Erlang writes such lists as STRING_EXT; so do we, for identical bytes.
            out += _TAG_U16.pack(STRING_EXT, n)
            out += bytes(term)
            return
        depth = self._deeper(depth)
        out += _TAG_U32.pack(LIST_EXT, n)
        encoders = self._encoders
        for item in term:
            (encoders.get(type(item)) or self._subclass_encoder(item))(item, out, depth)
        out.append(NIL_EXT)

    def _enc_frozen_list(self, term: FrozenList, out: bytearray, depth: int) -> None:
        self._enc_list(term.items, out, depth)

    def _enc_improper(self, term: ImproperList, out: bytearray, depth: int) -> None:
        depth = self._deeper(depth)
        out += _TAG_U32.pack(LIST_EXT, len(term.items))
        enc = self._enc
        for item in term.items:
            enc(item, out, depth)
        enc(term.tail, out, depth)

    def _enc_dict(self, term: dict[Any, Any], out: bytearray, depth: int) -> None:
        depth = self._deeper(depth)
        out += _TAG_U32.pack(MAP_EXT, len(term))
        enc = self._enc
        kinds = {type(k) for k in term}
        if len(kinds) <= 1 and not kinds & _CONTAINER_KEYS:
            encoders = self._encoders
            for key, value in term.items():
                (encoders.get(type(key)) or self._subclass_encoder(key))(key, out, depth)
                (encoders.get(type(value)) or self._subclass_encoder(value))(value, out, depth)
            return
        # Keys of different types can be equal terms ("a" and b"a", True and
        # Atom("true")): Erlang refuses a map with a duplicate key.
        seen: set[bytes] = set()
        for key, value in term.items():
            start = len(out)
            enc(key, out, depth)
            encoded = bytes(out[start:])
            if encoded in seen:
                raise NotSerializable(
                    f"dict keys encode to the same Erlang term ({key!r} and another key)"
                )
            seen.add(encoded)
            enc(value, out, depth)

    def _enc_pid(self, term: Pid, out: bytearray, depth: int) -> None:
        # Actors send to and carry the same few pids over and over.
        data = self._pid_bytes.get(term)
        if data is None:
            if not (
                0 <= term.id < _WORD and 0 <= term.serial < _WORD and 0 <= term.creation < _WORD
            ):
                raise NotSerializable(f"{term!r} does not fit Erlang's 32-bit pid fields")
            buf = bytearray((NEW_PID_EXT,))
            self._enc_node(term.node, buf)
            buf += _U32_U32_U32.pack(term.id, term.serial, term.creation)
            data = bytes(buf)
            _remember(self._pid_bytes, term, data)
        out += data

    def _enc_node(self, node: str, out: bytearray) -> None:
        # Node names repeat in every pid, ref and port: their atom bytes are memoised.
        data = self._node_bytes.get(node)
        if data is None:
            try:
                data = Atom(node)._etf
            except (TypeError, ValueError) as exc:
                raise NotSerializable(f"node name {node!r} is not an atom: {exc}") from None
            _remember(self._node_bytes, node, data)
        out += data

    def _enc_ref(self, term: Ref, out: bytearray, depth: int) -> None:
        ids = term.ids
        if not (
            1 <= len(ids) <= _MAX_REF_WORDS
            and all(0 <= w < _WORD for w in ids)
            and 0 <= term.creation < _WORD
        ):
            raise NotSerializable(f"{term!r} does not fit Erlang's references (1..5 32-bit words)")
        out += _TAG_U16.pack(NEWER_REFERENCE_EXT, len(ids))
        self._enc_node(term.node, out)
        out += _U32.pack(term.creation)
        out += _REF_WORDS[len(ids)].pack(*ids)

    def _enc_port(self, term: Port, out: bytearray, depth: int) -> None:
        if not (0 <= term.id < _DWORD and 0 <= term.creation < _WORD):
            raise NotSerializable(f"{term!r} does not fit Erlang's port fields")
        if term.id < _WORD:
            out.append(NEW_PORT_EXT)
            self._enc_node(term.node, out)
            out += _U32_U32.pack(term.id, term.creation)
        else:
            out.append(V4_PORT_EXT)
            self._enc_node(term.node, out)
            out += _U64_U32.pack(term.id, term.creation)

    def _enc_fun(self, term: ErlangFun, out: bytearray, depth: int) -> None:
        out += term.data

    # ------------------------------------------------------------------ decoding

    def decode(self, data: bytes | bytearray | memoryview) -> Any:
        """The term in `data`, which holds exactly one versioned term;
        `EtfDecodeError` for anything malformed (trailing bytes included)."""
        buf = bytes(data)
        term, end = self.decode_prefix(buf, 0)
        if end != len(buf):
            raise EtfDecodeError(
                f"malformed external term: {len(buf) - end} bytes after the term at byte {end}"
            )
        return term

    def decode_prefix(
        self,
        data: bytes | bytearray | memoryview,
        offset: int = 0,
        *,
        versioned: bool = True,
        atom_cache: Sequence[Atom] | None = None,
    ) -> tuple[Any, int]:
        """The term starting at `offset` in `data` and the offset just after it.

        With `versioned` (the default) the term starts with the version byte
        131 and may be compressed; terms after a distribution header have no
        version byte (``versioned=False``) and may use ATOM_CACHE_REF into
        that header's `atom_cache`.
        """
        buf = data if type(data) is bytes else bytes(data)
        if len(buf) - offset > self.max_size:
            raise EtfLimitExceeded("max_size", len(buf) - offset, self.max_size, offset)
        dec = _Decoder(self, buf, offset, atom_cache)
        try:
            if versioned:
                if offset >= len(buf):
                    raise _Truncated
                if buf[offset] != VERSION:
                    raise EtfDecodeError(
                        f"malformed external term at byte {offset}: version byte "
                        f"{buf[offset]}, expected {VERSION}"
                    )
                dec.pos = offset + 1
                if dec.pos < len(buf) and buf[dec.pos] == COMPRESSED:
                    return dec.compressed()
            term = dec.term(0)
        except (_Truncated, struct.error, IndexError):
            raise EtfDecodeError(
                f"malformed external term: data ends inside the term that starts at byte {offset}"
            ) from None
        except RecursionError:
            raise EtfLimitExceeded(
                "max_depth", self.max_depth + 1, self.max_depth, dec.pos
            ) from None
        return term, dec.pos


def _remember(cache: dict[Any, Any], key: Any, value: Any) -> None:
    if len(cache) >= _CACHE_SIZE:
        cache.pop(next(iter(cache)), None)  # the oldest entry
    cache[key] = value


class _Decoder:
    """One decode: the buffer, the position and the atom count."""

    __slots__ = ("atom_cache", "atoms", "codec", "data", "max_depth", "new_atoms", "pos", "size")

    def __init__(
        self, codec: EtfCodec, data: bytes, pos: int, atom_cache: Sequence[Atom] | None
    ) -> None:
        self.codec = codec
        self.data = data
        self.size = len(data)
        self.max_depth = codec.max_depth
        self.pos = pos
        self.atom_cache = atom_cache
        self.atoms = codec._atoms
        self.new_atoms: set[bytes] = set()

    def fail(self, detail: str, at: int | None = None) -> EtfDecodeError:
        return EtfDecodeError(
            f"malformed external term at byte {self.pos if at is None else at}: {detail}"
        )

    def take(self, n: int) -> bytes:
        pos = self.pos
        end = pos + n
        if end > self.size:
            raise _Truncated
        self.pos = end
        return self.data[pos:end]

    def need(self, n: int) -> None:
        """At least `n` more bytes must follow (each element takes >= 1 byte):
        refuse a huge announced count before looping over it."""
        if self.pos + n > self.size:
            raise _Truncated

    def compressed(self) -> tuple[Any, int]:
        start = self.pos - 1
        self.pos += 1
        (size,) = _U32.unpack_from(self.data, self.pos)
        self.pos += 4
        codec = self.codec
        if size == 0:
            raise self.fail("compressed term of 0 bytes", start)
        if size > codec.max_size:
            raise EtfLimitExceeded("max_size", size, codec.max_size, start)
        inflater = zlib.decompressobj()
        try:
            body = inflater.decompress(self.data[self.pos :], size)
            if not inflater.eof and len(body) == size and inflater.unconsumed_tail:
                if inflater.decompress(inflater.unconsumed_tail, 1):
                    raise self.fail(f"compressed term inflates past its stated {size} bytes")
        except zlib.error as exc:
            raise self.fail(f"bad compressed data: {exc}") from None
        if not inflater.eof or len(body) != size:
            raise self.fail(
                f"compressed term inflates to {len(body)} bytes, expected {size}"
                + ("" if inflater.eof else " (zlib stream incomplete)")
            )
        end = len(self.data) - len(inflater.unused_data)
        inner = _Decoder(codec, body, 0, self.atom_cache)
        try:
            term = inner.term(0)
        except (_Truncated, struct.error, IndexError):
            raise EtfDecodeError(
                "malformed external term: the compressed term's data ends inside it"
            ) from None
        if inner.pos != size:
            raise self.fail(f"{size - inner.pos} bytes after the compressed term", start)
        return term, end

    def term(self, depth: int) -> Any:
        data = self.data
        pos = self.pos
        tag = data[pos]
        if tag == SMALL_ATOM_UTF8_EXT:
            # The hottest case: an atom seen before, found by its bytes.
            end = pos + 2 + data[pos + 1]
            if end <= self.size:
                value = self.atoms.get(data[pos + 2 : end], _MISSING)
                if value is not _MISSING:
                    self.pos = end
                    return value
        self.pos = pos + 1
        if tag == SMALL_INTEGER_EXT:
            self.pos = pos + 2
            return data[pos + 1]
        if tag in _ATOM_TAGS:
            return self.atom_value(tag)
        if tag == INTEGER_EXT:
            self.pos = pos + 5
            return _I32.unpack_from(data, pos + 1)[0]
        if tag == BINARY_EXT:
            (n,) = _U32.unpack_from(data, pos + 1)
            end = pos + 5 + n
            if end > self.size:
                raise _Truncated
            self.pos = end
            raw = data[pos + 5 : end]
            if self.codec.binaries_as_str:
                try:
                    return raw.decode("utf-8")
                except UnicodeDecodeError:
                    return raw
            return raw
        if tag == SMALL_TUPLE_EXT or tag == LARGE_TUPLE_EXT:
            if tag == SMALL_TUPLE_EXT:
                n = data[pos + 1]
                self.pos = pos + 2
            else:
                (n,) = _U32.unpack_from(data, pos + 1)
                self.pos = pos + 5
            if self.pos + n > self.size:
                raise _Truncated
            if depth >= self.max_depth:
                raise EtfLimitExceeded("max_depth", depth + 1, self.max_depth, pos)
            depth += 1
            # Loops, not comprehensions: a comprehension is one more Python
            # frame per nesting level (3.11), and depth is bounded by frames.
            items: list[Any] = []
            append = items.append
            term = self.term
            for _ in range(n):
                append(term(depth))
            return tuple(items)
        if tag == NEW_FLOAT_EXT:
            self.pos = pos + 9
            number = _F64.unpack_from(data, pos + 1)[0]
            if isfinite(number):
                return number
            raise self.fail(f"float {number} (Erlang floats are finite)", pos)
        if tag == NIL_EXT:
            return []
        if tag == STRING_EXT:
            (n,) = _U16.unpack_from(data, pos + 1)
            self.pos = pos + 3
            return list(self.take(n))
        if tag == LIST_EXT:
            return self.list(depth, pos)
        if tag == MAP_EXT:
            return self.map(depth, pos)
        if tag == NEW_PID_EXT:
            return self.pid(pos)
        if tag == NEWER_REFERENCE_EXT or tag == NEW_REFERENCE_EXT:
            (n,) = _U16.unpack_from(data, pos + 1)
            self.pos = pos + 3
            if not 1 <= n <= _MAX_REF_WORDS:
                raise self.fail(f"reference of {n} words (1..{_MAX_REF_WORDS})", pos)
            node = self.node()
            if tag == NEWER_REFERENCE_EXT:
                (creation,) = _U32.unpack_from(data, self.pos)
                self.pos += 4
            else:
                creation = data[self.pos]
                self.pos += 1
            ids = _REF_WORDS[n].unpack_from(data, self.pos)
            self.pos += 4 * n
            return Ref(node, creation, ids)
        if tag == SMALL_BIG_EXT or tag == LARGE_BIG_EXT:
            if tag == SMALL_BIG_EXT:
                n = data[pos + 1]
                sign = data[pos + 2]
                self.pos = pos + 3
            else:
                n, sign = struct.unpack_from(">IB", data, pos + 1)
                self.pos = pos + 6
            if n > self.codec.max_bignum_bytes:
                raise EtfLimitExceeded("max_bignum_bytes", n, self.codec.max_bignum_bytes, pos)
            if sign > 1:
                raise self.fail(f"integer sign byte {sign}, expected 0 or 1", pos)
            value = int.from_bytes(self.take(n), "little")
            return -value if sign else value
        if tag == BIT_BINARY_EXT:
            n, bits = struct.unpack_from(">IB", data, pos + 1)
            self.pos = pos + 6
            raw = self.take(n)
            if n == 0:
                if bits != 0:
                    raise self.fail(f"empty bitstring with {bits} tail bits", pos)
                return b""
            if not 1 <= bits <= 8:
                raise self.fail(f"bitstring with {bits} bits in its last byte (1..8)", pos)
            if bits == 8:
                return raw
            return BitString(raw, bits)
        if tag == NEW_PORT_EXT or tag == V4_PORT_EXT or tag == PORT_EXT:
            node = self.node()
            if tag == NEW_PORT_EXT:
                id_, creation = _U32_U32.unpack_from(data, self.pos)
                self.pos += 8
            elif tag == V4_PORT_EXT:
                id_, creation = _U64_U32.unpack_from(data, self.pos)
                self.pos += 12
            else:
                (id_,) = _U32.unpack_from(data, self.pos)
                creation = data[self.pos + 4]
                self.pos += 5
            return Port(node, id_, creation)
        if tag == PID_EXT:
            node = self.node()
            id_, serial = _U32_U32.unpack_from(data, self.pos)
            creation = data[self.pos + 8]
            self.pos += 9
            return Pid(node, id_, serial, creation)
        if tag == REFERENCE_EXT:
            node = self.node()
            (word,) = _U32.unpack_from(data, self.pos)
            creation = data[self.pos + 4]
            self.pos += 5
            return Ref(node, creation, (word,))
        if tag == FLOAT_EXT:
            raw = self.take(31)
            try:
                text = raw.rstrip(b"\x00").decode("ascii")
                number = float(text)
            except (UnicodeDecodeError, ValueError):
                raise self.fail("FLOAT_EXT does not hold a number", pos) from None
            return self.finite(number, pos)
        if tag == NEW_FUN_EXT:
            return self.fun(depth, pos)
        if tag == EXPORT_EXT:
            module = self.atom_of(self.atom_value(self.tag_at()))
            function = self.atom_of(self.atom_value(self.tag_at()))
            if data[self.pos] != SMALL_INTEGER_EXT:
                raise self.fail("export fun arity is not a small integer")
            arity = data[self.pos + 1]
            self.pos += 2
            return ErlangFun(data[pos : self.pos], module, arity, function)
        if tag == COMPRESSED:
            raise self.fail("a compressed term can only follow the version byte", pos)
        if tag == VERSION:
            raise self.fail("version byte 131 inside a term", pos)
        raise self.fail(f"unknown tag {tag}", pos)

    def tag_at(self) -> int:
        tag = self.data[self.pos]
        self.pos += 1
        return tag

    def deeper(self, depth: int, pos: int) -> int:
        if depth >= self.codec.max_depth:
            raise EtfLimitExceeded("max_depth", depth + 1, self.codec.max_depth, pos)
        return depth + 1

    def finite(self, value: float, pos: int) -> float:
        if not math.isfinite(value):
            raise self.fail(f"float {value} (Erlang floats are finite)", pos)
        return value

    def list(self, depth: int, pos: int) -> Any:
        data = self.data
        (n,) = _U32.unpack_from(data, pos + 1)
        self.pos = pos + 5
        self.need(n + 1)
        depth = self.deeper(depth, pos)
        item = self.term
        items = []
        for _ in range(n):
            items.append(item(depth))
        if data[self.pos] == NIL_EXT:
            self.pos += 1
            return items
        tail = item(depth)
        # Erlang itself never writes a list as a tail, but reads one as the
        # rest of the list (so must we: [1 | [2]] is [1, 2]).
        if type(tail) is list:
            return items + tail
        if type(tail) is ImproperList:
            return ImproperList((*items, *tail.items), tail.tail)
        if not items:
            # LIST_EXT of length 0 with a non-list tail is just the tail.
            return tail
        return ImproperList(tuple(items), tail)

    def map(self, depth: int, pos: int) -> dict[Any, Any]:
        (n,) = _U32.unpack_from(self.data, pos + 1)
        self.pos = pos + 5
        self.need(2 * n)
        depth = self.deeper(depth, pos)
        item = self.term
        result: dict[Any, Any] = {}
        for _ in range(n):
            key_at = self.pos
            key = item(depth)
            value = item(depth)
            try:
                result[key] = value
            except TypeError:  # unhashable: a list (or map) in the key
                result[self.freeze(key, key_at)] = value
        if len(result) != n:
            raise self.fail(
                "map with duplicate keys (or keys Python deems equal, such as 1, 1.0 and true)",
                pos,
            )
        return result

    def freeze(self, key: Any, at: int) -> Any:
        kind = type(key)
        if kind is list:
            return FrozenList(tuple(self.freeze(x, at) for x in key))
        if kind is tuple:
            return tuple(self.freeze(x, at) for x in key)
        if kind is ImproperList:
            return ImproperList(
                tuple(self.freeze(x, at) for x in key.items), self.freeze(key.tail, at)
            )
        if kind is dict:
            raise self.fail("a map used as a map key cannot be a Python dict key", at)
        return key

    def atom_bytes(self, tag: int) -> tuple[bytes, bool]:
        """The raw name of the atom with `tag` and whether it is UTF-8."""
        data = self.data
        pos = self.pos
        if tag == SMALL_ATOM_UTF8_EXT or tag == SMALL_ATOM_EXT:
            n = data[pos]
            self.pos = pos + 1
        elif tag == ATOM_UTF8_EXT or tag == ATOM_EXT:
            (n,) = _U16.unpack_from(data, pos)
            self.pos = pos + 2
        else:
            raise self.fail(f"expected an atom, found tag {tag}", pos - 1)
        if n > 4 * MAX_ATOM_LENGTH:
            raise EtfLimitExceeded("atom_length", n, 4 * MAX_ATOM_LENGTH, pos - 1)
        return self.take(n), tag == SMALL_ATOM_UTF8_EXT or tag == ATOM_UTF8_EXT

    def atom_value(self, tag: int) -> Any:
        """An atom as a Python value: True, False, None or an Atom."""
        if tag == ATOM_CACHE_REF:
            return self.cached_atom()
        start = self.pos - 1
        raw, utf8 = self.atom_bytes(tag)
        # Only UTF-8 names are memoised: Latin-1 atoms are legacy and rare.
        key = raw
        value = self.atoms.get(key, _MISSING) if utf8 else _MISSING
        if value is not _MISSING:
            return value
        if key not in self.new_atoms:
            if len(self.new_atoms) >= self.codec.max_atoms:
                raise EtfLimitExceeded(
                    "max_atoms", len(self.new_atoms) + 1, self.codec.max_atoms, start
                )
            self.new_atoms.add(key)
        try:
            name = raw.decode("utf-8") if utf8 else raw.decode("latin-1")
        except UnicodeDecodeError:
            raise self.fail("atom name is not valid UTF-8", start) from None
        if len(name) > MAX_ATOM_LENGTH:
            raise EtfLimitExceeded("atom_length", len(name), MAX_ATOM_LENGTH, start)
        value = self.python_atom(name)
        if utf8:
            _remember(self.atoms, key, value)
        return value

    def python_atom(self, name: str) -> Any:
        if name == "true":
            return True
        if name == "false":
            return False
        if name == self.codec.none_atom:
            return None
        return Atom(name)

    def cached_atom(self) -> Any:
        at = self.pos - 1
        index = self.data[self.pos]
        self.pos += 1
        cache = self.atom_cache
        if cache is None or index >= len(cache):
            raise self.fail(
                f"ATOM_CACHE_REF {index} without that entry in a distribution header's atom cache",
                at,
            )
        return self.python_atom(cache[index].name)

    def atom_of(self, value: Any) -> Atom:
        """The Atom of a decoded atom value (funs' module and function names)."""
        if value is True:
            return Atom("true")
        if value is False:
            return Atom("false")
        if value is None:
            return Atom(self.codec.none_atom or "undefined")
        return value  # type: ignore[no-any-return]

    def node(self) -> str:
        at = self.pos
        tag = self.tag_at()
        if tag == ATOM_CACHE_REF:
            name = str(self.atom_of(self.cached_atom()))
        else:
            name = str(self.atom_of(self.atom_value(tag)))
        if not name:
            raise self.fail("empty node name", at)
        return intern_node(name)

    def pid(self, pos: int) -> Pid:
        data = self.data
        raw = b""
        if data[pos + 1] == SMALL_ATOM_UTF8_EXT:
            # The common case, remembered by its bytes: the same few pids
            # arrive over and over.
            end = pos + 3 + data[pos + 2] + 12
            raw = data[pos:end]
            cached = self.codec._pids.get(raw)
            if cached is not None:
                self.pos = end
                return cached
        node = self.node()
        id_, serial, creation = _U32_U32_U32.unpack_from(data, self.pos)
        self.pos += 12
        pid = Pid(node, id_, serial, creation)
        if raw and self.pos - pos == len(raw):
            _remember(self.codec._pids, raw, pid)
        return pid

    def fun(self, depth: int, pos: int) -> ErlangFun:
        data = self.data
        size, arity, _uniq, _index, num_free = _FUN_HEAD.unpack_from(data, pos + 1)
        end = pos + 1 + size
        if size < 29 or end > len(data):
            raise self.fail(f"fun of {size} bytes does not fit the data", pos)
        self.pos = pos + 1 + _FUN_HEAD.size
        self.need(num_free)
        depth = self.deeper(depth, pos)
        module = self.atom_of(self.atom_value(self.tag_at()))
        # OldIndex, OldUniq (integers) and the creator's pid, then the free
        # variables: read to validate the fun and to find its end.
        for what in ("old index", "old uniq"):
            if type(self.term(depth)) is not int:
                raise self.fail(f"fun {what} is not an integer", pos)
        if type(self.term(depth)) is not Pid:
            raise self.fail("fun creator is not a pid", pos)
        for _ in range(num_free):
            self.term(depth)
        if self.pos != end:
            raise self.fail(f"fun size {size} does not match its contents", pos)
        return ErlangFun(data[pos:end], module, arity)
