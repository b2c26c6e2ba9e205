"""The narrow hook through which a node carries signals for non-local pids.

The local runtime never imports the distribution layer. An `ActorSystem`
handles local pids itself and hands everything addressed elsewhere to the
`Router` a node installs (`system.set_router(router)`); without one, such
sends are dropped (like sending to a pid of a node that does not exist).

Inbound, the node calls the system's `remote_*` methods and `node_down` (see
`trioactors.runtime.system.ActorSystem`). Every method here is synchronous and must
never block or raise: like Erlang's `!`, signals to an unreachable node are
dropped, and links/monitors to it fire with `noconnection` through
`ActorSystem.node_down`/`remote_exit`/`remote_down`. The one exception is
`spawn_remote`, a request that waits for the other node's answer.
"""

from __future__ import annotations

from typing import Any, Protocol

from ..wire.terms import Pid, Ref

__all__ = ["RemoteName", "RemoteSignals", "Router"]

#: A registered name on a named node: `(name, node_name)`.
RemoteName = tuple[str, str]


class Router(Protocol):
    """What a node provides to an ActorSystem for non-local destinations."""

    def send(self, to: Pid, msg: Any) -> None:
        """Deliver the message `msg` to the remote pid `to` (drop it if
        unreachable). Only messages: signals have methods of their own, so a
        user's own `ta.Down` or `ta.Exit` value travels as the message it is.

        The one exception to "never raises": `ta.NotSerializable` when `msg`
        cannot cross nodes, raised at the sender as the API promises."""

    def send_named(self, to: RemoteName, msg: Any) -> None:
        """Deliver `msg` to the actor registered as `to[0]` on node `to[1]`
        (`ta.NotSerializable` as for `send`)."""

    def reply(self, to: Pid, ref: Ref, value: Any) -> None:
        """Deliver `value`, the reply to call `ref`, to the remote caller `to`
        through the call's alias: its node hands it to the call if it still
        waits and drops it otherwise (`ta.NotSerializable` as for `send`)."""

    def link(self, local: Pid, remote: Pid) -> None:
        """Create the remote half of a link. If `remote` is dead the peer answers
        with an exit signal (`noproc`); if its node is unreachable the node calls
        `system.remote_exit(remote, local, "noconnection", link=True)`."""

    def unlink(self, local: Pid, remote: Pid) -> None:
        """Remove the remote half of a link."""

    def exit(self, sender: Pid, remote: Pid, reason: Any, *, link: bool) -> None:
        """An exit signal from `sender` to `remote`. `link=True` means the signal
        is `sender`'s death propagating over a link (the peer removes the link
        and applies Erlang's link semantics); `False` is an explicit `exit/2`."""

    def down(self, watcher: Pid, ref: Ref, target: Pid | RemoteName, reason: Any) -> None:
        """The local `target` that remote `watcher` monitored (`ref`) ended with
        `reason` (``noproc``: it was not alive when the monitor came): the
        peer clears the monitor and delivers `Down(ref, target, reason)`."""

    def monitor(self, watcher: Pid, ref: Ref, target: Pid | RemoteName) -> None:
        """Ask the target's node to send `Down(ref, target, reason)` to `watcher`
        when `target` ends (at once with `noproc` if it is dead, and via
        `system.remote_down(..., "noconnection")` if the node is unreachable)."""

    def demonitor(self, watcher: Pid, ref: Ref, target: Pid | RemoteName) -> None:
        """Cancel a monitor made with `monitor`."""

    def monitor_node(self, watcher: Pid, node_name: str) -> None:
        """Deliver `NodeDown(node_name, reason)` to `watcher` when the connection
        to that node is lost (at once if it cannot be reached)."""

    def demonitor_node(self, watcher: Pid, node_name: str) -> None:
        """Cancel one `monitor_node`."""

    def is_self(self, node_name: str) -> bool:
        """True when `node_name` names this node (so `(name, node)` is local)."""

    def whereis_global(self, name: str) -> Pid | None:
        """The pid registered cluster-wide as `name` (the `("global", name)`
        destination), answered from the node's replica; None if unregistered."""

    async def spawn_remote(
        self,
        node: str,
        name: str,
        args: tuple[Any, ...],
        link_to: Pid,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - a budget for the remote side
    ) -> Pid:
        """Start the spawnable registered as `name` on `node` (``"name"`` or
        ``"name@host:port"``) with `args`, linked to the local pid `link_to`.

        The link is made on the remote side before the new actor can end, and
        this side's half before any later signal of it is dispatched, so a
        crash right after the start still reaches `link_to` as an exit signal.
        Returns once the actor has started (a GenServer has run `init`).
        Raises `ta.ConnectionFailed` when `node` cannot be reached or goes
        down before answering, and `ta.SpawnFailed` when it refuses (no such
        spawnable, a failing `init`, it is shutting down) or does not answer
        within `timeout` seconds (None waits as long as the node is up).
        """


class RemoteSignals(Protocol):
    """What an ActorSystem offers a node for signals arriving from peers.

    `ActorSystem` implements this; the node calls it from its connection
    reader tasks. All methods are synchronous and never block.
    """

    def deliver(self, to: Pid, msg: Any) -> None:
        """A message for a local pid (dropped if dead or of an earlier incarnation)."""

    def deliver_named(self, name: str, msg: Any) -> None:
        """A message for a locally registered name (dropped if unknown)."""

    def deliver_reply(self, to: Pid, ref: Ref, value: Any) -> None:
        """The reply to call `ref` of local pid `to` (see `Router.reply`):
        handed to the call while it waits, else dropped."""

    def remote_link(self, local: Pid, remote: Pid) -> None:
        """A peer linked `remote` to `local`; if `local` is dead the system
        answers at once through `router.exit(local, remote, "noproc", link=True)`."""

    def remote_unlink(self, local: Pid, remote: Pid) -> None:
        """A peer removed its link."""

    def remote_exit(self, sender: Pid, local: Pid, reason: Any, *, link: bool) -> None:
        """An exit signal for `local` (see `Router.exit` for `link`)."""

    def remote_monitor(self, watcher: Pid, ref: Ref, target: Pid | str) -> None:
        """A remote `watcher` monitors local `target` (a pid or registered name);
        the system answers through `router.down(watcher, ...)` when it ends,
        at once with `noproc` if it is already dead."""

    def remote_demonitor(self, ref: Ref) -> None:
        """A remote watcher cancelled its monitor."""

    def remote_down(self, watcher: Pid, ref: Ref, target: Pid | RemoteName, reason: Any) -> None:
        """A remote monitored target ended: clear the monitor and deliver
        `Down(ref, target, reason)` to `watcher`."""

    def node_down(self, node_name: str, reason: Any = "noconnection") -> None:
        """The connection to node `node_name` is lost: every link to its pids fires
        `Exit`/kills with `reason`, every monitor of its pids delivers `Down`
        with `reason`, and monitors held by its pids on local actors are dropped."""
