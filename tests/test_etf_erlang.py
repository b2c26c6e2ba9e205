"""`ta.EtfCodec` against the real thing: Erlang/OTP's `term_to_binary` and
`binary_to_term`, byte for byte, in both directions.

Each direction runs `erl` once for the whole batch of sample terms. Without
`erl` on PATH these skip.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import attrs
import pytest

import trioactors as ta

pytestmark = [
    pytest.mark.erlang,
    pytest.mark.skipif(
        shutil.which("erl") is None,
        reason="Erlang/OTP (erl) is not installed: apt-get install erlang-nox "
        "(scripts/install-test-tools.sh does it in `make test`)",
    ),
]

A = ta.Atom
NONODE = "nonode@nohost"
_SAME: Any = object()


@attrs.frozen
class Sample:
    """An Erlang expression, the Python value it decodes to and, when it is
    not the same value, the Python value that encodes to the same bytes."""

    erlang: str
    decoded: Any
    source: Any = _SAME

    @property
    def python(self) -> Any:
        return self.decoded if self.source is _SAME else self.source


SAMPLES = [
    Sample("ok", A("ok")),
    Sample("'hello world'", A("hello world")),
    Sample("'$gen_call'", A("$gen_call")),
    Sample("'ünïcødé→'", A("ünïcødé→")),
    Sample("list_to_atom(lists:duplicate(255, $a))", A("a" * 255)),
    Sample("list_to_atom(lists:duplicate(255, 16#e9))", A("é" * 255)),
    Sample("''", A("")),
    Sample("true", True),
    Sample("false", False),
    Sample("undefined", None),
    *[
        Sample(str(n), n)
        for n in (0, 255, 256, -1, 2**31 - 1, -(2**31), 2**31, -(2**31) - 1, 2**64, -(2**64))
    ],
    Sample("1 bsl 2039", 2**2039),
    Sample("-(1 bsl 2040)", -(2**2040)),
    Sample("1.5", 1.5),
    Sample("3.141592653589793", 3.141592653589793),
    Sample("1.0e300", 1.0e300),
    Sample("-2.5e-300", -2.5e-300),
    Sample("<<>>", b""),
    Sample("<<1, 2, 3>>", b"\x01\x02\x03"),
    Sample('<<"héllo"/utf8>>', "héllo".encode(), "héllo"),
    Sample("<<5:3>>", ta.BitString(b"\xa0", 3)),
    Sample("<<1, 2, 3:4>>", ta.BitString(b"\x01\x02\x30", 4)),
    Sample("{}", ()),
    Sample('{a, 1, <<"b">>}', (A("a"), 1, b"b")),
    Sample("list_to_tuple(lists:seq(1, 300))", tuple(range(1, 301))),
    Sample("[]", []),
    Sample('"abc"', [97, 98, 99]),
    Sample("[1000, 2000]", [1000, 2000]),
    Sample("[a, [b, [c]], {d}]", [A("a"), [A("b"), [A("c")]], (A("d"),)]),
    Sample("lists:duplicate(70000, 1)", [1] * 70000),
    Sample("[1 | 2]", ta.ImproperList((1,), 2)),
    Sample("[a, b | c]", ta.ImproperList((A("a"), A("b")), A("c"))),
    Sample("#{}", {}),
    Sample("#{a => 1, b => 2}", {A("a"): 1, A("b"): 2}),
    Sample('#{1 => x, a => y, <<"k">> => z}', {1: A("x"), A("a"): A("y"), b"k": A("z")}),
    Sample('#{"key" => 1}', {ta.FrozenList(b"key"): 1}),
    Sample("#{a => #{b => [1, 2]}}", {A("a"): {A("b"): [1, 2]}}),
    Sample('list_to_pid("<0.10.3>")', ta.Pid(NONODE, 10, 3, 0)),
    Sample('list_to_ref("#Ref<0.1.2.3>")', ta.Ref(NONODE, 0, (3, 2, 1))),
    Sample('list_to_port("#Port<0.7>")', ta.Port(NONODE, 7, 0)),
    Sample("fun lists:map/2", ta.ErlangFun.export("lists", "map", 2)),
    Sample(
        '{\'$gen_call\', {list_to_pid("<0.5.0>"), list_to_ref("#Ref<0.1.2.3>")},'
        ' {put, <<"k">>, [1.5, ok]}}',
        (
            A("$gen_call"),
            (ta.Pid(NONODE, 5, 0, 0), ta.Ref(NONODE, 0, (3, 2, 1))),
            (A("put"), b"k", [1.5, A("ok")]),
        ),
    ),
    Sample('lists:duplicate(500, {ok, <<"payload">>})', [(A("ok"), b"payload")] * 500),
]

CLOSURE = "fun(X) -> X + 1 end"

# Evaluates each line of the file $ETF_CASES as an expression and prints, per
# line, term_to_binary/2 in hex with minor_version 2 (what distribution
# uses), the default (1: Latin-1 atoms), 0 (FLOAT_EXT) and compressed.
ERL_ENCODE = r"""
Eval = fun(Src) ->
    {ok, Toks, _} = erl_scan:string(Src ++ "."),
    {ok, Exprs} = erl_parse:parse_exprs(Toks),
    {value, T, _} = erl_eval:exprs(Exprs, []),
    T
end,
Hex = fun(B) -> binary_to_list(binary:encode_hex(B)) end,
{ok, Bin} = file:read_file(os:getenv("ETF_CASES")),
Lines = string:split(unicode:characters_to_list(Bin), "\n", all),
lists:foreach(fun("") -> ok; (Src) ->
    T = Eval(Src),
    io:format("~s ~s ~s ~s~n", [Hex(term_to_binary(T, [{minor_version, 2}])),
                                Hex(term_to_binary(T)),
                                Hex(term_to_binary(T, [{minor_version, 0}])),
                                Hex(term_to_binary(T, [compressed]))])
end, Lines),
halt().
"""

# Each line of $ETF_CASES is "<hex of our bytes> <expression or ->": prints
# term_to_binary(binary_to_term(Ours), [{minor_version, 2}]) in hex and
# whether the decoded term =:= the expression's value (or "error ...").
ERL_DECODE = r"""
Eval = fun(Src) ->
    {ok, Toks, _} = erl_scan:string(Src ++ "."),
    {ok, Exprs} = erl_parse:parse_exprs(Toks),
    {value, T, _} = erl_eval:exprs(Exprs, []),
    T
end,
Hex = fun(B) -> binary_to_list(binary:encode_hex(B)) end,
{ok, Bin} = file:read_file(os:getenv("ETF_CASES")),
Lines = string:split(unicode:characters_to_list(Bin), "\n", all),
lists:foreach(fun("") -> ok; (Line) ->
    [H, Src] = string:split(Line, " "),
    try
        T = binary_to_term(binary:decode_hex(list_to_binary(H))),
        Same = case Src of "-" -> none; _ -> Eval(Src) =:= T end,
        io:format("~s ~s~n", [Hex(term_to_binary(T, [{minor_version, 2}])), Same])
    catch C:R -> io:format("error ~p~n", [{C, R}])
    end
end, Lines),
halt().
"""


def run_erl(script: str, lines: list[str], tmp_path: Path) -> list[str]:
    cases = tmp_path / "cases.txt"
    cases.write_text("\n".join(lines) + "\n", encoding="utf-8")
    proc = subprocess.run(
        ["erl", "-noshell", "-eval", script],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,  # a crashing erl writes erl_crash.dump into its cwd
        env={"ETF_CASES": str(cases), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    # The tail of the output: erl's crash report, not the hex of every term.
    assert proc.returncode == 0, (proc.stderr + proc.stdout)[-3000:]
    out = proc.stdout.splitlines()
    assert len(out) == len(lines), (proc.stdout + proc.stderr)[-3000:]
    return out


def test_erlang_term_to_binary_matches_and_decodes(tmp_path: Path) -> None:
    codec = ta.EtfCodec()
    exprs = [s.erlang for s in SAMPLES] + [CLOSURE]
    out = run_erl(ERL_ENCODE, exprs, tmp_path)
    compressed_seen = False
    for sample, line in zip(SAMPLES, out, strict=False):
        forms = [bytes.fromhex(h) for h in line.split()]
        distribution, _default, _oldest, compressed = forms
        # Our encoding is Erlang's, byte for byte.
        assert codec.encode(sample.python) == distribution, sample.erlang
        # Every form Erlang writes decodes to the same value.
        for form in forms:
            assert codec.decode(form) == sample.decoded, (sample.erlang, form.hex())
        compressed_seen |= compressed[1] == 80
    assert compressed_seen, "no sample was large enough for Erlang to compress"
    # A closure stays opaque and goes back byte for byte.
    closure = bytes.fromhex(out[-1].split()[0])
    fun = codec.decode(closure)
    assert isinstance(fun, ta.ErlangFun) and fun.module == A("erl_eval") and fun.arity == 1
    assert codec.encode(fun) == closure


REMOTE = [
    ta.Pid("alpha@host", 42, 1, 7),
    ta.Pid("béta@höst", 2**32 - 1, 2**32 - 1, 2**32 - 1),
    ta.Ref("alpha@host", 7, (1, 2, 3, 4, 5)),
    ta.Port("alpha@host", 2**40, 9),
    ta.ImproperList((1, [2]), ta.BitString(b"\x80", 1)),
    {A("nested"): [{A("k"): (1.25, b"")}], A("pid"): ta.Pid("alpha@host", 1, 0, 1)},
]


def test_erlang_binary_to_term_reads_our_bytes(tmp_path: Path) -> None:
    codec = ta.EtfCodec()
    ours = [codec.encode(s.python) for s in SAMPLES] + [codec.encode(v) for v in REMOTE]
    lines = [f"{data.hex()} {s.erlang}" for data, s in zip(ours, SAMPLES, strict=False)]
    lines += [f"{data.hex()} -" for data in ours[len(SAMPLES) :]]
    out = run_erl(ERL_DECODE, lines, tmp_path)
    for line, data, what in zip(out, ours, [*SAMPLES, *REMOTE], strict=True):
        assert not line.startswith("error"), (what, line)
        reencoded, same = line.split()
        # Erlang reads the term we meant, and writes it back as we did.
        assert same in ("true", "none"), (what, line)
        assert bytes.fromhex(reencoded) == data, what
