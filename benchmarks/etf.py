"""Erlang External Term Format encode/decode beside cbor2, in the same run.

    python benchmarks/etf.py            # full run
    python benchmarks/etf.py --quick    # smoke run (used by the test suite)

For each representative message (a distribution control tuple, a
gen_server call, a map-shaped record, a list of 1000 tuples, a 64 KiB
binary) it times:

- ``ta.EtfCodec`` encode and decode (pure Python);
- the baseline: ``cbor2.dumps`` / ``cbor2.loads`` (its C extension) of the
  same data in plain CBOR form (atoms as strings, pids and refs as arrays,
  tuples as arrays);
- and, for reference, trioactors' own CBOR ``MessageCodec`` (the node wire
  format today: pids, refs and tuples as tags) on the same data.

Figures are operations per second and the ratio ETF / cbor2 (below 1: ETF
is slower); sizes in bytes. Nothing here is asserted.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import cbor2

import trioactors as ta
from trioactors.wire.cbor import MessageCodec

A = ta.Atom
NODE = "alpha@127.0.0.1"
PID = ta.Pid(NODE, 81, 0, 1733212345)
PEER = ta.Pid("beta@127.0.0.1", 7, 0, 1733212399)
REF = ta.Ref(NODE, 1733212345, (158321, 2217590787, 3351123202))


def messages() -> dict[str, Any]:
    """The terms timed, by name (Python form for ETF)."""
    return {
        "reg_send control": (6, PID, A(""), A("counter")),
        "gen_server call": (
            A("$gen_call"),
            (PEER, ta.ImproperList([A("alias")], REF)),  # OTP 25: [alias | Ref]
            (A("put"), b"session:42", {A("hits"): 17, A("at"): 1733212400.25}),
        ),
        "record map (12 keys)": {
            A("id"): 123456789,
            A("name"): b"Ada Lovelace",
            A("email"): b"ada@example.org",
            A("active"): True,
            A("score"): 98.5,
            A("tags"): [b"admin", b"math", b"engine"],
            A("owner"): PID,
            A("created"): 1733212345,
            A("quota"): 2**40,
            A("parent"): None,
            A("roles"): [A("read"), A("write")],
            A("meta"): {A("v"): 3, A("src"): b"import"},
        },
        "list of 1000 tuples": [(A("item"), i, b"x" * 8, float(i)) for i in range(1000)],
        "64 KiB binary": (A("chunk"), 7, bytes(range(256)) * 256),
    }


def plain(term: Any) -> Any:
    """The same data as plain CBOR can carry it."""
    if isinstance(term, ta.ImproperList):
        return [*map(plain, term.items), plain(term.tail)]
    if isinstance(term, ta.Atom):
        return term.name
    if isinstance(term, ta.Pid):
        return [term.node, term.id, term.serial, term.creation]
    if isinstance(term, ta.Ref):
        return [term.node, term.creation, *term.ids]
    if isinstance(term, tuple | list):
        return [plain(x) for x in term]
    if isinstance(term, dict):
        return {plain(k): plain(v) for k, v in term.items()}
    return term


def tagged(term: Any) -> Any:
    """The same data as trioactors' CBOR codec carries it (atoms as str)."""
    if isinstance(term, ta.ImproperList):
        return [*map(tagged, term.items), tagged(term.tail)]
    if isinstance(term, ta.Atom):
        return term.name
    if isinstance(term, tuple):
        return tuple(tagged(x) for x in term)
    if isinstance(term, list):
        return [tagged(x) for x in term]
    if isinstance(term, dict):
        return {tagged(k): tagged(v) for k, v in term.items()}
    return term


def rate(op: Callable[[], object], seconds: float, repeat: int) -> float:
    """Best operations per second of `op` over `repeat` runs of `seconds`."""
    best = 0.0
    for _ in range(repeat):
        n = 0
        start = time.perf_counter()
        deadline = start + seconds
        while True:
            for _ in range(16):
                op()
            n += 16
            now = time.perf_counter()
            if now >= deadline:
                break
        best = max(best, n / (now - start))
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short runs (smoke run)")
    parser.add_argument("--seconds", type=float, default=1.0, help="seconds per figure")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (best kept)")
    args = parser.parse_args(argv)
    seconds = 0.02 if args.quick else args.seconds
    repeat = 1 if args.quick else args.repeat

    etf = ta.EtfCodec()
    node_codec = MessageCodec()
    header = (
        f"{'message':<22} {'op':<7} {'ETF/s':>11} {'cbor2/s':>11} {'ratio':>6}"
        f" {'node CBOR/s':>12}   bytes ETF / cbor2 / node CBOR"
    )
    print(header)
    print("-" * len(header))
    for name, term in messages().items():
        as_plain = plain(term)
        as_tagged = tagged(term)
        etf_bytes = etf.encode(term)
        cbor_bytes = cbor2.dumps(as_plain)
        node_bytes = node_codec.encode(as_tagged)
        assert etf.decode(etf_bytes) is not None
        sizes = f"{len(etf_bytes)} / {len(cbor_bytes)} / {len(node_bytes)}"
        for op, ours, base, node in (
            (
                "encode",
                partial(etf.encode, term),
                partial(cbor2.dumps, as_plain),
                partial(node_codec.encode, as_tagged),
            ),
            (
                "decode",
                partial(etf.decode, etf_bytes),
                partial(cbor2.loads, cbor_bytes),
                partial(node_codec.decode, node_bytes),
            ),
        ):
            r_ours = rate(ours, seconds, repeat)
            r_base = rate(base, seconds, repeat)
            r_node = rate(node, seconds, repeat)
            print(
                f"{name:<22} {op:<7} {r_ours:>11,.0f} {r_base:>11,.0f}"
                f" {r_ours / r_base:>5.2f}x {r_node:>12,.0f}   {sizes if op == 'encode' else ''}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
