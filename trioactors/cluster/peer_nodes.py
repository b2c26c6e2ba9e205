"""Child node processes started by a node: `node.start_peer` (OTP's `peer`).

Python runs one core per process, so a program that wants N cores runs N
nodes. `start_peer("w1")` starts ``python -m trioactors node w1 --linked`` as
a child process with this node's cookie, waits until it listens, connects to
it and returns a `PeerNode`. The child is tied to its starter the way OTP's
peer nodes are tied to their control connection:

- its stdin is a pipe from the starter: the first line is the cookie (so it
  never appears in argv or the environment), and end-of-file, which the OS
  delivers even when the starter is SIGKILLed, makes the child leave the
  cluster and exit;
- when the starter's `open_node` block ends, every child it started is
  stopped the same way (end-of-file, then killed if it does not exit within
  `stop_timeout`), before the starter's own actors stop.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Final

import attrs
import trio
import trio.lowlevel

from ..errors import ConnectionFailed
from ..wire.names import valid_alive

if TYPE_CHECKING:
    from .kernel import NetKernel

__all__ = ["PeerNode", "PeerNodes", "open_peer_nodes"]

log = logging.getLogger("trioactors.cluster")

#: The line a node prints once it listens (`trioactors node`'s contract).
_BANNER: Final = "node {} listening on "


@attrs.define(eq=False)
class PeerNode:
    """A child node started by `Node.start_peer`.

    `name` is its node name and `target` the ``"name@host:port"`` it listens
    on; the starter is connected to it when `start_peer` returns, so
    `node.send(("svc", peer.name), ...)`, `spawn_on(peer.name, ...)` and
    `monitor_node(peer.name)` work at once.
    """

    name: str
    target: str
    process: trio.Process

    @property
    def returncode(self) -> int | None:
        """The child's exit status once it has ended, else None."""
        return self.process.returncode

    async def wait(self) -> int:
        """Wait for the child to end; returns its exit status."""
        return await self.process.wait()

    async def stop(self, timeout: float = 5.0) -> int:  # noqa: ASYNC109 - a grace period
        """Ask the child to leave the cluster (end-of-file on its stdin) and
        wait for it; killed if still running after `timeout` seconds.
        Returns its exit status (0 after a graceful stop)."""
        if self.process.stdin is not None:
            with trio.CancelScope(shield=True):
                await self.process.stdin.aclose()
        with trio.move_on_after(timeout):
            return await self.process.wait()
        # Only reached when the grace period ran out.
        log.warning("peer node %r did not stop within %.1f s: killed", self.name, timeout)
        self.process.kill()
        with trio.CancelScope(shield=True):
            code = await self.process.wait()
        return code


class PeerNodes:
    """The child nodes of one node, each watched by a task of its nursery."""

    def __init__(
        self,
        kernel: NetKernel,
        nursery: trio.Nursery,
        *,
        cookie: bytes,
        epmd: str | None,
        stop_timeout: float,
    ) -> None:
        self._kernel = kernel
        self._cookie = cookie
        self._nursery = nursery
        self._epmd = epmd
        self.stop_timeout = stop_timeout
        self._children: dict[str, PeerNode] = {}
        self._closing = False

    def children(self) -> list[PeerNode]:
        """The child nodes still running, in start order."""
        return [peer for peer in self._children.values() if peer.returncode is None]

    async def start(
        self,
        name: str,
        *,
        app: str | None = None,
        args: Sequence[str] = (),
        listen: str = "127.0.0.1:0",
        timeout: float = 30.0,  # noqa: ASYNC109 - a start-up budget, as in OTP's peer
    ) -> PeerNode:
        """Start child node `name` and connect to it (see `Node.start_peer`)."""
        if not isinstance(name, str) or not valid_alive(name):
            raise ValueError(f"{name!r} is not a valid node name")
        if self._closing:
            raise ConnectionFailed(f"node {self._kernel.name!r} is shutting down")
        if name in self._children or name == self._kernel.name:
            raise ValueError(f"a node named {name!r} is already running here")
        cmd = [sys.executable, "-m", "trioactors", "node", name, "--linked"]
        cmd += ["--listen", listen, "--epmd", self._epmd or "none"]
        cmd += ["--tick-timeout", repr(self._kernel.tick_timeout)]
        cmd += ["--log-level", _log_level()]
        if app is not None:
            cmd += ["--app", app]
        cmd += list(args)
        process = await trio.lowlevel.open_process(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        try:
            assert process.stdin is not None and process.stdout is not None
            await process.stdin.send_all(self._cookie.hex().encode() + b"\n")
            with trio.fail_after(timeout):
                address = await _listening_address(process.stdout, name)
            target = f"{name}@{address}"
            peer = PeerNode(name, target, process)
            with trio.fail_after(timeout):
                await self._kernel.connect(target)
        except BaseException as exc:
            process.kill()
            with trio.CancelScope(shield=True):
                await process.wait()
                for pipe in (process.stdin, process.stdout):
                    if pipe is not None:
                        await pipe.aclose()
            if isinstance(exc, trio.TooSlowError):
                raise ConnectionFailed(
                    f"peer node {name!r} did not come up within {timeout} s "
                    "(its log is on this program's stderr)"
                ) from None
            raise
        self._children[name] = peer
        self._nursery.start_soon(self._watch, peer)
        log.info("started peer node %r (os pid %d) at %s", name, process.pid, target)
        return peer

    async def _watch(self, peer: PeerNode) -> None:
        assert peer.process.stdout is not None
        try:
            # Drain what the child prints, so it never blocks on a full pipe.
            while await peer.process.stdout.receive_some(4096):
                pass
            code = await peer.process.wait()
        finally:
            if self._children.get(peer.name) is peer:
                del self._children[peer.name]
            with trio.CancelScope(shield=True):
                await peer.process.stdout.aclose()
        if not self._closing:
            log.info("peer node %r ended (exit status %s)", peer.name, code)

    async def stop_all(self) -> None:
        """Stop every child, all at once (the starter is leaving)."""
        self._closing = True
        async with trio.open_nursery() as nursery:
            for peer in self.children():
                nursery.start_soon(peer.stop, self.stop_timeout)


def _log_level() -> str:
    # The child logs as verbosely as the starter's trioactors logger.
    level = logging.getLogger("trioactors").getEffectiveLevel()
    for name in ("debug", "info", "warning"):
        if level <= logging.getLevelName(name.upper()):
            return name
    return "error"


async def _listening_address(stream: trio.abc.ReceiveStream, name: str) -> str:
    banner = _BANNER.format(name).encode()
    buf = b""
    while True:
        chunk = await stream.receive_some(4096)
        if not chunk:
            raise ConnectionFailed(
                f"peer node {name!r} exited before it listened (its log is on this "
                "program's stderr)"
            )
        buf += chunk
        *lines, buf = buf.split(b"\n")
        for line in lines:
            if line.startswith(banner):
                return line[len(banner) :].decode().strip()


@asynccontextmanager
async def open_peer_nodes(
    kernel: NetKernel, *, cookie: bytes, epmd: str | None, stop_timeout: float = 5.0
) -> AsyncIterator[PeerNodes]:
    """The child nodes of `kernel`'s node for the duration of the block; every
    one still running is stopped when it ends."""
    async with trio.open_nursery() as nursery:
        peers = PeerNodes(kernel, nursery, cookie=cookie, epmd=epmd, stop_timeout=stop_timeout)
        try:
            yield peers
        finally:
            with trio.CancelScope(shield=True):
                await peers.stop_all()
