"""`node.start_peer`: child node processes tied to their starter (OTP's peer)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import trio
import trio.lowlevel
from helpers import DIST_APPS, ROOT, wait_until

import trioactors as ta

pytestmark = pytest.mark.slow

COOKIE = "peer-nodes-test-cookie"


async def test_started_peer_is_connected_and_stops_with_its_starter() -> None:
    async with ta.open_node("boss", epmd=None, cookie=COOKIE) as boss:
        peer = await boss.start_peer("w1", app=DIST_APPS)
        assert isinstance(peer, ta.PeerNode) and peer.name == "w1"
        assert boss.nodes() == ["w1"] and boss.peer_nodes() == [peer]
        async with boss.actor() as me:
            me.send(("echo", "w1"), (me.pid, "hi"))
            assert await me.receive(timeout=10) == ("echo", "hi")
            pid = await boss.spawn_on("w1", "echo")
            assert pid.node == "w1" and not boss.is_local(pid)
        assert peer.returncode is None
    # The starter's block ended: the child left gracefully.
    assert peer.returncode == 0


async def test_stop_is_graceful_and_peers_see_the_node_go() -> None:
    async with (
        ta.open_node("boss", epmd=None, cookie=COOKIE) as boss,
        boss.actor() as me,
    ):
        peer = await boss.start_peer("w2")
        me.monitor_node("w2")
        assert await peer.stop() == 0
        down = await me.receive(timeout=10)
        assert isinstance(down, ta.NodeDown) and down.node == "w2"
        assert boss.peer_nodes() == []


async def test_child_leaves_when_its_starter_is_sigkilled(tmp_path: Path) -> None:
    starter = tmp_path / "starter.py"
    starter.write_text(
        textwrap.dedent(
            f"""
            import trio, trioactors as ta

            async def main():
                async with ta.open_node("boss", epmd=None, cookie={COOKIE!r}) as boss:
                    peer = await boss.start_peer("w3")
                    print(peer.process.pid, flush=True)
                    await trio.sleep_forever()

            trio.run(main)
            """
        )
    )
    proc = await trio.lowlevel.open_process(
        [sys.executable, str(starter)], stdout=subprocess.PIPE, cwd=str(ROOT)
    )
    assert proc.stdout is not None
    try:
        with trio.fail_after(30):
            line = b""
            while not line.endswith(b"\n"):
                chunk = await proc.stdout.receive_some(100)
                assert chunk, "the starter ended before starting its peer"
                line += chunk
        child = int(line)
        proc.kill()  # SIGKILL: no cleanup code of the starter runs
        await proc.wait()
        # The child is not our child (no wait() for it): it is gone once
        # signal 0 fails; the pipe's end-of-file makes it leave at once.
        await wait_until(lambda: not _alive(child), within=20)
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
        await proc.stdout.aclose()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, parent gone but not yet reaped by init) counts as gone.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


async def test_bad_names_and_a_child_that_cannot_start() -> None:
    async with ta.open_node("boss", epmd=None, cookie=COOKIE) as boss:
        with pytest.raises(ValueError, match="valid node name"):
            await boss.start_peer("no@pe")
        with pytest.raises(ValueError, match="already running"):
            await boss.start_peer("boss")
        with pytest.raises(ta.ConnectionFailed, match="exited before it listened"):
            await boss.start_peer("w4", app="no_such_module_xyz:main")
        assert boss.peer_nodes() == []
