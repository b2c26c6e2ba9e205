"""`trioactors node` says where it listens in a form peers can dial back,
IPv6 included (``[::1]:port``, as `name@[::1]:port` takes it)."""

from __future__ import annotations

import socket
import subprocess

import pytest
import trio
from helpers import COOKIE, node_process

import trioactors as ta

pytestmark = pytest.mark.slow


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="this machine has no IPv6 loopback (::1)")
async def test_an_ipv6_listener_is_shown_in_brackets_and_reachable() -> None:
    async with node_process(
        "v6", "--epmd", "none", "--listen", "[::1]:0", stderr=subprocess.PIPE
    ) as v6:
        assert v6.banner == f"node v6 listening on [::1]:{v6.address[1]}"
        async with ta.open_node("probe", epmd=None, cookie=COOKIE) as probe:
            with trio.fail_after(10):
                assert await probe.connect(f"v6@[::1]:{v6.address[1]}") == "v6"
