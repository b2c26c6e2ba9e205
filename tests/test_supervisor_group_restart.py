"""one_for_all / rest_for_one when a restart fails, as OTP's supervisor does
it: the failed child is left restarting, the retry (which counts toward the
intensity) stops what was restarted already and starts the group again."""

from __future__ import annotations

from typing import Any

import trio
import trio.testing

import trioactors as ta

Log = list[tuple[str, str]]


class Member(ta.GenServer):
    """Logs start/stop; its next `gate[tag]` starts fail (each reported to
    ``gate["report"]`` if set); a "crash" cast crashes it."""

    trap_exits = True  # a shutdown from the supervisor runs terminate (and logs "stop")

    async def init(self, tag: str, log: Log, gate: dict[str, Any]) -> None:
        self.tag, self.log = tag, log
        if gate.get(tag, 0) > 0:
            gate[tag] -= 1
            log.append(("fail", tag))
            if "report" in gate:
                self.ctx.send(gate["report"], ("fail", tag))
            raise RuntimeError(f"{tag} cannot start now")
        log.append(("start", tag))

    async def handle_cast(self, request: Any) -> None:
        raise RuntimeError(f"{self.tag} crashed")

    async def terminate(self, reason: Any) -> None:
        self.log.append(("stop", self.tag))


def members(tags: str, log: Log, gate: dict[str, Any]) -> list[ta.ChildSpec]:
    return [ta.ChildSpec(t, Member, args=(t, log, gate)) for t in tags]


def pid_of(system: ta.ActorSystem, sup: ta.Pid, cid: str) -> Any:
    return {c: p for c, p, _ in system.which_children(sup)}[cid]


async def test_one_for_all_retry_restarts_the_whole_group(system: ta.ActorSystem) -> None:
    log: Log = []
    gate: dict[str, Any] = {}
    sup = await system.start_supervisor(
        members("abc", log, gate), strategy="one_for_all", max_restarts=2, max_seconds=3600
    )
    log.clear()
    gate["b"] = 1
    system.cast(pid_of(system, sup, "a"), "crash")
    await trio.testing.wait_all_tasks_blocked()
    assert log == [
        ("stop", "a"),  # its terminate, after the crash
        ("stop", "c"),
        ("stop", "b"),
        ("start", "a"),
        ("fail", "b"),
        # The retry: the child already restarted is stopped again, then all
        # start in order.
        ("stop", "a"),
        ("start", "a"),
        ("start", "b"),
        ("start", "c"),
    ]
    assert all(isinstance(p, ta.Pid) for _, p, _ in system.which_children(sup))
    # The retry counted toward the intensity: the restart and its retry used
    # up max_restarts=2, so one more crash is one too many.
    async with system.actor() as me:
        ref = me.monitor(sup)
        system.cast(pid_of(system, sup, "c"), "crash")
        assert await me.receive(timeout=5) == ta.Down(ref, sup, "shutdown")
    assert system.processes() == []


async def test_rest_for_one_retry_starts_from_the_failed_child(system: ta.ActorSystem) -> None:
    log: Log = []
    gate: dict[str, Any] = {}
    sup = await system.start_supervisor(
        members("abcd", log, gate), strategy="rest_for_one", max_restarts=5
    )
    a = pid_of(system, sup, "a")
    log.clear()
    async with system.actor() as me:
        gate.update(c=1000, report=me.pid)
        system.cast(pid_of(system, sup, "b"), "crash")
        # The second attempt runs only once the first failure is recorded.
        assert [await me.receive(timeout=5) for _ in range(2)] == [("fail", "c")] * 2
        # Between attempts the supervisor serves requests: c is restarting,
        # d waits for it.
        children = system.which_children(sup)
        assert [(cid, p) for cid, p, _ in children][2:] == [("c", ta.RESTARTING), ("d", None)]
        b = pid_of(system, sup, "b")
        gate["c"] = 0
        await trio.testing.wait_all_tasks_blocked()  # the retries keep it busy until then
    assert [e for e in log if e != ("fail", "c")] == [
        ("stop", "b"),
        ("stop", "d"),
        ("stop", "c"),
        ("start", "b"),
        # OTP retries from the child that failed: b keeps running.
        ("start", "c"),
        ("start", "d"),
    ]
    assert pid_of(system, sup, "a") == a and pid_of(system, sup, "b") == b


async def test_one_for_all_restarts_children_that_were_not_running(
    system: ta.ActorSystem,
) -> None:
    # OTP restarts the whole group, including a child stopped with
    # terminate_child: every non-temporary child is started again.
    log: Log = []
    gate: dict[str, Any] = {}
    sup = await system.start_supervisor(members("abc", log, gate), strategy="one_for_all")
    await system.terminate_child(sup, "c")
    assert pid_of(system, sup, "c") is None
    log.clear()
    system.cast(pid_of(system, sup, "a"), "crash")
    await trio.testing.wait_all_tasks_blocked()
    assert log == [
        ("stop", "a"),
        ("stop", "b"),
        ("start", "a"),
        ("start", "b"),
        ("start", "c"),
    ]
