"""Test helpers shared by several test modules (one place for each).

- `FakeRouter` / `joined_systems`: two ActorSystems in one program joined by an
  in-memory Router that carries every signal through the real message codec.
- `packet`: an EPMD request with its 2-byte length prefix.
- `node_process`: a `trioactors node` child process, up once it listens.
- `wait_until` / `eventually`: wait for state replicated asynchronously to
  other nodes, where there is no event to wait on from outside.
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio
import trio.lowlevel

import trioactors as ta
from trioactors.runtime.router import RemoteName
from trioactors.wire.cbor import MessageCodec
from trioactors.wire.names import parse_host_port

ROOT = Path(__file__).resolve().parent.parent
NETNS_SCRIPT = ROOT / "scripts" / "netns.sh"
#: This process's address on the bridge of the namespaces (the fourth host).
BRIDGE = "10.77.0.254"
#: The cookie `node_process` gives its children unless told otherwise.
COOKIE = "process-test-cookie"
#: The default app of `node_process`: echo, sink, spawnables (tests/dist_apps.py).
DIST_APPS = f"{ROOT / 'tests' / 'dist_apps.py'}:services"


def packet(body: bytes) -> bytes:
    """An EPMD request or reply: `body` after its 2-byte big-endian length."""
    return struct.pack(">H", len(body)) + body


class FakeRouter:
    """The Router of one system, wired to a peer system in the same process.

    Everything that crosses is encoded and decoded by the real message codec,
    so what arrives is what a node would decode.
    """

    def __init__(self, system: ta.ActorSystem) -> None:
        self.system = system
        self.name = system.node_name
        self.codec = MessageCodec()
        self.peer: FakeRouter | None = None
        self.connected = False
        self.node_watchers: list[tuple[ta.Pid, str]] = []

    def _x(self, value: Any) -> Any:
        """`value` as the peer sees it (the real wire encoding)."""
        assert self.peer is not None
        return self.peer.codec.decode(self.codec.encode(value))

    def _peer_system(self) -> ta.ActorSystem | None:
        return self.peer.system if self.connected and self.peer is not None else None

    # -- Router

    def send(self, to: ta.Pid, msg: Any) -> None:
        if (peer := self._peer_system()) is not None:
            peer.deliver(self._x(to), self._x(msg))

    def send_named(self, to: RemoteName, msg: Any) -> None:
        if (peer := self._peer_system()) is not None:
            peer.deliver_named(to[0], self._x(msg))

    def reply(self, to: ta.Pid, ref: ta.Ref, value: Any) -> None:
        if (peer := self._peer_system()) is not None:
            peer.deliver_reply(self._x(to), self._x(ref), self._x(value))

    def link(self, local: ta.Pid, remote: ta.Pid) -> None:
        if (peer := self._peer_system()) is None:
            self.system.remote_exit(remote, local, "noconnection", link=True)
        else:
            peer.remote_link(self._x(remote), self._x(local))

    def unlink(self, local: ta.Pid, remote: ta.Pid) -> None:
        if (peer := self._peer_system()) is not None:
            peer.remote_unlink(self._x(remote), self._x(local))

    def exit(self, sender: ta.Pid, remote: ta.Pid, reason: Any, *, link: bool) -> None:
        if (peer := self._peer_system()) is not None:
            peer.remote_exit(self._x(sender), self._x(remote), self._x(reason), link=link)

    def down(self, watcher: ta.Pid, ref: ta.Ref, target: ta.Pid | RemoteName, reason: Any) -> None:
        if (peer := self._peer_system()) is not None:
            peer.remote_down(self._x(watcher), self._x(ref), self._x(target), self._x(reason))

    def monitor(self, watcher: ta.Pid, ref: ta.Ref, target: ta.Pid | RemoteName) -> None:
        if (peer := self._peer_system()) is None:
            self.system.remote_down(watcher, ref, target, "noconnection")
            return
        remote_target = target[0] if isinstance(target, tuple) else self._x(target)
        peer.remote_monitor(self._x(watcher), self._x(ref), remote_target)

    def demonitor(self, watcher: ta.Pid, ref: ta.Ref, target: ta.Pid | RemoteName) -> None:
        if (peer := self._peer_system()) is not None:
            peer.remote_demonitor(self._x(ref))

    def monitor_node(self, watcher: ta.Pid, node_name: str) -> None:
        if self._peer_system() is None:
            self.system.deliver(watcher, ta.NodeDown(node_name, "noconnection"))
        else:
            self.node_watchers.append((watcher, node_name))

    def demonitor_node(self, watcher: ta.Pid, node_name: str) -> None:
        if (watcher, node_name) in self.node_watchers:
            self.node_watchers.remove((watcher, node_name))

    def is_self(self, node_name: str) -> bool:
        return node_name == self.name

    def whereis_global(self, name: str) -> ta.Pid | None:
        return None  # no global registry between fake routers

    async def spawn_remote(
        self,
        node: str,
        name: str,
        args: tuple[Any, ...],
        link_to: ta.Pid,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - the Router protocol's signature
    ) -> ta.Pid:
        raise ta.SpawnFailed(f"the fake router cannot spawn {name!r} on {node!r}")

    # -- test controls

    def lost(self) -> None:
        """This side notices that the connection is gone."""
        assert self.peer is not None
        self.connected = False
        self.system.node_down(self.peer.name, "noconnection")
        for watcher, node in self.node_watchers:
            self.system.deliver(watcher, ta.NodeDown(node, "noconnection"))
        self.node_watchers.clear()


def disconnect(ra: FakeRouter, rb: FakeRouter) -> None:
    """Both sides of a fake connection notice that it is gone."""
    ra.lost()
    rb.lost()


@asynccontextmanager
async def joined_systems() -> AsyncIterator[
    tuple[ta.ActorSystem, ta.ActorSystem, FakeRouter, FakeRouter]
]:
    """Systems "a" and "b" joined by connected fake routers."""
    async with (
        ta.open_actor_system(node_name="a", creation=1) as a,
        ta.open_actor_system(node_name="b", creation=2) as b,
    ):
        ra, rb = FakeRouter(a), FakeRouter(b)
        ra.peer, rb.peer = rb, ra
        ra.connected = rb.connected = True
        a.set_router(ra)
        b.set_router(rb)
        yield a, b, ra, rb
        a.set_router(None)
        b.set_router(None)


@attrs.define
class NodeProcess:
    """A `trioactors node` child process and the address it listens on."""

    proc: trio.Process
    name: str
    address: tuple[str, int]
    banner: str  # the "node NAME listening on HOST:PORT" line

    @property
    def target(self) -> str:
        """What `node.connect` takes to reach it: ``"name@host:port"``."""
        return f"{self.name}@{self.address[0]}:{self.address[1]}"


async def _read_line(stream: trio.abc.ReceiveStream, prefix: bytes) -> bytes:
    buf = b""
    while True:
        chunk = await stream.receive_some(4096)
        if not chunk:
            raise RuntimeError(f"process ended before printing {prefix!r}: {buf!r}")
        buf += chunk
        lines = buf.split(b"\n")
        for line in lines[:-1]:  # only whole lines: the address must be complete
            if line.startswith(prefix):
                return line.rstrip(b"\r")


@asynccontextmanager
async def node_process(
    name: str,
    *args: str,
    app: str = DIST_APPS,
    cookie: str = COOKIE,
    stderr: Any = subprocess.DEVNULL,
    env: dict[str, str] | None = None,
    wrap: Sequence[str] = (),
) -> AsyncIterator[NodeProcess]:
    """`trioactors node NAME --app APP ARGS...` as a child process, yielded
    once it prints its listening line; killed (if still running) on exit.

    `stderr` is where its log goes (DEVNULL, a file, or subprocess.PIPE);
    `wrap` is a command prefix (``["ip", "netns", "exec", "ta-h2"]``).
    """
    environ = {**os.environ, "TRIOACTORS_COOKIE": cookie, **(env or {})}
    cmd = [*wrap, sys.executable, "-m", "trioactors", "node", name, "--app", app, *args]
    proc = await trio.lowlevel.open_process(
        cmd, stdout=subprocess.PIPE, stderr=stderr, env=environ, cwd=str(ROOT)
    )
    try:
        assert proc.stdout is not None
        with trio.fail_after(20):
            line = await _read_line(proc.stdout, f"node {name} listening on ".encode())
        banner = line.decode()
        host, port = parse_host_port(banner.rpartition(" ")[2])
        yield NodeProcess(proc, name, (host, port), banner)
    finally:
        if proc.returncode is None:
            proc.kill()
        with trio.CancelScope(shield=True):
            await proc.wait()
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                await pipe.aclose()


async def wait_node_up(node: ta.Node, peer: str) -> None:
    """Wait until `node` is connected to `peer` (its NodeUp, or already)."""
    async with node.actor() as me:
        node.monitor_nodes(me.pid)
        if peer in node.nodes():
            return
        with trio.fail_after(20):
            while True:
                msg = await me.receive()
                if isinstance(msg, ta.NodeUp) and msg.node == peer:
                    return


async def wait_until(predicate: Callable[[], bool], within: float = 10) -> None:
    """Wait for replicas on other nodes to converge (they are told
    asynchronously, with no event to wait on from outside)."""
    with trio.fail_after(within):
        while True:
            if predicate():
                return
            await trio.sleep(0.005)


async def eventually(check: Callable[[], Awaitable[bool]], what: str, within: float = 15) -> None:
    """Like `wait_until` for an async check against other processes; a check
    that raises `ta.CallFailed` (not started yet, or gone) counts as false."""
    with trio.move_on_after(within):
        while True:
            try:
                if await check():
                    return
            except ta.CallFailed:
                pass
            await trio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def netns(*args: str) -> subprocess.CompletedProcess[str]:
    """Run scripts/netns.sh (``up``, ``down``, ``cut N``, ``mend N``)."""
    return subprocess.run(
        ["bash", str(NETNS_SCRIPT), *args], capture_output=True, text=True, timeout=60
    )


@contextmanager
def netns_hosts() -> Iterator[None]:
    """The three namespace hosts, up for the duration; the test is skipped,
    saying why, where namespaces can't be made."""
    made = netns("up")
    if made.returncode != 0:
        pytest.skip(f"cannot build network namespaces here: {made.stderr.strip()}")
    try:
        yield
    finally:
        netns("down")
