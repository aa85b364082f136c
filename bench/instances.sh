#!/bin/sh
# bench/instances.sh [BINARY] [N] — N instances (default 1,000) of three apps (Okta, GitHub, Box) syncing
# at once in one process, against one sandbox tenant of each app in another process.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
bin=${1:-$here/../build/cachost}
tmp=$(mktemp -d)
"$bin" sandbox okta github:acme box --size 20 --events 400 --rate-limit 1000000 >"$tmp/tenants" 2>"$tmp/sandbox.log" &
spid=$!
trap 'kill $spid 2>/dev/null; wait $spid 2>/dev/null; rm -rf "$tmp"' EXIT INT TERM
# (the file may not exist yet: the background job makes it)
i=0; while [ "$(cat "$tmp/tenants" 2>/dev/null | wc -l)" -lt 3 ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
CACHOST_HOME="$tmp/home" "$bin" script "$here/instances.lua" "$tmp/tenants" "${2:-1000}"
