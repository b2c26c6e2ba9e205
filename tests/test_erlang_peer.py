"""A trioactors node as a hidden node of a real Erlang cluster, both ways.

Everything against real `erl` (skipped, saying why, without it), through a
private epmd: erl dials us (ping, sends, gen_server calls, rpc), we dial
erl (sends and calls by name), links and monitors across, noconnection.
"""

from __future__ import annotations

import logging
import struct
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.lowlevel
from erlang_helpers import (
    COOKIE,
    HOST,
    KV_ERL,
    Erl,
    compile_erlang,
    erl_repl,
    needs_erlang,
    private_epmd,
)
from helpers import wait_until

import trioactors as ta
from trioactors.cluster.erlang_peer import from_erlang, reason_to_erlang, to_erlang
from trioactors.wire import erldist_control as c
from trioactors.wire.erldist_handshake import ErlDistHandshake
from trioactors.wire.etf import Atom, EtfCodec, ImproperList
from trioactors.wire.handshake import Role

PY = f"py@{HOST}"
E1 = f"e1@{HOST}"


@asynccontextmanager
async def cluster(
    tmp_path: Path, *, node_name: str = PY, **erl: Any
) -> AsyncIterator[tuple[ta.Node, Erl]]:
    """Our node and an erl (with the `kv` module on its path), one epmd."""
    code = compile_erlang(tmp_path, "kv", KV_ERL)
    async with (
        private_epmd() as epmd,
        ta.open_node(node_name, epmd=f"{HOST}:{epmd}", cookie=COOKIE) as node,
        erl_repl(epmd, code_path=code, **erl) as e,
    ):
        yield node, e


# --------------------------------------------------------------------------- first bytes


def _send_name(name: bytes) -> bytes:
    body = b"N" + struct.pack(">QIH", 0x0D07DF7BD, 7, len(name)) + name
    return struct.pack(">H", len(body)) + body


async def _closed(stream: trio.SocketStream) -> None:
    with trio.fail_after(10):
        while await stream.receive_some(4096):
            pass


async def test_an_erlang_node_dialling_a_node_without_full_name_is_told_why(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with ta.open_node("alpha", epmd=None, cookie=COOKIE) as node:
        stream = await trio.open_tcp_stream(*node.address)
        await stream.send_all(_send_name(b"e1@127.0.0.1"))
        await _closed(stream)
    assert "an Erlang node ('e1@127.0.0.1') dialled node 'alpha'" in caplog.text
    assert "needs a full name" in caplog.text
    assert "exceeds the maximum" not in caplog.text


async def test_a_plain_node_that_meets_tls_says_so(caplog: pytest.LogCaptureFixture) -> None:
    # The first bytes of a TLS ClientHello: record type 22, version 3.1, length, type 1.
    hello = bytes([0x16, 0x03, 0x01, 0x00, 0xC8, 0x01]) + b"\0" * 40
    async with ta.open_node("alpha", epmd=None, cookie=COOKIE) as node:
        stream = await trio.open_tcp_stream(*node.address)
        await stream.send_all(hello)
        await _closed(stream)
    assert "met TLS" in caplog.text
    assert "exceeds the maximum" not in caplog.text


# --------------------------------------------------------------------------- mapping


def test_gen_call_with_an_alias_tag_maps_to_our_call_and_remembers_the_alias() -> None:
    pid, ref = ta.Pid("e1@h", 5, 0, 3), ta.Ref("e1@h", 3, (1, 2, 3))
    aliases: dict[ta.Ref, None] = {}
    tag = ImproperList((Atom("alias"),), ref)
    msg = from_erlang((Atom("$gen_call"), (pid, tag), "req"), aliases)
    assert msg == ("$gen_call", (pid, ref), "req")
    assert ref in aliases
    assert to_erlang(("$gen_call", (pid, ref), "x")) == (Atom("$gen_call"), (pid, ref), "x")
    assert to_erlang(("$gen_cast", 1)) == (Atom("$gen_cast"), 1)


def test_down_and_exit_map_both_ways_with_atom_reasons() -> None:
    pid, ref = ta.Pid("e1@h", 5, 0, 3), ta.Ref("e1@h", 3, (1, 2, 3))
    down = (Atom("DOWN"), ref, Atom("process"), pid, Atom("normal"))
    assert from_erlang(down) == ta.Down(ref, pid, "normal")
    assert to_erlang(ta.Down(ref, pid, "normal")) == down
    assert from_erlang((Atom("EXIT"), pid, (Atom("shutdown"), 1))) == ta.Exit(pid, ("shutdown", 1))
    assert to_erlang(ta.Exit(pid, "killed")) == (Atom("EXIT"), pid, Atom("killed"))
    assert reason_to_erlang(("shutdown", "x")) == (Atom("shutdown"), "x")


def test_control_messages_round_trip_and_bad_ones_are_protocol_errors() -> None:
    codec = EtfCodec(binaries_as_str=True)
    a, b = ta.Pid("a@h", 1, 0, 1), ta.Pid("b@h", 2, 0, 1)
    ref = ta.Ref("a@h", 1, (7, 8, 9))
    records: list[c.Control] = [
        c.Link(a, b),
        c.UnlinkId(5, a, b),
        c.UnlinkIdAck(5, b, a),
        c.Exit(a, b, Atom("boom")),
        c.Exit2(a, b, Atom("kill")),
        c.MonitorP(a, b, ref),
        c.MonitorP(a, "logger", ref),
        c.DemonitorP(a, b, ref),
        c.MonitorPExit(b, a, ref, Atom("normal")),
        c.SpawnReply(ref, a, 2, b),
    ]
    for rec in records:
        assert c.decode_control(c.encode_control(rec, codec), codec) == rec
    send = c.Send(b, "hi")
    body = c.encode_control(send, codec, codec.encode("hi"))
    assert c.decode_control(body, codec) == send
    with pytest.raises(ta.ProtocolError, match="pass-through"):
        c.decode_control(b"\x00" + body[1:], codec)
    with pytest.raises(ta.ProtocolError, match="without its payload"):
        c.decode_control(b"p" + codec.encode((2, Atom(""), b)), codec)
    with pytest.raises(ta.ProtocolError, match="unsupported distribution control message"):
        c.decode_control(b"p" + codec.encode((7, a, b)), codec)
    with pytest.raises(ta.ProtocolError, match="not a pid"):
        c.decode_control(b"p" + codec.encode((1, "x", b)), codec)


# --------------------------------------------------------------------------- erl dials us


@needs_erlang
async def test_erl_pings_us_and_sees_a_hidden_node(tmp_path: Path) -> None:
    async with cluster(tmp_path) as (node, erl):
        assert await erl.eval(f"net_adm:ping('{PY}')") == "pong"
        assert await erl.eval("nodes(hidden)") == f"['{PY}']"
        assert await erl.eval("nodes()") == "[]"
        assert E1 in node.nodes()


@needs_erlang
async def test_erl_sends_to_a_registered_actor_which_replies_to_the_erlang_pid(
    tmp_path: Path,
) -> None:
    async with cluster(tmp_path) as (node, erl):
        got: list[Any] = []

        async def echo(ctx: ta.Context) -> None:
            while True:
                msg = await ctx.receive()
                got.append(msg)
                ctx.send(msg[0], (Atom("echo"), msg[1], ctx.pid))

        node.spawn(echo, name="echo")
        # A UTF-8 binary is a str in Python and comes back as the same binary.
        await erl.eval('Text = <<"h"/utf8, 233/utf8, "llo">>')
        await erl.eval(f"{{echo, '{PY}'}} ! {{self(), Text}}")
        reply = await erl.eval(
            "receive {echo, M, P} -> {M =:= Text, node(P)} after 10000 -> timeout end"
        )
        assert reply == f"{{true,'{PY}'}}"
        assert got[0][1] == "héllo" and isinstance(got[0][0], ta.Pid)


@needs_erlang
async def test_gen_server_call_from_erl_is_answered_by_a_gen_server(tmp_path: Path) -> None:
    class Calc(ta.GenServer):
        async def handle_call(self, request: Any, caller: ta.Caller) -> Any:
            op, x, y = request
            if op == Atom("add"):
                return (Atom("ok"), x + y)
            raise ValueError(f"no such operation {op}")

    async with cluster(tmp_path) as (node, erl):
        await node.start_server(Calc, name="calc")
        assert await erl.eval(f"gen_server:call({{calc, '{PY}'}}, {{add, 2, 40}})") == "{ok,42}"
        # A crashing server fails the caller as in Erlang, with the reason.
        failed = await erl.eval(f"catch gen_server:call({{calc, '{PY}'}}, {{mul, 1, 2}})")
        assert failed.startswith("{'EXIT',{{python_exception,<<\"ValueError\">>")
        assert "noproc" in await erl.eval(f"catch gen_server:call({{calc, '{PY}'}}, {{add, 1, 2}})")


@needs_erlang
async def test_rpc_call_runs_only_registered_functions(tmp_path: Path) -> None:
    async with cluster(tmp_path) as (node, erl):

        async def add(a: int, b: int) -> int:
            await trio.lowlevel.checkpoint()
            return a + b

        node.register_rpc("mymod:add", add)
        node.register_rpc("mymod:fail", lambda: 1 / 0)
        assert await erl.eval(f"rpc:call('{PY}', mymod, add, [3, 4])") == "7"
        assert await erl.eval(f"rpc:call('{PY}', os, cmd, [\"id\"])") == (
            "{badrpc,{'EXIT',{undef,[{os,cmd,[\"id\"],[]}]}}}"
        )
        failed = await erl.eval(f"rpc:call('{PY}', mymod, fail, [])")
        assert failed.startswith("{badrpc,{'EXIT',{{python_exception,<<\"ZeroDivisionError\">>")
        assert await erl.eval(f"erpc:call('{PY}', mymod, add, [1, 1])") == "2"
        # The older form, a call to the node's rex server, works too.
        rex = f"gen_server:call({{rex, '{PY}'}}, {{call, mymod, add, [5, 6], group_leader()}})"
        assert await erl.eval(rex) == "11"
        noted: list[Any] = []
        cast_ran = trio.Event()

        def note(value: Any) -> None:
            noted.append(value)
            cast_ran.set()

        node.register_rpc("mymod:note", note)
        assert await erl.eval(f"rpc:cast('{PY}', mymod, note, [cast])") == "true"
        with trio.fail_after(10):
            await cast_ran.wait()
        assert noted == [Atom("cast")]
        # Any other spawn is refused: no code a peer names ever runs.
        await erl.eval(f"Req = erlang:spawn_request('{PY}', os, cmd, [\"id\"], [])")
        refused = "receive {spawn_reply, Req, error, Why} -> Why after 10000 -> timeout end"
        assert await erl.eval(refused) == "notsup"


# --------------------------------------------------------------------------- we dial erl


@needs_erlang
async def test_we_send_by_name_and_call_an_erlang_gen_server(tmp_path: Path) -> None:
    async with cluster(tmp_path) as (node, erl):
        assert (await erl.eval("kv:start()")).startswith("{ok,")
        await erl.eval("register(sink, self())")
        node.send(("sink", E1), (Atom("hello"), "text", 1.5))
        got = await erl.eval("receive M -> M after 10000 -> timeout end")
        assert got == '{hello,<<"text">>,1.5}'
        assert await node.call(("kv", E1), (Atom("put"), "k", [1, 2])) == Atom("ok")
        assert await node.call(("kv", E1), (Atom("get"), "k")) == [1, 2]
        assert await node.call(("kv", E1), (Atom("get"), "none")) is None
        node.cast(("kv", E1), (Atom("put"), "c", 3))
        assert await node.call(("kv", E1), (Atom("get"), "c")) == 3
        with pytest.raises(ta.CallFailed, match="boom"):
            await node.call(("kv", E1), Atom("crash"))
        with pytest.raises(ta.CallFailed, match="noproc"):
            await node.call(("kv", E1), Atom("crash"))
        # erl sees us as a hidden node.
        assert await erl.eval("nodes(hidden)") == f"['{PY}']"


@needs_erlang
async def test_connecting_to_an_unknown_erlang_node_fails_clearly(tmp_path: Path) -> None:
    async with cluster(tmp_path) as (node, _erl):
        with pytest.raises(ta.ConnectionFailed, match="not registered with the EPMD"):
            await node.connect(f"nobody@{HOST}")


@needs_erlang
async def test_wrong_cookie_is_refused_with_a_log_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with cluster(tmp_path, cookie="not-the-cookie") as (node, erl):
        assert await erl.eval(f"net_adm:ping('{PY}')") == "pang"
        assert "refused Erlang node connection" in caplog.text
        with pytest.raises(ta.AuthenticationFailed):
            await node.connect(E1)


# --------------------------------------------------------------------------- links, monitors


async def _pid_from_erl(node: ta.Node, erl: Erl, expr: str) -> ta.Pid:
    """The pid `expr` evaluates to in erl, sent to us."""
    async with node.actor(name="pid_inbox") as ctx:
        await erl.eval(f"{{pid_inbox, '{PY}'}} ! {expr}")
        pid = await ctx.receive(timeout=10)
    assert isinstance(pid, ta.Pid) and pid.node == E1
    return pid


async def _pid_to_erl(node: ta.Node, erl: Erl, pid: ta.Pid, var: str) -> None:
    await erl.eval("catch unregister(inbox), register(inbox, self())")
    node.send(("inbox", E1), pid)
    # A fun: the REPL keeps bindings, and a bound variable in a receive pattern
    # would only match that value.
    got = await erl.eval(f"{var} = (fun() -> receive P -> P after 10000 -> timeout end end)()")
    assert got.startswith("<"), got


@needs_erlang
async def test_erl_monitors_and_links_our_actors(tmp_path: Path) -> None:
    async with cluster(tmp_path) as (node, erl):
        ends: dict[str, trio.Event] = {"a": trio.Event(), "b": trio.Event()}

        async def worker(ctx: ta.Context, key: str, reason: Any) -> None:
            await ends[key].wait()
            ctx.exit(reason)

        a = node.spawn(worker, "a", "boom_reason", name="worker_a")
        b = node.spawn(worker, "b", ("shutdown", 5))
        await _pid_to_erl(node, erl, a, "A")
        await _pid_to_erl(node, erl, b, "B")
        await erl.eval("process_flag(trap_exit, true)")
        await erl.eval("RA = erlang:monitor(process, A)")
        await erl.eval(f"RN = erlang:monitor(process, {{worker_a, '{PY}'}})")
        await erl.eval("link(B)")
        await wait_linked(node, b)
        ends["a"].set()
        down = "receive {'DOWN', RA, process, A, Why} -> Why after 10000 -> timeout end"
        assert await erl.eval(down) == "boom_reason"
        by_name = (
            "receive {'DOWN', RN, process, Who, Why2} -> {Who, Why2} after 10000 -> timeout end"
        )
        assert await erl.eval(by_name) == f"{{{{worker_a,'{PY}'}},boom_reason}}"
        ends["b"].set()
        exited = "receive {'EXIT', B, Why3} -> Why3 after 10000 -> timeout end"
        assert await erl.eval(exited) == "{shutdown,5}"
        # A monitor of a dead actor fires at once, with noproc.
        await erl.eval("RD = erlang:monitor(process, A)")
        dead = "receive {'DOWN', RD, process, _, Why4} -> Why4 after 10000 -> timeout end"
        assert await erl.eval(dead) == "noproc"


async def wait_linked(node: ta.Node, pid: ta.Pid) -> None:
    """Until `pid` has a link (the LINK from erl arrived)."""
    with trio.fail_after(10):
        while True:
            info = node.process_info(pid)
            if info is not None and info.links:
                return
            await trio.sleep(0.01)


@needs_erlang
async def test_we_monitor_and_link_erlang_pids(tmp_path: Path) -> None:
    async with cluster(tmp_path) as (node, erl):
        forever = "spawn(fun() -> receive {stop, R} -> exit(R) end end)"
        p1 = await _pid_from_erl(node, erl, forever)
        p2 = await _pid_from_erl(node, erl, forever)
        p3 = await _pid_from_erl(node, erl, forever)
        async with node.actor(trap_exits=True) as ctx:
            ref = ctx.monitor(p1)
            ctx.link(p2)
            ctx.link(p3)
            ctx.unlink(p3)
            await erl.eval(f"{_erl_pid(p1)} ! {{stop, done}}")
            assert await ctx.receive(timeout=10) == ta.Down(ref, p1, "done")
            await erl.eval(f"{_erl_pid(p3)} ! {{stop, unlinked}}")
            await erl.eval(f"{_erl_pid(p2)} ! {{stop, {{bye, 1}}}}")
            assert await ctx.receive(timeout=10) == ta.Exit(p2, ("bye", 1))
            # erl's exit/2 reaches a trapping actor as an Exit.
            await _pid_to_erl(node, erl, ctx.pid, "Me")
            await erl.eval("exit(Me, please_stop)")
            got = await ctx.receive(timeout=10)
            assert isinstance(got, ta.Exit) and got.reason == "please_stop"
            assert got.pid.node == E1


def _erl_pid(pid: ta.Pid) -> str:
    """An expression for erl's own `pid` in erl (it prints them <0.Id.Serial>)."""
    assert pid.node == E1
    return f'list_to_pid("<0.{pid.id}.{pid.serial}>")'


@needs_erlang
async def test_a_lost_erlang_node_fires_noconnection_both_ways(tmp_path: Path) -> None:
    async with cluster(tmp_path) as (node, erl):
        p = await _pid_from_erl(node, erl, "spawn(fun() -> receive _ -> ok end end)")
        async with node.actor(trap_exits=True) as ctx:
            ref = ctx.monitor(p)
            ctx.link(p)
            await _pid_to_erl(node, erl, ctx.pid, "Me")
            await erl.eval("R = erlang:monitor(process, Me)")
            # We drop the connection: erl's monitor of our actor says noconnection.
            assert node.disconnect(E1)
            down = "receive {'DOWN', R, process, _, Why} -> Why after 10000 -> timeout end"
            assert await erl.eval(down) == "noconnection"
            got = {await ctx.receive(timeout=10), await ctx.receive(timeout=10)}
            assert got == {ta.Down(ref, p, "noconnection"), ta.Exit(p, "noconnection")}
        # Reconnect, then erl dies: our monitor fires noconnection.
        p = await _pid_from_erl(node, erl, "spawn(fun() -> receive _ -> ok end end)")
        async with node.actor() as ctx:
            ref = ctx.monitor(p)
            erl.proc.kill()
            assert await ctx.receive(timeout=30) == ta.Down(ref, p, "noconnection")


@needs_erlang
async def test_an_idle_connection_follows_erls_short_net_ticktime(tmp_path: Path) -> None:
    # erl drops a peer silent for ~net_ticktime (here 4 s); our own tick
    # timeout is 60 s, so only answering erl's ticks keeps the link up.
    async with cluster(tmp_path, ticktime=4) as (node, erl):
        assert await erl.eval(f"net_adm:ping('{PY}')") == "pong"
        await erl.eval("ok = net_kernel:monitor_nodes(true, [{node_type, all}])")
        quiet = "receive {nodedown, N, _} -> {down, N} after 10000 -> still_up end"
        assert await erl.eval(quiet, within=30) == "still_up"
        assert E1 in node.nodes()


# --------------------------------------------------------------------------- hostile peers


async def _fake_erlang_peer(address: tuple[str, int], name: str) -> trio.SocketStream:
    """A connection to our node that completed Erlang's handshake as `name`."""
    stream = await trio.open_tcp_stream(*address)
    hs = ErlDistHandshake(Role.CONNECT, name=name, cookie=COOKIE, creation=9)
    with trio.fail_after(10):
        while not hs.finished:
            if out := hs.data_to_send():
                await stream.send_all(out)
            data = await stream.receive_some(4096)
            if not data:
                hs.connection_lost()
            hs.receive_data(data)
        if out := hs.data_to_send():
            await stream.send_all(out)
    assert hs.established
    return stream


@pytest.mark.parametrize(
    ("body", "logged"),
    [
        (b"\x83junk", "not pass-through 112"),
        (b"p\x83\x68", "malformed control message"),
        (b"p" + EtfCodec().encode((7, ta.Pid("fake@127.0.0.1", 1), ta.Pid(PY, 1))), "GROUP_LEADER"),
        (
            b"p" + EtfCodec().encode((1, ta.Pid("other@127.0.0.1", 1), ta.Pid(PY, 1))),
            "on behalf of",
        ),
    ],
)
async def test_bad_input_from_an_erlang_peer_closes_that_connection_with_a_log_line(
    body: bytes, logged: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with ta.open_node(PY, epmd=None, cookie=COOKIE) as node:
        stream = await _fake_erlang_peer(node.address, "fake@127.0.0.1")
        await stream.send_all(struct.pack(">I", len(body)) + body)
        await _closed(stream)
        assert "closing connection to node 'fake@127.0.0.1'" in caplog.text
        assert logged in caplog.text
        # The node serves others as before.
        again = await _fake_erlang_peer(node.address, "fake2@127.0.0.1")
        await again.aclose()


@needs_erlang
def test_the_erlang_worker_example_serves_an_erlang_node() -> None:
    example = Path(__file__).resolve().parent.parent / "examples" / "erlang_worker.py"
    proc = subprocess.run(
        [sys.executable, str(example)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert "gen_server:call -> (Atom('ok'), [('the', 3)," in proc.stdout
    assert "'THE QUICK BROWN FOX" in proc.stdout
    assert "Atom('undef')" in proc.stdout


@needs_erlang
async def test_disconnect_and_leaving_close_cleanly_for_erl(tmp_path: Path) -> None:
    # No trioactors goodbye record on an Erlang connection: erl would report
    # "incompatible erlang" and see the node as killed.
    nodedown = "receive {nodedown, _, Info} -> Info after 10000 -> timeout end"
    reason = "[{nodedown_reason,connection_closed},{node_type,hidden}]"
    code = compile_erlang(tmp_path, "kv", KV_ERL)
    async with private_epmd() as epmd, erl_repl(epmd, code_path=code) as erl:
        async with ta.open_node(PY, epmd=f"{HOST}:{epmd}", cookie=COOKIE) as node:
            await erl.eval("net_kernel:monitor_nodes(true, [{node_type, all}, nodedown_reason])")
            assert await erl.eval(f"net_adm:ping('{PY}')") == "pong"
            assert node.disconnect(E1)
            assert await erl.eval(nodedown) == reason
            assert await erl.eval(f"net_adm:ping('{PY}')") == "pong"
        assert await erl.eval(nodedown) == reason
        assert not any("incompatible" in line for line in erl.lines)


@needs_erlang
async def test_late_replies_are_dropped_both_ways_through_aliases(tmp_path: Path) -> None:
    class Slow(ta.GenServer):
        async def handle_call(self, request: Any, caller: ta.Caller) -> Any:
            self.ctx.spawn(self.answer_later, caller)
            return ta.NO_REPLY

        async def answer_later(self, ctx: ta.Context, caller: ta.Caller) -> None:
            await trio.sleep(0.3)
            self.reply(caller, Atom("late"))

    async with cluster(tmp_path) as (node, erl):
        # erl -> us: gen:call's alias is inactive after its timeout, so our
        # reply (ALIAS_SEND) is dropped by erl, not queued in its mailbox.
        await node.start_server(Slow, name="slow")
        timed_out = await erl.eval(f"catch gen_server:call({{slow, '{PY}'}}, hi, 50)")
        assert timed_out.startswith("{'EXIT',{timeout,")
        await erl.eval("timer:sleep(600)")
        assert await erl.eval("process_info(self(), message_queue_len)") == (
            "{message_queue_len,0}"
        )
        # us -> erl: our call's tag is an alias too.
        assert (await erl.eval("kv:start()")).startswith("{ok,")
        async with node.actor() as ctx:
            with pytest.raises(ta.CallTimeout):
                await ctx.call(("kv", E1), (Atom("sleep"), 300), timeout=0.05)
            # kv answers in order: the late reply came before this one.
            assert await ctx.call(("kv", E1), (Atom("get"), "x")) is None
            info = node.process_info(ctx.pid)
            assert info is not None and info.mailbox == 0


@needs_erlang
async def test_erl_and_a_node_find_each_other_through_trioactors_epmd(tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        server = await nursery.start(ta.serve_epmd, HOST, 0)
        async with (
            ta.open_node(PY, epmd=f"{HOST}:{server.port}", cookie=COOKIE) as node,
            erl_repl(server.port) as erl,
        ):
            assert await erl.eval(f"net_adm:ping('{PY}')") == "pong"
            node.disconnect(E1)
            peer = node.kernel.peers.get(E1)
            assert peer is not None
            await wait_until(lambda: peer.conn is None)
            # Our lookup finds erl's registration (an Erlang one) in the daemon.
            await erl.eval("register(sink, self())")
            node.send(("sink", E1), Atom("found_you"))
            assert await erl.eval("receive M -> M after 10000 -> timeout end") == "found_you"
        nursery.cancel_scope.cancel()


@needs_erlang
async def test_node_rpc_into_erlang_is_erlangs_rpc_call(tmp_path: Path) -> None:
    async with cluster(tmp_path) as (node, erl):
        assert await node.rpc(E1, "lists:reverse", [1, 2, 3]) == [3, 2, 1]
        assert await node.rpc(E1, "erlang:node") == Atom(E1)
        # What the function prints goes to our group leader, which answers it.
        assert await node.rpc(E1, "io:format", "printed~n") == Atom("ok")
        with pytest.raises(ta.RpcFailed, match="undef"):
            await node.rpc(E1, "nomod:nofun")
        with pytest.raises(ta.CallFailed, match="nodedown"):
            await node.rpc(f"nobody@{HOST}", "erlang:node")
        assert erl.name == E1


@needs_erlang
async def test_spawn_on_an_erlang_node_is_refused_clearly(tmp_path: Path) -> None:
    async with cluster(tmp_path) as (node, erl):
        with pytest.raises(ta.SpawnFailed, match="it is an Erlang node"):
            await node.spawn_on(E1, "anything")
        # The connection is unharmed.
        assert await node.rpc(E1, "erlang:node") == Atom(E1)
        assert not any("incompatible" in line for line in erl.lines)


@needs_erlang
async def test_a_message_erlang_cannot_hold_sent_before_connecting_is_dropped_with_a_log_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with cluster(tmp_path) as (node, erl):
        await erl.eval("register(sink, self())")
        # Not connected yet: both wait for the handshake to say it is erl.
        node.send(("sink", E1), object())
        node.send(("sink", E1), Atom("fine"))
        assert await erl.eval("receive M -> M after 10000 -> timeout end") == "fine"
        assert "dropped a message for node 'e1@127.0.0.1'" in caplog.text
