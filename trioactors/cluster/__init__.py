"""Distribution: nodes, the handshake, peer connections and discovery.

The local runtime never imports this package; a node installs itself into
its `ActorSystem` as the router for non-local pids (see `trioactors.runtime.router`).
"""
