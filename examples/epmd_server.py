"""An EPMD daemon embedded in a Trio program, and two nodes registering with it.

    python examples/epmd_server.py            # serve on 127.0.0.1:4369 until Ctrl-C
    python examples/epmd_server.py --port 0   # any free port
    python examples/epmd_server.py --demo     # start, register two nodes, list, exit

While it serves, try `trioactors nodes --epmd 127.0.0.1:PORT`, or Erlang's own
tools: `ERL_EPMD_PORT=PORT epmd -names`, `ERL_EPMD_PORT=PORT erl -sname x`.
"""

# example-args: --demo

from __future__ import annotations

import argparse
import logging
import signal

import trio

import trioactors as ta


async def demo(server: ta.EpmdServer) -> None:
    """Two nodes register (one with metadata), look each other up, list, leave."""
    async with (
        ta.EpmdClient("127.0.0.1", server.port) as alpha,
        ta.EpmdClient("127.0.0.1", server.port) as beta,
    ):
        a = await alpha.register("alpha", "127.0.0.1", 5001, metadata={"role": "web"})
        print(f"alpha registered, creation {a.creation}")
        await beta.register("beta", "127.0.0.1", 5002, capabilities=["tls"])
        try:
            await beta.register("alpha", "127.0.0.1", 5003)
        except ta.NameTaken as exc:
            print(f"a second 'alpha' is refused: {exc}")
        found = await beta.lookup("alpha")
        assert found is not None
        print(f"beta looks up alpha: {found.host}:{found.port} {found.metadata}")
        for node in await alpha.list_nodes():
            print(f"  {node.name:<6} {node.host}:{node.port}  {node.kind}")
    # Leaving the blocks unregistered both nodes.
    print(f"after the clients closed: {[n.name for n in server.nodes()]}")


async def main(args: argparse.Namespace) -> None:
    async with trio.open_nursery() as nursery:
        server: ta.EpmdServer = await nursery.start(ta.serve_epmd, args.host, args.port)
        print(f"EPMD daemon on {args.host}:{server.port}")
        if args.demo:
            await demo(server)
        else:
            with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                print("serving; Ctrl-C to stop")
                async for _ in signals:
                    break
        server.shutdown()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4369)
    parser.add_argument("--demo", action="store_true", help="register two nodes, list, exit")
    args = parser.parse_args()
    if args.demo and args.port == 4369:
        args.port = 0  # never collide with a real epmd in the demo
    logging.basicConfig(level="INFO", format="%(levelname)-7s %(name)s: %(message)s")
    trio.run(main, args)
