#!/usr/bin/env bash
# Three "hosts" on one machine for the multi-host tests: network namespaces
# ta-h1, ta-h2, ta-h3, each joined by a veth pair to the bridge ta-br0 in the
# root namespace, which holds 10.77.0.254 so the test process itself can
# reach every host (and so act as a fourth host).
#
#   scripts/netns.sh up      # create (idempotent: tears down leftovers first)
#   scripts/netns.sh down    # remove everything it made
#   scripts/netns.sh cut 3   # unplug host 3 (packets dropped, no RST: a cut cable)
#   scripts/netns.sh mend 3  # plug it back in
#
# Host N has address 10.77.0.N/24. Needs root and iproute2; prints why and
# exits 2 when namespaces cannot be made here.
set -euo pipefail
HOSTS=(1 2 3)
BRIDGE=ta-br0
NET=10.77.0

need() {
    if [ "$(id -u)" != 0 ]; then echo "netns: needs root" >&2; exit 2; fi
    if ! command -v ip >/dev/null 2>&1; then echo "netns: needs iproute2 (ip)" >&2; exit 2; fi
}

down() {
    for n in "${HOSTS[@]}"; do
        ip netns del "ta-h$n" 2>/dev/null || true
        ip link del "ta-h$n-br" 2>/dev/null || true
    done
    ip link del "$BRIDGE" 2>/dev/null || true
}

up() {
    down
    if ! ip link add "$BRIDGE" type bridge 2>/tmp/ta-netns.err; then
        echo "netns: cannot create a bridge: $(cat /tmp/ta-netns.err)" >&2; exit 2
    fi
    ip addr add "$NET.254/24" dev "$BRIDGE"
    ip link set "$BRIDGE" up
    for n in "${HOSTS[@]}"; do
        if ! ip netns add "ta-h$n" 2>/tmp/ta-netns.err; then
            echo "netns: cannot create a namespace: $(cat /tmp/ta-netns.err)" >&2; down; exit 2
        fi
        ip link add "ta-h$n-br" type veth peer name eth0 netns "ta-h$n"
        ip link set "ta-h$n-br" master "$BRIDGE" up
        ip -n "ta-h$n" addr add "$NET.$n/24" dev eth0
        ip -n "ta-h$n" link set eth0 up
        ip -n "ta-h$n" link set lo up
    done
    # Bridged frames must not be filtered by the host's firewall.
    if [ -w /proc/sys/net/bridge/bridge-nf-call-iptables ]; then
        echo 0 > /proc/sys/net/bridge/bridge-nf-call-iptables || true
    fi
    for n in "${HOSTS[@]}"; do
        if ! ip netns exec "ta-h$n" python3 -c "import socket,sys; s=socket.socket(); s.settimeout(3); s.connect_ex((sys.argv[1], 9)) in (0, 111) or sys.exit(1)" "$NET.254"; then
            echo "netns: host $n cannot reach the bridge" >&2; down; exit 2
        fi
    done
}

need
case "${1:-}" in
    up) up ;;
    down) down ;;
    cut) ip link set "ta-h$2-br" down ;;
    mend) ip link set "ta-h$2-br" up ;;
    *) echo "usage: $0 up|down|cut N|mend N" >&2; exit 64 ;;
esac
