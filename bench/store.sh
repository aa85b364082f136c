#!/bin/sh
# bench/store.sh [N] — the store's figures, each next to its floor measured in the same run:
#   upserting N activity rows through the Lua store API  vs  sqlite3 .import of the same rows (CSV)
#   re-upserting the same N rows (all unchanged)          vs  the first upsert
#   cachost query over N activities, streamed             peak memory (RSS) must stay under 50 MB
set -e
N=${1:-1000000}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${CACHOST_BIN:-$ROOT/cachost}
DIR=$(mktemp -d)
trap 'rm -rf "$DIR"' EXIT
export CACHOST_MASTER_KEY=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')

mkdir -p "$DIR/import" "$DIR/upsert"
"$BIN" script "$ROOT/bench/store.lua" csv "$DIR" "$N"
t0=$(date +%s.%N)
sqlite3 "$DIR/import/cachost.db" ".mode csv" ".import $DIR/activities.csv activities"
t1=$(date +%s.%N)
import=$(echo "$t1 - $t0" | bc -l)

# one commit per page of 1000 (what a sync task does), then 100 pages per transaction
out=$(BENCH_PAGES_PER_TX=1 "$BIN" script "$ROOT/bench/store.lua" upsert "$DIR" "$N")
per_page=$(echo "$out" | awk '/upsert_first/ {print $2}')
rm -rf "$DIR/upsert"; mkdir -p "$DIR/upsert"
out=$(BENCH_PAGES_PER_TX=100 "$BIN" script "$ROOT/bench/store.lua" upsert "$DIR" "$N")
first=$(echo "$out" | awk '/upsert_first/ {print $2}')
again=$(echo "$out" | awk '/upsert_again/ {print $2}')

rss=$( { /usr/bin/time -f "%M" env CACHOST_HOME="$DIR/upsert" "$BIN" query "SELECT * FROM activities" -f csv >/dev/null; } 2>&1 | tail -1)

printf 'store: upsert %d activities, 100 pages/tx %8.2f s   floor: sqlite3 .import %8.2f s   ratio %.2f (limit 1.5)\n' "$N" "$first" "$import" "$(echo "$first / $import" | bc -l)"
printf 'store: upsert %d activities, 1 page/tx    %8.2f s   floor: sqlite3 .import %8.2f s   ratio %.2f\n' "$N" "$per_page" "$import" "$(echo "$per_page / $import" | bc -l)"
printf 'store: re-upsert (unchanged)      %8.2f s   floor: first upsert    %8.2f s   ratio %.2f (limit 1.0)\n' "$again" "$first" "$(echo "$again / $first" | bc -l)"
printf 'store: query %d rows, peak RSS  %8.1f MB  limit 50 MB\n' "$N" "$(echo "$rss / 1024" | bc -l)"
