#!/bin/sh
# bench/policy.sh [BINARY] [N] — the shipped activity policies over N stored activities (default 1,000,000).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
bin=${1:-$here/../build/cachost}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM
CACHOST_HOME="$tmp" CACHOST_MASTER_KEY=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n') \
  "$bin" script "$here/policy.lua" "${2:-1000000}"
