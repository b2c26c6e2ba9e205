#!/usr/bin/env bash
# Installs the outside programs some tests use as real peers or terminals:
#   erlang-nox  erl and epmd, the reference for the Erlang-compatibility tests
#   tmux        a real terminal for `trioactors top`'s live view
#   iproute2    `ip netns` for the multi-host tests (scripts/netns.sh)
# Never fails the build: what cannot be installed makes its tests skip, each
# with the reason.
set -u
missing=()
command -v erl >/dev/null 2>&1 && command -v epmd >/dev/null 2>&1 || missing+=(erlang-nox)
command -v tmux >/dev/null 2>&1 || missing+=(tmux)
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "note: not installed (needs root and apt-get): ${missing[*]}; their tests will skip" >&2
    exit 0
fi
echo "installing test tools: ${missing[*]}..." >&2
log=/tmp/trioactors-test-tools-install.log
if ! (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}") >"$log" 2>&1; then
    echo "note: installing ${missing[*]} failed (see $log); their tests will skip" >&2
fi
exit 0
