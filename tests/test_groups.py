"""Process groups over an in-memory cluster (tests/cluster_fakes.py)."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest
import trio
import trio.lowlevel
from cluster_fakes import FakeNet, fake_cluster

import trioactors as ta
from trioactors.cluster.groups import PgJoin, PgSync
from trioactors.wire.terms import Pid


async def sleeper(ctx: Any) -> None:
    """An actor that lives until it gets "stop"."""
    while await ctx.receive() != "stop":
        pass


def expected(net: FakeNet, group: str) -> list[Pid]:
    """The members of `group` as every node should see them: every node's local ones."""
    return sorted(
        pid for node in net.nodes.values() for pid in node.groups.local_group_members(group)
    )


def assert_converged(net: FakeNet, groups: list[str]) -> None:
    for group in groups:
        for n, node in net.nodes.items():
            assert node.groups.group_members(group) == expected(net, group), (n, group)
    everyone = {tuple(node.groups.which_groups()) for node in net.nodes.values()}
    assert len(everyone) == 1, everyone


async def test_join_leave_seen_everywhere_and_counted() -> None:
    async with fake_cluster(["a", "b", "c"]) as net:
        a, b = net.nodes["a"], net.nodes["b"]
        pid = a.system.spawn(sleeper)
        seen = pid
        a.groups.join_group("g", pid)
        a.groups.join_group("g", pid)
        a.groups.join_group("h", pid)
        await net.settle()
        assert b.groups.group_members("g") == [seen, seen]
        assert b.groups.local_group_members("g") == []
        assert a.groups.local_group_members("g") == [pid, pid]
        assert b.groups.which_groups() == ["g", "h"]
        assert a.groups.leave_group("g", pid) is True
        await net.settle()
        assert b.groups.group_members("g") == [seen]
        assert a.groups.leave_group("g", pid) is True
        assert a.groups.leave_group("g", pid) is False
        await net.settle()
        assert b.groups.group_members("g") == []
        assert b.groups.which_groups() == ["h"]
        assert_converged(net, ["g", "h"])


async def test_only_local_pids_may_join() -> None:
    async with fake_cluster(["a", "b"]) as net:
        a, b = net.nodes["a"], net.nodes["b"]
        remote = a.system.spawn(sleeper)
        with pytest.raises(ta.NotLocalPid, match="own node"):
            b.groups.join_group("g", remote)
        with pytest.raises(ta.NotLocalPid):
            b.groups.leave_group("g", remote)
        with pytest.raises(TypeError):
            b.groups.join_group(1, b.system.spawn(sleeper))
        # A pid that is no longer alive does not join.
        gone = b.system.spawn(sleeper)
        b.system.send(gone, "stop")
        await b.system.join(gone)
        b.groups.join_group("g", gone)
        assert b.groups.group_members("g") == []
        # A peer may only report its own pids.
        with pytest.raises(ta.ProtocolError):
            b.services.handle("a", PgJoin("g", (Pid("zz", 1, 0, 1),)))
        with pytest.raises(ta.ProtocolError):
            b.services.handle("a", PgSync({"g": (b.system.spawn(sleeper),)}))
        assert b.groups.which_groups() == []


async def test_members_vanish_when_they_end_or_their_node_goes_down() -> None:
    async with fake_cluster(["a", "b", "c"]) as net:
        a, b, c = net.nodes["a"], net.nodes["b"], net.nodes["c"]
        pa, pb = a.system.spawn(sleeper), b.system.spawn(sleeper)
        a.groups.join_group("g", pa)
        a.groups.join_group("g", pa)
        a.groups.join_group("h", pa)
        b.groups.join_group("g", pb)
        await net.settle()
        assert len(c.groups.group_members("g")) == 3
        a.system.send(pa, "stop")
        await a.system.join(pa)
        await net.settle()
        assert c.groups.group_members("g") == [pb]
        assert a.groups.which_groups() == ["g"]
        await b.stop()
        assert c.groups.group_members("g") == []
        assert a.groups.which_groups() == c.groups.which_groups() == []


async def test_newcomer_and_healed_partition_converge() -> None:
    async with fake_cluster(["a", "b", "c"]) as net:
        a, b = net.nodes["a"], net.nodes["b"]
        pa, pb = a.system.spawn(sleeper), b.system.spawn(sleeper)
        a.groups.join_group("g", pa)
        await net.settle()
        net.partition({"a"})
        # While apart, each side changes; neither hears of the other.
        a.groups.join_group("g", pa)
        a.groups.join_group("only_a", pa)
        b.groups.join_group("g", pb)
        await net.settle()
        assert b.groups.group_members("g") == [pb]
        d = await net.add("d")
        dp = d.system.spawn(sleeper)
        d.groups.join_group("g", dp)
        net.connect_all()
        await net.settle()
        assert_converged(net, ["g", "only_a"])
        assert len(d.groups.group_members("g")) == 4


async def test_five_nodes_joining_and_leaving_concurrently_converge() -> None:
    names = ["a", "b", "c", "d", "e"]
    groups = ["g0", "g1", "g2"]
    async with fake_cluster(names, seed=3) as net:
        rng = random.Random(5)

        async def churn(n: str) -> None:
            node = net.nodes[n]
            pids = [node.system.spawn(sleeper) for _ in range(4)]
            for _ in range(60):
                pid, group = rng.choice(pids), rng.choice(groups)
                action = rng.random()
                if action < 0.55:
                    node.groups.join_group(group, pid)
                elif action < 0.9:
                    node.groups.leave_group(group, pid)
                elif pid != pids[0]:  # one of them stays alive
                    node.system.send(pid, "stop")
                for _ in range(rng.randrange(3)):
                    await trio.lowlevel.checkpoint()

        async with trio.open_nursery() as nursery:
            for n in names:
                nursery.start_soon(churn, n)
            # A link breaks and heals in the middle of it all.
            await trio.lowlevel.checkpoint()
            net.cut("a", "e")
            await trio.lowlevel.checkpoint()
            net.connect("a", "e")
        await net.settle()
        assert_converged(net, groups)
        total = sum(len(n.groups.group_members(g)) for n in net.nodes.values() for g in groups)
        assert total > 0  # the churn left some members behind to compare


async def test_monitor_group_reports_joins_and_leaves() -> None:
    async with fake_cluster(["a", "b"]) as net:
        a, b = net.nodes["a"], net.nodes["b"]
        async with b.system.actor() as watcher:
            ref = b.groups.monitor_group("g", watcher.pid)
            other = b.groups.monitor_group("other", watcher.pid)
            pa, pb = a.system.spawn(sleeper), b.system.spawn(sleeper)
            sa = pa
            a.groups.join_group("g", pa)
            assert await watcher.receive(timeout=5) == ta.GroupJoin(ref, "g", (sa,))
            b.groups.join_group("g", pb)
            assert await watcher.receive(timeout=5) == ta.GroupJoin(ref, "g", (pb,))
            a.groups.join_group("g", pa)
            assert await watcher.receive(timeout=5) == ta.GroupJoin(ref, "g", (sa,))
            a.groups.leave_group("g", pa)
            assert await watcher.receive(timeout=5) == ta.GroupLeave(ref, "g", (sa,))
            # Its node goes away: the remaining join of pa leaves.
            net.cut("a", "b")
            assert await watcher.receive(timeout=5) == ta.GroupLeave(ref, "g", (sa,))
            # It comes back: the snapshot rejoins it.
            net.connect("a", "b")
            assert await watcher.receive(timeout=5) == ta.GroupJoin(ref, "g", (sa,))
            b.system.send(pb, "stop")
            assert await watcher.receive(timeout=5) == ta.GroupLeave(ref, "g", (pb,))
            assert b.groups.demonitor_group(ref) is True
            assert b.groups.demonitor_group(ref) is False
            a.groups.join_group("g", pa)
            a.groups.join_group("other", pa)
            assert await watcher.receive(timeout=5) == ta.GroupJoin(other, "other", (sa,))
            await net.settle()
            with pytest.raises(trio.WouldBlock):
                watcher.receive_nowait()


async def test_group_monitor_ends_with_its_watcher() -> None:
    async with fake_cluster(["a"]) as net:
        a = net.nodes["a"]
        events: list[Any] = []

        async def watcher(ctx: Any) -> None:
            a.groups.monitor_group("g", ctx.pid)
            events.append(await ctx.receive())

        wpid = a.system.spawn(watcher)
        await trio.testing.wait_all_tasks_blocked()
        pid = a.system.spawn(sleeper)
        a.groups.join_group("g", pid)
        await a.system.join(wpid)
        assert events == [ta.GroupJoin(events[0].ref, "g", (pid,))]
        await net.settle()
        assert a.groups._watchers == {}  # the subscription died with the watcher
        assert Counter(a.groups.group_members("g")) == Counter([pid])


async def test_snapshot_replaces_a_peers_view_and_reports_the_difference() -> None:
    # A peer that reconnects without us having seen it go (a quick restart)
    # sends a snapshot: whatever it no longer has leaves, whatever is new joins.
    async with fake_cluster(["a", "b"]) as net:
        a, b = net.nodes["a"], net.nodes["b"]
        p1, p2 = a.system.spawn(sleeper), a.system.spawn(sleeper)
        s1, s2 = p1, p2
        a.groups.join_group("g", p1)
        a.groups.join_group("g", p1)
        await net.settle()
        async with b.system.actor() as watcher:
            ref = b.groups.monitor_group("g", watcher.pid)
            b.services.handle("a", PgSync({"g": (s1, s2), "h": (s2,)}))
            assert await watcher.receive(timeout=5) == ta.GroupLeave(ref, "g", (s1,))
            assert await watcher.receive(timeout=5) == ta.GroupJoin(ref, "g", (s2,))
            assert b.groups.group_members("g") == sorted([s1, s2])
            assert b.groups.which_groups() == ["g", "h"]
