"""A Python worker serving an Erlang node.

The Python node ``py@127.0.0.1`` joins an Erlang cluster as a hidden node:
it runs a `ta.GenServer` registered as ``py_worker`` and offers one function
to Erlang's ``rpc:call``. A real ``erl`` node then uses both the way an
Erlang program would, and sends what it got to a Python actor:

    gen_server:call({py_worker, 'py@127.0.0.1'}, {word_count, Text})
    rpc:call('py@127.0.0.1', py, upper, [Text])

Everything runs on a private ``epmd`` (a free port), so it does not disturb
other nodes on this machine. Needs Erlang/OTP (``erl``, ``epmd``); without
it the example says so and exits.

Run it: ``python examples/erlang_worker.py``
"""

from __future__ import annotations

import collections
import os
import shutil
import socket
import subprocess
import sys
from typing import Any

import trio

import trioactors as ta

HOST = "127.0.0.1"
PY_NODE = f"py@{HOST}"
COOKIE = "erlang-worker-example"

# What the Erlang node does: a gen_server call and an rpc into Python, and
# both answers sent to the Python actor registered as 'results'.
ERL_PROGRAM = f"""
Text = <<"the quick brown fox jumps over the lazy dog the end">>,
Counts = gen_server:call({{py_worker, '{PY_NODE}'}}, {{word_count, Text}}),
Upper = rpc:call('{PY_NODE}', py, upper, [Text]),
Missing = rpc:call('{PY_NODE}', os, cmd, ["id"]),
{{results, '{PY_NODE}'}} ! {{self(), Counts, Upper, Missing}},
receive thanks -> ok after 10000 -> ok end,
halt().
"""


class WordCounter(ta.GenServer):
    """Counts words for Erlang callers; requests are Erlang terms."""

    async def handle_call(self, request: Any, caller: ta.Caller) -> Any:
        """``{word_count, Text}`` -> the three most common words with counts."""
        op, text = request
        if op != ta.Atom("word_count"):
            return (ta.Atom("error"), ta.Atom("unknown_request"))
        # Erlang binaries arrive as str (valid UTF-8) and str goes back as binary.
        top = collections.Counter(text.split()).most_common(3)
        return (ta.Atom("ok"), [(word, count) for word, count in top])


def free_port() -> int:
    """A free TCP port for the private epmd."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


async def main() -> None:
    """Start epmd, the Python node and an erl that uses the Python worker."""
    port = free_port()
    epmd = await trio.lowlevel.open_process(
        ["epmd", "-port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        with trio.fail_after(10):
            while True:
                try:
                    await (await trio.open_tcp_stream(HOST, port)).aclose()
                    break
                except OSError:
                    await trio.sleep(0.05)  # epmd has no readiness signal but its port
        async with ta.open_node(PY_NODE, epmd=f"{HOST}:{port}", cookie=COOKIE) as node:
            await node.start_server(WordCounter, name="py_worker")
            node.register_rpc("py:upper", lambda text: text.upper())
            async with node.actor(name="results") as ctx:
                erl = await trio.lowlevel.open_process(
                    ["erl", "-name", f"e@{HOST}", "-setcookie", COOKIE, "-noshell",
                     "-start_epmd", "false", "-eval", ERL_PROGRAM],
                    env=dict(os.environ, ERL_EPMD_PORT=str(port)),
                )  # fmt: skip
                try:
                    sender, counts, upper, missing = await ctx.receive(timeout=30)
                    ctx.send(sender, ta.Atom("thanks"))
                    print(f"erl node {sender.node} called the Python worker:")
                    print(f"  gen_server:call -> {counts}")
                    print(f"  rpc:call py:upper -> {upper!r}")
                    print(f"  rpc:call os:cmd (not registered) -> {missing}")
                    with trio.fail_after(15):
                        await erl.wait()
                finally:
                    erl.kill()
    finally:
        epmd.kill()
        await epmd.wait()


if __name__ == "__main__":
    if not (shutil.which("erl") and shutil.which("epmd")):
        print("this example needs Erlang/OTP (erl, epmd): apt-get install erlang-nox")
        sys.exit(0)
    trio.run(main)
