#!/bin/sh
# bench/webhook.sh [BINARY] [N] [profile] — webhook-to-action latency (bench/webhook.lua), N notifications
# (WEBHOOK_BENCH_N, default 10,000, as issue 17 asks: about 6 minutes here, most of it the 20 ms the bench
# lets each quarantine finish before the next notification).  Prints p50/p99 beside the floor, CPU a
# notification (the Box sandbox's routes apart from cachost's), peak RSS and the load average; `profile`
# adds the CPU of each SQL statement and sandbox route.  The policy is switched to enforce as
# scripts/demo.sh does.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
bin=${1:-$here/../build/cachost}
n=${2:-${WEBHOOK_BENCH_N:-10000}}
export CACHOST_HOME=$(mktemp -d)
trap 'rm -rf "$CACHOST_HOME"' EXIT INT TERM
"$bin" policy mode sensitive_file_shared enforce >/dev/null
"$bin" script "$here/webhook.lua" "$n" ${3:-} 2>"$CACHOST_HOME/log" || { tail -n 60 "$CACHOST_HOME/log" >&2; exit 1; }
