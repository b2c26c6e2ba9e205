"""Real Erlang nodes for tests: a private epmd and an `erl` that evaluates
the expressions a test sends it, one per line, printing each result.

    async with private_epmd() as port, erl_repl(port) as erl:
        assert await erl.eval("net_adm:ping('py@127.0.0.1')") == "pong"

Tests that use them are marked with `needs_erlang` and skip, saying why,
where Erlang/OTP is not installed.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest
import trio

HOST = "127.0.0.1"
COOKIE = "erlang-peer-cookie"
HAVE_ERLANG = all(shutil.which(tool) for tool in ("erl", "epmd", "erlc"))

_F = TypeVar("_F", bound=Callable[..., Any])


def needs_erlang(fn: _F) -> _F:
    """Mark a test as needing Erlang/OTP; skip it, saying why, without."""
    skip = pytest.mark.skipif(
        not HAVE_ERLANG,
        reason="Erlang/OTP (erl, erlc, epmd) is not installed: apt-get install erlang-nox "
        "(scripts/install-test-tools.sh does it in `make test`)",
    )
    marked: _F = pytest.mark.erlang(skip(fn))
    return marked


def free_port() -> int:
    """A TCP port free on HOST right now."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


@asynccontextmanager
async def private_epmd() -> AsyncIterator[int]:
    """A real epmd of our own on a free port (never the machine's 4369)."""
    port = free_port()
    proc = await trio.lowlevel.open_process(
        ["epmd", "-port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        with trio.fail_after(10):
            while True:
                try:
                    stream = await trio.open_tcp_stream(HOST, port)
                except OSError:
                    # epmd gives no readiness signal but its listening socket.
                    await trio.sleep(0.02)
                    continue
                await stream.aclose()
                break
        yield port
    finally:
        proc.kill()
        with trio.CancelScope(shield=True):
            await proc.wait()


# Evaluates one expression per input line in one process (so `self()` stays
# the same and bindings carry over) and prints "=> " and the result on one line.
_REPL = r"""
Print = fun(V) -> io:format("=> ~ts~n", [io_lib:print(V, 1, 1000000, -1)]) end,
Loop = fun Loop(Bs) ->
    case io:get_line("") of
        eof -> halt();
        Line ->
            Bs2 = try
                {ok, Toks, _} = erl_scan:string(Line),
                {ok, Exprs} = erl_parse:parse_exprs(Toks),
                {value, V, B} = erl_eval:exprs(Exprs, Bs),
                Print(V),
                B
            catch Class:Reason -> Print({caught, Class, Reason}), Bs
            end,
            Loop(Bs2)
    end
end,
io:format("ready~n"),
Loop(erl_eval:new_bindings()).
"""


class Erl:
    """A running `erl` REPL (see the module docstring)."""

    def __init__(self, proc: trio.Process, name: str) -> None:
        self.proc = proc
        self.name = name
        self.lines: list[str] = []
        self._buf = b""

    async def _line(self) -> str:
        assert self.proc.stdout is not None
        while b"\n" not in self._buf:
            chunk = await self.proc.stdout.receive_some(65536)
            if not chunk:
                raise AssertionError(f"erl exited; it printed: {self.lines}")
            self._buf += chunk
        raw, self._buf = self._buf.split(b"\n", 1)
        line = raw.decode(errors="replace").rstrip("\r")
        self.lines.append(line)
        return line

    async def wait_for(self, prefix: str, within: float = 30) -> str:
        """The next output line starting with `prefix` (others are skipped)."""
        with trio.fail_after(within):
            while True:
                line = await self._line()
                if line.startswith(prefix):
                    return line

    async def eval(self, expr: str, within: float = 30) -> str:
        """Evaluate the Erlang expression `expr` (no final dot) in erl; its
        value as erl prints it (``{caught, Class, Reason}`` if it raised)."""
        assert self.proc.stdin is not None
        await self.proc.stdin.send_all(expr.strip().encode() + b".\n")
        line = await self.wait_for("=> ", within)
        return line[3:]


@asynccontextmanager
async def erl_repl(
    epmd: int,
    *,
    name: str = f"e1@{HOST}",
    cookie: str = COOKIE,
    code_path: Path | None = None,
    ticktime: int | None = None,
    hidden: bool = False,
) -> AsyncIterator[Erl]:
    """A real `erl -name NAME` registered with the epmd on port `epmd`."""
    args = ["erl", "-name", name, "-setcookie", cookie, "-noshell", "-start_epmd", "false"]
    if code_path is not None:
        args += ["-pa", str(code_path)]
    if ticktime is not None:
        args += ["-kernel", "net_ticktime", str(ticktime)]
    if hidden:
        args.append("-hidden")
    proc = await trio.lowlevel.open_process(
        [*args, "-eval", _REPL],
        env=dict(os.environ, ERL_EPMD_PORT=str(epmd)),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=str(code_path) if code_path is not None else None,
    )
    erl = Erl(proc, name)
    try:
        await erl.wait_for("ready")
        yield erl
    finally:
        proc.kill()
        with trio.CancelScope(shield=True):
            await proc.wait()


#: An Erlang gen_server for the tests that call into Erlang.
KV_ERL = r"""
-module(kv).
-behaviour(gen_server).
-export([start/0, init/1, handle_call/3, handle_cast/2, handle_info/2]).
start() -> gen_server:start({local, kv}, ?MODULE, [], []).
init([]) -> {ok, #{}}.
handle_call({put, K, V}, _From, S) -> {reply, ok, S#{K => V}};
handle_call({get, K}, _From, S) -> {reply, maps:get(K, S, undefined), S};
handle_call({sleep, Ms}, _From, S) -> timer:sleep(Ms), {reply, slept, S};
handle_call(crash, _From, _S) -> exit(boom).
handle_cast({put, K, V}, S) -> {noreply, S#{K => V}}.
handle_info(_, S) -> {noreply, S}.
"""


def compile_erlang(directory: Path, module: str, source: str) -> Path:
    """Compile `source` as `module`.erl into `directory`; the directory."""
    path = directory / f"{module}.erl"
    path.write_text(source)
    subprocess.run(["erlc", "-o", str(directory), str(path)], check=True)
    return directory
