"""Python <-> erl over Erlang's distribution protocol, beside erl <-> erl.

One run, one machine, a private epmd: two real erl nodes (``e1``, ``e2``)
and a trioactors node (``py``), all connected. The baseline is erl talking to
erl; every Python figure is printed beside it with the ratio.

1. round trips driven by e1: to an echo process on e2 (baseline) and to an
   echo actor on py (erl dials us);
2. round trips driven by py: a Python actor to the echo process on e2
   (we dial erl), beside e1 -> e2;
3. one-way throughput: e1 -> e2 (baseline), e1 -> py and py -> e2, each
   ending with a marker the receiver acknowledges (the channel is ordered,
   so every message has arrived by then).

Run: ``python benchmarks/erlang.py`` (``--quick`` for a smoke run). Needs
Erlang/OTP (``erl``, ``epmd``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import time
from typing import Any

import trio

import trioactors as ta

HOST = "127.0.0.1"
PY = f"py@{HOST}"
E1 = f"e1@{HOST}"
E2 = f"e2@{HOST}"
COOKIE = "erlang-benchmark"
Atom = ta.Atom

# erl: an echo process and a sink (registered), then a line-command driver
# that times round trips and one-way sends to any {Name, Node}.
ERL_PROGRAM = r"""
register(echo, spawn(fun E() -> receive {From, M} -> From ! M, E() end end)),
register(sink, spawn(fun S() -> receive {done, From} -> From ! done, S(); _ -> S() end end)),
Rtt = fun(To, N) ->
    T0 = erlang:monotonic_time(microsecond),
    lists:foreach(fun(I) -> To ! {self(), I}, receive I -> ok end end, lists:seq(1, N)),
    erlang:monotonic_time(microsecond) - T0
end,
OneWay = fun(To, N) ->
    T0 = erlang:monotonic_time(microsecond),
    lists:foreach(fun(I) -> To ! {msg, I} end, lists:seq(1, N)),
    To ! {done, self()},
    receive done -> ok end,
    erlang:monotonic_time(microsecond) - T0
end,
Loop = fun L() ->
    case io:get_line("") of
        eof -> halt();
        Line ->
            [Cmd, Name, Node, N] = string:lexemes(string:trim(Line), " "),
            To = {list_to_atom(Name), list_to_atom(Node)},
            F = case Cmd of "rtt" -> Rtt; "oneway" -> OneWay end,
            io:format("us ~p~n", [F(To, list_to_integer(N))]),
            L()
    end
end,
io:format("ready~n"),
Loop().
"""


class ErlDriver:
    """One erl node running ERL_PROGRAM."""

    def __init__(self, proc: trio.Process) -> None:
        self.proc = proc
        self._buf = b""

    async def line(self, prefix: str) -> str:
        """The next output line that starts with `prefix`."""
        assert self.proc.stdout is not None
        while True:
            while b"\n" not in self._buf:
                chunk = await self.proc.stdout.receive_some(65536)
                if not chunk:
                    raise RuntimeError("erl exited")
                self._buf += chunk
            raw, self._buf = self._buf.split(b"\n", 1)
            text = raw.decode(errors="replace").strip()
            if text.startswith(prefix):
                return text

    async def run(self, cmd: str, name: str, node: str, n: int) -> float:
        """Seconds erl took for `cmd` (rtt or oneway) of `n` messages to {name, node}."""
        assert self.proc.stdin is not None
        await self.proc.stdin.send_all(f"{cmd} {name} {node} {n}\n".encode())
        return int((await self.line("us ")).split()[1]) / 1e6


def free_port() -> int:
    """A free TCP port for the private epmd."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


async def echo(ctx: ta.Context) -> None:
    """Sends each ``{From, M}`` back to From as M."""
    while True:
        sender, msg = await ctx.receive()
        ctx.send(sender, msg)


async def sink(ctx: ta.Context) -> None:
    """Drops messages; answers ``{done, From}`` with ``done``."""
    done = Atom("done")
    while True:
        msg = await ctx.receive()
        if type(msg) is tuple and msg[0] == done:
            ctx.send(msg[1], done)


async def py_rtt(node: ta.Node, to: tuple[str, str], n: int) -> float:
    """Seconds for `n` round trips from a Python actor to erl's echo."""
    async with node.actor() as ctx:
        me = ctx.pid
        start = time.perf_counter()
        for i in range(n):
            ctx.send(to, (me, i))
            await ctx.receive()
        return time.perf_counter() - start


async def py_oneway(node: ta.Node, to: tuple[str, str], n: int) -> float:
    """Seconds for `n` one-way messages from Python to erl's sink, acknowledged."""
    msg = Atom("msg")
    async with node.actor() as ctx:
        start = time.perf_counter()
        for i in range(n):
            ctx.send(to, (msg, i))
            if i % 1000 == 999:
                await trio.lowlevel.checkpoint()  # let the writer batch and send
        ctx.send(to, (Atom("done"), ctx.pid))
        await ctx.receive()
        return time.perf_counter() - start


def row(label: str, value: float, base: float, unit: str, higher_is_better: bool) -> None:
    """One figure beside its erl <-> erl baseline, and the ratio."""
    ratio = value / base if higher_is_better else base / value
    print(
        f"  {label:<34} {value:>12,.0f} {unit:<6} erl<->erl {base:>12,.0f} {unit:<6} {ratio:.2f}x"
    )


async def main(quick: bool) -> None:
    """Start epmd, e1, e2 and py; measure; print."""
    rtts, msgs = (200, 2_000) if quick else (5_000, 100_000)
    port = free_port()
    env = dict(os.environ, ERL_EPMD_PORT=str(port))
    epmd = await trio.lowlevel.open_process(
        ["epmd", "-port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    procs: list[trio.Process] = []
    try:
        with trio.fail_after(10):
            while True:
                try:
                    await (await trio.open_tcp_stream(HOST, port)).aclose()
                    break
                except OSError:
                    await trio.sleep(0.05)
        drivers = []
        for name in (E1, E2):
            proc = await trio.lowlevel.open_process(
                ["erl", "-name", name, "-setcookie", COOKIE, "-noshell",
                 "-start_epmd", "false", "-eval", ERL_PROGRAM],
                env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            )  # fmt: skip
            procs.append(proc)
            drivers.append(ErlDriver(proc))
        e1, _e2 = drivers
        for d in drivers:
            await d.line("ready")
        async with ta.open_node(PY, epmd=f"{HOST}:{port}", cookie=COOKIE) as node:
            node.spawn(echo, name="echo")
            node.spawn(sink, name="sink")
            # Warm up every connection (and erl's code loading) before timing.
            await e1.run("rtt", "echo", E2, 100)
            await e1.run("rtt", "echo", PY, 100)
            await py_rtt(node, ("echo", E2), 100)

            print(f"Erlang distribution, {rtts} round trips, {msgs} one-way messages")
            print("round trips (rt/s):")
            base_rtt = rtts / await e1.run("rtt", "echo", E2, rtts)
            row("e1 -> py echo (erl dials us)", rtts / await e1.run("rtt", "echo", PY, rtts),
                base_rtt, "rt/s", True)  # fmt: skip
            row("py -> e2 echo (we dial erl)", rtts / await py_rtt(node, ("echo", E2), rtts),
                base_rtt, "rt/s", True)  # fmt: skip
            print("one-way throughput (msg/s):")
            base_one = msgs / await e1.run("oneway", "sink", E2, msgs)
            row("e1 -> py sink", msgs / await e1.run("oneway", "sink", PY, msgs),
                base_one, "msg/s", True)  # fmt: skip
            row("py -> e2 sink", msgs / await py_oneway(node, ("sink", E2), msgs),
                base_one, "msg/s", True)  # fmt: skip
    finally:
        for proc in procs:
            proc.kill()
        epmd.kill()
        with trio.CancelScope(shield=True):
            for proc in (*procs, epmd):
                await proc.wait()


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a smoke run with few messages")
    return parser.parse_args(argv)


def _run(args: Any) -> None:
    trio.run(main, args.quick)


if __name__ == "__main__":
    if not (shutil.which("erl") and shutil.which("epmd")):
        print("this benchmark needs Erlang/OTP (erl, epmd): apt-get install erlang-nox")
        sys.exit(0)
    _run(parse())
