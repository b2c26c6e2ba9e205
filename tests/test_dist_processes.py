"""Multi-process tests: real `trioactors node` processes, killed, frozen, flooded."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio
import trio.lowlevel
from helpers import NodeProcess, node_process

import trioactors as ta

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
APPS = str(ROOT / "tests" / "dist_apps.py")
COOKIE = "process-test-cookie"


async def _stop(node: NodeProcess, sig: int = signal.SIGTERM) -> int:
    node.proc.send_signal(sig)
    with trio.fail_after(20):
        return await node.proc.wait()


@asynccontextmanager
async def epmd_daemon(port: int = 0) -> AsyncIterator[ta.EpmdServer]:
    async with trio.open_nursery() as n:
        server = await n.start(ta.serve_epmd, "127.0.0.1", port)
        yield server
        n.cancel_scope.cancel()


async def test_sigkill_is_noconnection_everywhere() -> None:
    async with (
        node_process("beta", "--epmd", "none") as beta,
        ta.open_node("alpha", epmd=None, cookie=COOKIE) as alpha,
        alpha.actor(trap_exits=True) as me,
    ):
        await alpha.connect(beta.target)
        me.send(("echo", "beta"), (me.pid, "hello"))
        assert await me.receive(timeout=10) == ("echo", "hello")
        echo = await alpha.spawn_on("beta", "echo", link_to=me.pid)
        ref = me.monitor(("counter", "beta"))
        me.monitor_node("beta")
        await alpha.call(("counter", "beta"), 1, timeout=10)  # link/monitor are there now
        failures: list[ta.CallFailed] = []

        async def pending_call(task_status: trio.TaskStatus[None]) -> None:
            try:
                # The request is queued before the call's first checkpoint.
                task_status.started()
                await alpha.call(("counter", "beta"), "never", timeout=30)
            except ta.CallFailed as exc:
                failures.append(exc)

        async with trio.open_nursery() as n:
            await n.start(pending_call)
            # A round trip to beta after the request: it reached beta.
            me.send(("echo", "beta"), (me.pid, "after the call"))
            assert await me.receive(timeout=10) == ("echo", "after the call")
            beta.proc.kill()
        got = [await me.receive(timeout=10) for _ in range(3)]
        assert ta.Exit(echo, "noconnection") in got
        assert ta.Down(ref, ("counter", "beta"), "noconnection") in got
        assert ta.NodeDown("beta", "connection_closed") in got
        assert failures[0].reason == ("nodedown", "beta")
        assert alpha.nodes() == []


async def test_sigstop_is_detected_by_ticks() -> None:
    async with (
        node_process("beta", "--epmd", "none", "--tick-timeout", "2") as beta,
        ta.open_node("alpha", epmd=None, cookie=COOKIE, tick_timeout=2.0) as alpha,
        alpha.actor() as me,
    ):
        await alpha.connect(beta.target)
        ref = me.monitor(("echo", "beta"))
        me.monitor_node("beta")
        await alpha.call(("counter", "beta"), 1, timeout=10)
        beta.proc.send_signal(signal.SIGSTOP)
        try:
            start = trio.current_time()
            got = [await me.receive(timeout=10) for _ in range(2)]
            elapsed = trio.current_time() - start
        finally:
            beta.proc.send_signal(signal.SIGCONT)
        assert ta.NodeDown("beta", "net_tick_timeout") in got
        assert ta.Down(ref, ("echo", "beta"), "noconnection") in got
        assert 1.5 < elapsed < 6.0
        assert await _stop(beta) == 0


async def test_epmd_restart_is_survived() -> None:
    async with epmd_daemon() as first:
        port = first.port
        epmd = f"127.0.0.1:{port}"
        async with (
            node_process("beta", "--epmd", epmd, "--epmd-keepalive", "0.2") as beta,
            ta.open_node("alpha", epmd=epmd, cookie=COOKIE, epmd_keepalive=0.2) as alpha,
        ):
            assert await alpha.call(("counter", "beta"), 1, timeout=10) == 1
            first_names = sorted(i.name for i in first.nodes())
            first.shutdown()
            # No daemon: the existing connection carries on.
            assert await alpha.call(("counter", "beta"), 1, timeout=10) == 2
            async with epmd_daemon(port) as second:
                with trio.fail_after(10):
                    while sorted(i.name for i in second.nodes()) != first_names:
                        await second.wait_changed()
                assert sorted(i.name for i in second.nodes()) == ["alpha", "beta"]
                assert await alpha.call(("counter", "beta"), 1, timeout=10) == 3
                assert {i.name for i in await alpha.list_nodes()} == {"alpha", "beta"}
                assert await _stop(beta) == 0
                assert [i.name for i in second.nodes()] == ["alpha"]


async def _run_cli(*args: str, cookie: str = COOKIE) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "TRIOACTORS_COOKIE": cookie}
    return await trio.run_process(
        [sys.executable, "-m", "trioactors", *args],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
        env=env,
        cwd=str(ROOT),
    )


async def test_ping_and_wrong_cookie(tmp_path: Path) -> None:
    async with epmd_daemon() as server:
        epmd = f"127.0.0.1:{server.port}"
        async with node_process("beta", "--epmd", epmd, stderr=subprocess.PIPE) as beta:
            ok = await _run_cli("ping", "beta", "--epmd", epmd)
            assert (ok.returncode, ok.stdout.strip()) == (0, b"pong")
            cookie_file = tmp_path / "cookie"
            cookie_file.write_text("wrong\n")
            bad = await _run_cli("ping", beta.target, "--cookie-file", str(cookie_file))
            assert (bad.returncode, bad.stdout.strip()) == (1, b"pang")
            assert b"wrong cookie" in bad.stderr
            missing = await _run_cli("ping", "nobody", "--epmd", epmd)
            assert (missing.returncode, missing.stdout.strip()) == (1, b"pang")
            assert await _stop(beta) == 0
            assert beta.proc.stderr is not None
            log = await beta.proc.stderr.receive_some(1 << 20)
            assert b"failed the cookie challenge" in log


async def test_garbage_and_oversized_frames_on_the_node_port() -> None:
    async with node_process("beta", "--epmd", "none") as beta:
        # A peer that sends half a header and stalls holds only its own connection.
        stalled = await trio.open_tcp_stream(*beta.address)
        await stalled.send_all(b"\x00\x00\x00")
        for payload in (
            b"\x00\x00\x00\x05hello",
            b"\xff\xff\xff\xff" + b"x" * 100,  # 4 GiB announced: refused at the header
            os.urandom(4096),
        ):
            stream = await trio.open_tcp_stream(*beta.address)
            try:
                await stream.send_all(payload)
                with trio.fail_after(10):
                    while await stream.receive_some(4096):
                        pass
            except trio.BrokenResourceError:
                pass  # reset by the node: closed all the same
            finally:
                await stream.aclose()
        ok = await _run_cli("ping", beta.target)
        assert ok.stdout.strip() == b"pong"
        await stalled.aclose()
        assert await _stop(beta, signal.SIGINT) == 0  # Ctrl-C is a graceful exit too


async def test_100k_messages_none_lost_order_kept() -> None:
    total = 100_000
    senders = 4
    async with (
        node_process("beta", "--epmd", "none") as beta,
        ta.open_node("alpha", epmd=None, cookie=COOKIE) as alpha,
    ):
        await alpha.connect(beta.target)

        async def sender(k: int) -> None:
            async with alpha.actor() as me:
                for i in range(total // senders):
                    me.send(("sink", "beta"), ("seq", me.pid, i))
                    if i % 1000 == 0:
                        await trio.lowlevel.checkpoint()

        async with trio.open_nursery() as n:
            for k in range(senders):
                n.start_soon(sender, k)
        async with alpha.actor() as me:
            me.send(("sink", "beta"), ("report", me.pid))
            assert await me.receive(timeout=60) == ("report", total, 0)
        assert await _stop(beta) == 0


async def test_tls_node_process(tmp_path: Path) -> None:
    import trustme

    ca = trustme.CA()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert_file = tmp_path / "node.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(cert_file))
    tls = ["--tls-cert", str(cert_file), "--tls-ca", str(ca_file)]
    async with node_process("beta", "--epmd", "none", *tls) as beta:
        ok = await _run_cli("ping", beta.target, *tls)
        assert (ok.returncode, ok.stdout.strip()) == (0, b"pong")
        plain = await _run_cli("ping", beta.target, "--timeout", "3")
        assert (plain.returncode, plain.stdout.strip()) == (1, b"pang")
        rogue = trustme.CA()
        rogue_file = tmp_path / "rogue.pem"
        rogue.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(rogue_file))
        rogue_ca = tmp_path / "rogue-ca.pem"
        rogue.cert_pem.write_to_path(str(rogue_ca))
        bad = await _run_cli(
            "ping", beta.target, "--tls-cert", str(rogue_file), "--tls-ca", str(rogue_ca)
        )
        assert (bad.returncode, bad.stdout.strip()) == (1, b"pang")
        assert await _stop(beta) == 0
