"""`trioactors epmd` and `trioactors nodes` as real subprocesses."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import trio

import trioactors as ta

ROOT = Path(__file__).resolve().parent.parent


class Daemon:
    """A `trioactors epmd` subprocess whose log we can wait on."""

    def __init__(self, proc: trio.Process) -> None:
        self.proc = proc
        self.log = ""
        self.port = 0

    async def wait_log(self, pattern: str, seconds: float = 20.0) -> re.Match[str]:
        assert self.proc.stderr is not None
        with trio.fail_after(seconds):
            while not (m := re.search(pattern, self.log)):
                chunk = await self.proc.stderr.receive_some(4096)
                assert chunk, f"daemon exited; log so far:\n{self.log}"
                self.log += chunk.decode()
        return m

    async def finish(self) -> int:
        assert self.proc.stderr is not None
        with trio.fail_after(20):
            while chunk := await self.proc.stderr.receive_some(4096):
                self.log += chunk.decode()
            return await self.proc.wait()


async def start_daemon(*args: str) -> Daemon:
    proc = await trio.lowlevel.open_process(
        [sys.executable, "-m", "trioactors", "epmd", "--host", "127.0.0.1", "--port", "0", *args],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
    )
    daemon = Daemon(proc)
    m = await daemon.wait_log(r"listening on 127\.0\.0\.1:(\d+)")
    daemon.port = int(m.group(1))
    return daemon


async def run_cli(
    *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    return await trio.run_process(
        [sys.executable, "-m", "trioactors", *args],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
        env=env,
    )


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_epmd_daemon_logs_and_stops_cleanly_on_signals(signum: signal.Signals) -> None:
    daemon = await start_daemon("--keepalive-timeout", "30")
    try:
        async with ta.EpmdClient("127.0.0.1", daemon.port) as client:
            await client.register("alpha", "127.0.0.1", 5000, metadata={"role": "web"})
            await daemon.wait_log(r"registered alpha at 127\.0\.0\.1:5000 \(trioactors")
            listing = await run_cli("nodes", "--epmd", f"127.0.0.1:{daemon.port}")
            assert listing.returncode == 0
            out = listing.stdout.decode()
            assert f"trioactors EPMD at 127.0.0.1:{daemon.port}: 1 node" in out
            assert re.search(r"alpha\s+127\.0\.0\.1\s+5000\s+trioactors\s+\d+\s+v1 role=web", out)
        await daemon.wait_log(r"removed alpha \(unregistered\)")
    finally:
        daemon.proc.send_signal(signum)
    assert await daemon.finish() == 0
    assert "EPMD daemon stopped" in daemon.log


async def test_nodes_uses_trioactors_epmd_env() -> None:
    daemon = await start_daemon()
    try:
        env = dict(os.environ, TRIOACTORS_EPMD=f"127.0.0.1:{daemon.port}")
        result = await run_cli("nodes", env=env)
        assert result.returncode == 0
        assert f"at 127.0.0.1:{daemon.port}: 0 nodes" in result.stdout.decode()
    finally:
        daemon.proc.send_signal(signal.SIGTERM)
    assert await daemon.finish() == 0


async def test_nodes_without_a_daemon_exits_1_with_one_line() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = await run_cli("nodes", "--epmd", f"127.0.0.1:{port}")
    assert result.returncode == 1
    err = result.stderr.decode()
    assert err.count("\n") == 1 and f"127.0.0.1:{port}" in err and "trioactors epmd" in err
    assert result.stdout == b""


async def test_epmd_on_a_busy_port_exits_1() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        result = await run_cli("epmd", "--host", "127.0.0.1", "--port", str(port))
    assert result.returncode == 1
    assert "cannot listen" in result.stderr.decode()


@pytest.mark.skipif(shutil.which("epmd") is None, reason="Erlang/OTP's epmd is not installed")
async def test_epmd_kill_from_the_real_epmd_tool_stops_the_daemon() -> None:
    daemon = await start_daemon()
    env = dict(os.environ, ERL_EPMD_PORT=str(daemon.port))
    result = await trio.run_process(["epmd", "-kill"], env=env, capture_stdout=True, check=False)
    assert result.stdout.decode().strip() == "Killed"
    assert await daemon.finish() == 0
    assert "stopped by KILL_REQ" in daemon.log


async def test_benchmark_quick_runs() -> None:
    result = await trio.run_process(
        [sys.executable, str(ROOT / "benchmarks" / "epmd.py"), "--quick"],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()
    out = result.stdout.decode()
    for figure in ("lookups/s, 1 connection", "lookups/s, 50 clients", "list 1000 nodes"):
        assert figure in out, out
