"""The local demo: ``python examples/demo_local.py``, explained as it runs.

A supervision tree with a gen_server and workers, a crash and its restart, a
shutdown in order, all in one actor system; ends by itself in a few seconds.
(`make demo` runs the cluster demo, examples/demo_cluster.py.)
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable
from typing import Any

import trio

from trioactors import (
    ActorSystem,
    Caller,
    CallFailed,
    ChildSpec,
    Context,
    Crash,
    Down,
    GenServer,
    Pid,
    open_actor_system,
    supervisor,
)

# example-args: --pause 0


# --------------------------------------------------------------------------- the story


class _Narrator:
    def __init__(self, out: Callable[[str], Any]) -> None:
        self.out = out
        self.t0 = time.monotonic()

    def __call__(self, text: str = "", *, indent: int = 0) -> None:
        stamp = f"[{time.monotonic() - self.t0:5.2f}s] " if text else ""
        self.out(f"{stamp}{'    ' * indent}{text}")


class Bank(GenServer):
    """A gen_server holding balances; its state lives only in this process."""

    trap_exits = True  # a shutdown from the supervisor then runs terminate()

    async def init(self, say: _Narrator) -> None:
        self.say = say
        self.balances: dict[str, int] = {}
        say(f"bank {self.pid}: init() ran, balances start empty", indent=1)

    async def handle_call(self, request: Any, caller: Caller) -> Any:
        op, who, amount = request
        if op == "deposit":
            if amount < 0:
                raise ValueError(f"negative deposit {amount} for {who!r}")
            self.balances[who] = self.balances.get(who, 0) + amount
            return self.balances[who]
        return self.balances.get(who, 0)

    async def terminate(self, reason: Any) -> None:
        self.say(
            f"bank {self.pid}: terminate({_reason(reason)}) - last chance to save state", indent=1
        )


async def _worker(ctx: Context, name: str, say: _Narrator) -> None:
    """Deposits into the bank each time it is told to work; "crash" makes it fail."""
    say(f"worker {name!r} {ctx.pid}: started", indent=1)
    try:
        while True:
            msg = await ctx.receive()
            if msg == "crash":
                raise RuntimeError(f"worker {name} hit a bug")
            balance = await ctx.call("bank", ("deposit", name, msg))
            say(f"worker {name!r} deposited {msg}, balance now {balance}", indent=1)
    finally:
        say(f"worker {name!r} {ctx.pid}: stopped", indent=1)


def _tree(system: ActorSystem, sup: Pid | str, say: _Narrator, depth: int = 1) -> None:
    for cid, pid, restart in system.which_children(sup):
        say(f"{cid:<8} {pid!s:<10} {restart}", indent=depth)
        if pid is not None and cid == "workers":
            _tree(system, pid, say, depth + 1)


def _reason(reason: Any) -> str:
    return f"crash ({reason})" if isinstance(reason, Crash) else repr(reason)


async def _story(say: _Narrator, pause: float) -> None:
    async with open_actor_system() as system:
        say("An actor system runs inside an ordinary trio program.")
        say("Starting supervisor 'top' (one_for_one) with two children, in order:")
        say("  'bank'    - a gen_server (call/cast API, state in one process)")
        say("  'workers' - a nested one_for_all supervisor of two worker actors")
        children = [
            ChildSpec("bank", Bank, args=(say,), name="bank"),
            ChildSpec(
                "workers",
                supervisor(
                    [
                        ChildSpec("alice", _worker, args=("alice", say), name="alice"),
                        ChildSpec("bob", _worker, args=("bob", say), name="bob"),
                    ],
                    strategy="one_for_all",
                ),
                name="workers",
            ),
        ]
        top = await system.start_supervisor(children, name="top", max_restarts=5)
        await trio.sleep(pause)
        say("The tree (system.which_children):")
        _tree(system, top, say)
        await trio.sleep(pause)

        say()
        say("Workers call the bank; each call is a message and a reply.")
        system.send("alice", 10)
        system.send("bob", 5)
        system.send("alice", 7)
        await trio.sleep(pause)

        say()
        say("Now worker 'bob' crashes. Its supervisor uses one_for_all: it stops")
        say("'alice' too, then starts both again, in order.")
        async with system.actor() as me:
            old_bob = system.whereis("bob")
            assert old_bob is not None
            ref = me.monitor(old_bob)
            system.send("bob", "crash")
            down = await me.receive(match=lambda m: isinstance(m, Down) and m.ref == ref)
            say(f"monitor says: bob {down.pid} ended with {_reason(down.reason)}")
            await trio.sleep(pause)
            say(f"bob is back as {system.whereis('bob')} (was {old_bob}); the tree now:")
            _tree(system, top, say)
            await trio.sleep(pause)

            say()
            say("A bad request crashes the bank in the middle of a call:")
            try:
                await me.call("bank", ("deposit", "alice", -1))
            except CallFailed as exc:
                say(f"the caller gets CallFailed at once: {_reason(exc.reason)}")
            await trio.sleep(pause)
            say(f"'top' restarted the bank as {system.whereis('bank')}; its state came")
            say("back from init() (let it crash: restart from a known good state):")
            balance = await me.call("bank", ("balance", "alice", 0))
            say(f"alice's balance is {balance} in the new bank", indent=1)
            system.send("alice", 1)
            await trio.sleep(pause)

        say()
        say("Leaving the `async with` stops everything: supervisors stop their")
        say("children in reverse start order, gen_servers run terminate().")
    say("All actors stopped; no task is left behind. Bye!")


def run_local_demo(*, pause: float = 0.4, out: Callable[[str], Any] | None = None) -> int:
    """Run the local demo, narrating to `out` (default: stdout); returns 0."""
    printer = out or (lambda s: print(s, flush=True))
    say = _Narrator(printer)
    say("trioactors local demo: supervision, a gen_server, crashes and restarts")
    say()
    trio.run(_story, say, pause)
    return 0


def main() -> int:
    """Run the demo; ``--pause`` sets the seconds between steps, ``--log-level
    error`` (or lower) adds the runtime's crash reports with tracebacks."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--pause",
        type=float,
        default=0.4,
        metavar="SECONDS",
        help="pause between steps so the story can be followed (default: %(default)s)",
    )
    parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    args = parser.parse_args()
    logging.basicConfig(
        level=(args.log_level or "info").upper(),
        format="%(levelname)-7s %(name)s: %(message)s",
    )
    if args.log_level is None:
        # The demo narrates crashes itself; the runtime's crash reports (with
        # tracebacks) appear with --log-level error or lower.
        logging.getLogger("trioactors").setLevel(logging.CRITICAL)
    return run_local_demo(pause=args.pause)


if __name__ == "__main__":
    sys.exit(main())
