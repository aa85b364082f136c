#!/bin/sh
# bench/webhook.sh [BINARY] [N] [profile] — webhook-to-action latency (bench/webhook.lua), N notifications
# (WEBHOOK_BENCH_N, default 10,000, as issue 17 asks: about 6 minutes here, most of it the 20 ms the bench
# lets each quarantine finish before the next notification).  The Box sandbox is the provider's side: it runs
# in its own process (bench/webhook_sandbox.lua), as the static server of bench/sync.sh does, so its state is
# not in cachost's heap.  Prints p50/p99 beside the floor, CPU a notification of cachost and of the sandbox,
# peak RSS and the load average; `profile` adds the CPU of each SQL statement and sandbox route.  The policy
# is switched to enforce as scripts/demo.sh does.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
bin=${1:-$here/../build/cachost}
n=${2:-${WEBHOOK_BENCH_N:-10000}}
tmp=$(mktemp -d)
spid=""
trap 'kill $spid 2>/dev/null; wait $spid 2>/dev/null; rm -rf "$tmp"' EXIT INT TERM
export CACHOST_HOME="$tmp/home"
mkdir "$CACHOST_HOME"
"$bin" script "$here/webhook_sandbox.lua" ${3:-} >"$tmp/url" 2>"$tmp/sandbox.log" &
spid=$!
i=0; while [ ! -s "$tmp/url" ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done
url=$(head -n 1 "$tmp/url")
[ -n "$url" ] || { echo "webhook bench: the sandbox did not start" >&2; cat "$tmp/sandbox.log" >&2; exit 1; }
"$bin" policy mode sensitive_file_shared enforce >/dev/null
"$bin" script "$here/webhook.lua" "$url" "$n" ${3:-} 2>"$tmp/log" || { tail -n 60 "$tmp/log" "$tmp/sandbox.log" >&2; exit 1; }
