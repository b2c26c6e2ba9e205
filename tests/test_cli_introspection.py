"""`trioactors info`, `rpc` and `top` against a running node, as a user
types them: real subprocesses, and `top`'s live view in a real terminal
(tmux)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio
from helpers import COOKIE, ROOT

import trioactors as ta

pytestmark = pytest.mark.slow


async def run_cli(*args: str) -> subprocess.CompletedProcess[bytes]:
    return await trio.run_process(
        [sys.executable, "-m", "trioactors", *args],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
        env={**os.environ, "TRIOACTORS_COOKIE": COOKIE},
        cwd=str(ROOT),
    )


async def idle(ctx: ta.Context) -> None:
    await ctx.receive(match=lambda m: False)


@asynccontextmanager
async def target() -> AsyncIterator[tuple[ta.Node, str]]:
    """A node in this process, addressed as the CLI would: name@host:port."""
    async with ta.open_node("alpha", epmd=None, cookie=COOKIE) as node:
        host, port = node.address
        yield node, f"alpha@{host}:{port}"


def backlog(node: ta.Node, name: str, n: int) -> ta.Pid:
    """An actor named `name` with `n` messages it never takes."""
    pid = node.spawn(idle, name=name)
    for i in range(n):
        node.send(pid, i)
    return pid


def boom() -> None:
    raise ValueError("out of widgets")


async def test_info_names_the_node_and_its_processes() -> None:
    async with target() as (node, where):
        backlog(node, "worker", 0)
        out = await run_cli("info", where)
        assert out.returncode == 0, out.stderr
        text = out.stdout.decode()
        assert text.startswith("node alpha (creation ")
        # Every process, and the one running this very rpc on the node.
        assert f"processes: {len(node.system.processes()) + 1}" in text
        assert "connections: (none)" in text  # the probe itself is not listed
        assert b"listening on" not in out.stderr  # the probe node stays quiet
        missing = await run_cli("info", "alpha@127.0.0.1:1", "--timeout", "2")
        assert missing.returncode == 1
        assert b"cannot reach node 'alpha'" in missing.stderr


async def test_rpc_calls_registered_functions_only() -> None:
    async with target() as (node, where):
        node.register_rpc("add", lambda a, b: a + b)
        node.register_rpc("boom", boom)
        ints = await run_cli("rpc", where, "add", "2", "3")
        assert (ints.returncode, ints.stdout.strip()) == (0, b"5"), ints.stderr
        strs = await run_cli("rpc", where, "add", "ab", "cd")  # not JSON: strings
        assert strs.stdout.strip() == b'"abcd"'
        lists = await run_cli("rpc", where, "add", "[1]", "[2, 3]")
        assert lists.stdout.strip() == b"[1, 2, 3]"
        failed = await run_cli("rpc", where, "boom")
        assert failed.returncode == 1
        assert b"out of widgets" in failed.stderr
        unknown = await run_cli("rpc", where, "os.system", "true")
        assert unknown.returncode == 1
        assert b"no such function is registered there" in unknown.stderr


async def test_top_once_lists_processes_by_mailbox_length() -> None:
    async with target() as (node, where):
        backlog(node, "small", 3)
        backlog(node, "big", 40)
        out = await run_cli("top", where, "--once")
        assert out.returncode == 0, out.stderr
        lines = out.stdout.decode().splitlines()
        head = next(i for i, line in enumerate(lines) if line.startswith("PID "))
        first, second = lines[head + 1].split(), lines[head + 2].split()
        assert first[1:4] == ["big", "waiting", "40"]
        assert second[1:4] == ["small", "waiting", "3"]
        assert "\x1b" not in out.stdout.decode()  # --once is for scripts: no escapes
        one = await run_cli("top", where, "--once", "--limit", "1")
        rows = one.stdout.decode().splitlines()
        assert any(line.startswith("... and ") and line.endswith(" more") for line in rows)
        assert not any(line.split()[1:2] == ["small"] for line in rows if line.startswith("<"))


@asynccontextmanager
async def tmux(tmp_path: Path) -> AsyncIterator[list[str]]:
    """A private tmux server (its own socket, no user config)."""
    base = ["tmux", "-S", str(tmp_path / "tmux.sock"), "-f", os.devnull]
    try:
        yield base
    finally:
        await trio.run_process([*base, "kill-server"], check=False, stderr=subprocess.DEVNULL)


async def screen(base: list[str]) -> str:
    out = await trio.run_process([*base, "capture-pane", "-p", "-t", "top"], capture_stdout=True)
    return out.stdout.decode()


async def wait_screen(base: list[str], what: str, check: Callable[[str], bool]) -> str:
    text = ""
    with trio.move_on_after(30):
        while True:
            text = await screen(base)
            if check(text):
                return text
            await trio.sleep(0.1)  # polling a terminal: it has no event to wait on
    raise AssertionError(f"timed out waiting for {what}; the screen:\n{text}")


def first_row(text: str) -> list[str]:
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("PID "):
            return lines[i + 1].split() if i + 1 < len(lines) else []
    return []


@pytest.mark.skipif(
    shutil.which("tmux") is None,
    reason="tmux is not installed: apt-get install tmux "
    "(scripts/install-test-tools.sh does it in `make test`)",
)
async def test_top_live_view_in_a_terminal(tmp_path: Path) -> None:
    exit_file = tmp_path / "exit"
    async with target() as (node, where), tmux(tmp_path) as base:
        backlog(node, "big", 40)
        command = (
            f"env TRIOACTORS_COOKIE={COOKIE} {sys.executable} -m trioactors top {where}"
            f" --interval 0.2; echo $? > {exit_file}; {' '.join(base)} wait-for -S ended; sleep 60"
        )
        await trio.run_process(
            [*base, "new-session", "-d", "-s", "top", "-x", "120", "-y", "40", command],
            cwd=str(ROOT),
        )
        text = await wait_screen(base, "the first view", lambda t: first_row(t)[1:2] == ["big"])
        assert "q to quit" in text
        # Live: a new, larger backlog moves to the top on the next refresh.
        backlog(node, "bigger", 100)
        await wait_screen(
            base, "a refresh", lambda t: first_row(t)[1:4] == ["bigger", "waiting", "100"]
        )
        await trio.run_process([*base, "send-keys", "-t", "top", "q"])
        with trio.fail_after(30):
            await trio.run_process([*base, "wait-for", "ended"])  # top has exited
        assert exit_file.read_text().strip() == "0"
        # The alternate screen is left: the view is gone from the terminal.
        assert "q to quit" not in await screen(base)
