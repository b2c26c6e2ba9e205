#!/usr/bin/env bash
# Installs Erlang/OTP (Debian's erlang-nox) for the EPMD compatibility tests.
# Never fails the build: when it cannot install, those tests skip with a reason.
if command -v erl >/dev/null 2>&1 && command -v epmd >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "note: Erlang/OTP not installed (needs root and apt-get); Erlang tests will skip" >&2
    exit 0
fi
echo "installing Erlang/OTP (erlang-nox) for the EPMD compatibility tests..." >&2
if ! (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq erlang-nox) >/tmp/trioactors-erlang-install.log 2>&1; then
    echo "note: erlang-nox install failed (see /tmp/trioactors-erlang-install.log); Erlang tests will skip" >&2
fi
exit 0
