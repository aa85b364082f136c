#!/bin/sh
# make bench: each figure printed beside the floor measured in the same run (never a timed test).
here=$(cd "$(dirname "$0")" && pwd)
bin=${1:-$here/../build/cachost}
echo "== host: 1,000,000 sched.sleep(0) yield/resume cycles (target < 1 s)"
"$bin" script "$here/sched.lua"
echo "== host: start-up (target: version < 5 ms)"
t0=$(date +%s%N); for _ in 1 2 3 4 5 6 7 8 9 10; do "$bin" version >/dev/null; done; t1=$(date +%s%N)
t2=$(date +%s%N); for _ in 1 2 3 4 5 6 7 8 9 10; do /bin/true; done; t3=$(date +%s%N)
echo "cachost version: $(( (t1 - t0) / 10000 )) us per run   floor (/bin/true): $(( (t3 - t2) / 10000 )) us"
t0=$(date +%s%N); echo 'return 1' | "$bin" repl >/dev/null 2>&1; t1=$(date +%s%N)
echo "cachost repl (start, one entry, exit): $(( (t1 - t0) / 1000 )) us"
echo "== http: 10,000 GETs, 64 in flight"
sh "$here/http.sh" "$bin" || echo "bench http failed"
echo "== store: 1,000,000 activity rows"
CACHOST_BIN="$bin" sh "$here/store.sh" || echo "bench store failed"
echo "== storage: the database beside the raw JSON received (Okta: 20,000 events, then every stream of Okta and Box)"
sh "$here/storage.sh" "$bin" || echo "bench storage failed"
echo "== sync: full sync of an Okta System Log of 1,000,000 events"
sh "$here/sync.sh" "$bin" || echo "bench sync failed"
echo "== webhook to action: Box webhooks to quarantines by sensitive_file_shared in enforce mode (WEBHOOK_BENCH_N, default 10,000)"
sh "$here/webhook.sh" "$bin" || echo "bench webhook failed"
echo "== dlp: scanning 1 GB of text files, all detectors"
CACHOST_BIN="$bin" sh "$here/dlp.sh" || echo "bench dlp failed"

echo "== instances: 1,000 instances of three apps syncing at once in one process (target: peak memory <= 128 MB)"
sh "$here/instances.sh" "$bin" || echo "bench instances failed"

echo "== workers: 200 instances synced by one process on SQLite, and by 1, 2, 3 workers on PostgreSQL"
sh "$here/workers.sh" "$bin" || echo "bench workers failed"

echo "== policies: the shipped activity policies over 1,000,000 stored activities"
sh "$here/policy.sh" "$bin" || echo "bench policy failed"

echo "== office365: full sync of Management Activity API content and Graph audit logs, 1,000,000 records (target: CPU <= 1.0x the floor)"
sh "$here/o365.sh" "$bin" || echo "bench o365 failed"
