#!/bin/sh
# bench/webhook.sh [BINARY] [N] — webhook-to-action latency (bench/webhook.lua), N notifications
# (WEBHOOK_BENCH_N, default 1,000, about 2 min here: the issue asks 10,000, far longer, as the latency grows
# with the files stored: cachost's time between the download and the quarantine, not the sandbox's).
# The policy is switched to enforce as scripts/demo.sh does.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
bin=${1:-$here/../build/cachost}
n=${2:-${WEBHOOK_BENCH_N:-1000}}
export CACHOST_HOME=$(mktemp -d)
trap 'rm -rf "$CACHOST_HOME"' EXIT INT TERM
"$bin" policy mode sensitive_file_shared enforce >/dev/null
"$bin" script "$here/webhook.lua" "$n" 2>"$CACHOST_HOME/log" || { tail -n 60 "$CACHOST_HOME/log" >&2; exit 1; }
