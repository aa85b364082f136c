#!/bin/sh
# bench/storage.sh [BINARY] [EVENTS] — bytes the store takes per Okta event beside its floor, the raw JSON
# the API sent for it, measured in the same run: a sandbox's System Log synced, then the database file
# (checkpointed) against the sum of the events' own JSON texts (raw: byte for byte what was sent).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
bin=${1:-$here/../build/cachost}
events=${2:-${STORAGE_BENCH_EVENTS:-20000}}
tmp=$(mktemp -d)
"$bin" sandbox okta --events "$events" --rate-limit 100000000 >"$tmp/tenants" 2>"$tmp/sandbox.log" &
spid=$!
trap 'kill $spid 2>/dev/null; wait $spid 2>/dev/null; rm -rf "$tmp"' EXIT INT TERM
i=0; while [ ! -s "$tmp/tenants" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
url=$(awk '{print $3}' "$tmp/tenants")
export CACHOST_HOME="$tmp/home" CACHOST_MASTER_KEY=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
CACHOST_SET_API_TOKEN=00sandbox-okta-api-token "$bin" instance add okta --name bench --set domain=bench.okta.com \
  --set base_url="$url" --set insecure_loopback=true --set initial_days=30 </dev/null >/dev/null
"$bin" sync bench --stream activities --no-policies >"$tmp/sync.out"
out=$("$bin" query "SELECT count(*) AS n, sum(length(CAST(unzstd(raw) AS BLOB))) AS raw FROM activities" --format csv | tail -n 1)
db=$(stat -c %s "$CACHOST_HOME/cachost.db")
wal=$(stat -c %s "$CACHOST_HOME/cachost.db-wal" 2>/dev/null || echo 0)
echo "$out" | awk -F, -v db="$db" -v wal="$wal" '{
  n = $1; raw = $2
  printf "storage: %d Okta events, database %.1f MB = %d B per event   floor: raw JSON received %.1f MB = %d B per event   ratio %.2f (target 0.50)\n",
    n, (db + wal) / 1048576, (db + wal) / n, raw / 1048576, raw / n, (db + wal) / raw
}'
