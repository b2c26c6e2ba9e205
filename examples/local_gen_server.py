"""A gen_server: a key-value store with calls, casts, a timer and a deferred reply.

    python examples/local_gen_server.py

`KvStore` keeps its state in one actor. `put`/`get` are calls (request and
reply), `clear` is a cast (no reply), `wait_for` is answered later with
`NO_REPLY` + `reply()` when the key appears, and entries written with a TTL
expire through `send_after` timers that arrive as `handle_info` messages.
"""

from __future__ import annotations

from typing import Any

import trio

import trioactors as ta


class KvStore(ta.GenServer):
    trap_exits = True  # so that the system's shutdown runs terminate (as in OTP)

    async def init(self) -> None:
        self.data: dict[str, Any] = {}
        self.waiting: dict[str, list[ta.Caller]] = {}

    async def handle_call(self, request: Any, caller: ta.Caller) -> Any:
        match request:
            case ("put", key, value, ttl):
                self.data[key] = value
                for waiter in self.waiting.pop(key, []):
                    self.reply(waiter, value)  # answer the deferred calls
                if ttl is not None:
                    self.system.send_after(ttl, self.pid, ("expire", key))
                return "ok"
            case ("get", key):
                return self.data.get(key)
            case ("wait_for", key):
                if key in self.data:
                    return self.data[key]
                self.waiting.setdefault(key, []).append(caller)
                return ta.NO_REPLY
        raise ValueError(f"unknown request {request!r}")

    async def handle_cast(self, request: Any) -> None:
        if request == "clear":
            self.data.clear()

    async def handle_info(self, msg: Any) -> None:
        if isinstance(msg, tuple) and msg[0] == "expire":
            self.data.pop(msg[1], None)
            print(f"  (timer) {msg[1]!r} expired")

    async def terminate(self, reason: Any) -> None:
        print(f"  store terminating ({reason!r}) with {len(self.data)} entries")


async def main() -> None:
    async with ta.open_actor_system() as system:
        store = await system.start_server(KvStore, name="kv")
        print(f"started kv store {store}")

        print("put/get:", await system.call("kv", ("put", "a", 1, None)))
        print("  a =", await system.call("kv", ("get", "a")))

        async def waiter() -> None:
            value = await system.call("kv", ("wait_for", "b"))
            print(f"  deferred reply: b = {value!r}")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(waiter)
            await trio.sleep(0.1)
            print("put b (releases the waiting caller):")
            await system.call("kv", ("put", "b", "hello", 0.2))
        await trio.sleep(0.3)
        print("  b after its TTL =", await system.call("kv", ("get", "b")))

        system.cast("kv", "clear")
        print("after clear, a =", await system.call("kv", ("get", "a")))

        try:
            await system.call("kv", ("nonsense",))
        except ta.CallFailed as exc:
            print(f"a bad request crashed the store: {exc.reason}")
        try:
            await system.call("kv", ("get", "a"), timeout=1.0)
        except ta.CallFailed as exc:
            print(f"and it is gone (no supervisor here): {exc.reason}")


if __name__ == "__main__":
    import logging

    logging.basicConfig(level=logging.CRITICAL)  # crash reports are narrated above
    trio.run(main)
