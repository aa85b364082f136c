#!/bin/sh
# bench/sync.sh [BINARY] [EVENTS] — full sync of an Okta sandbox's System Log (pages of 1,000), beside its
# floor measured in the same run: curl fetching the same pages from the same sandbox, plus the sqlite3
# CLI importing the same rows (from the saved pages, with its JSON functions).  Peak memory of the sync.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
. "$here/floor.sh"
bin=${1:-$here/../build/cachost}
events=${2:-${SYNC_BENCH_EVENTS:-1000000}}
tmp=$(mktemp -d)
"$bin" sandbox okta --events "$events" --rate-limit 100000000 >"$tmp/tenants" 2>"$tmp/sandbox.log" &
spid=$!
trap 'kill $spid 2>/dev/null; wait $spid 2>/dev/null; rm -rf "$tmp"' EXIT INT TERM
i=0; while [ ! -s "$tmp/tenants" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
url=$(awk '{print $3}' "$tmp/tenants")
since=$(date -u -d '30 days ago' +%Y-%m-%dT%H:%M:%SZ)
auth="Authorization: SSWS 00sandbox-okta-api-token"

# floor 1: curl walks the pages (following the Link header) and saves them
t0=$(date +%s.%N)
next="$url/api/v1/logs?since=$since&limit=1000&sortOrder=ASCENDING"
n=0
while [ -n "$next" ]; do
  n=$((n + 1))
  curl -s -H "$auth" -D "$tmp/h" -o "$tmp/page$n.json" "$next"
  [ "$(head -c 2 "$tmp/page$n.json")" = "[]" ] && break
  next=$(tr -d '\r' <"$tmp/h" | sed -n 's/.*<\([^>]*\)>; rel="next".*/\1/p' | head -n 1)
done
t1=$(date +%s.%N)
# floor 2: sqlite3 imports the same rows
floor_import "$tmp/floor.db" "$tmp/page" "$n" "time TEXT, action TEXT, actor TEXT, outcome TEXT, ip TEXT" \
  '$.uuid' '$.published' '$.eventType' '$.actor.alternateId' '$.outcome.result' '$.client.ipAddress'
t2=$(date +%s.%N)
rows=$(sqlite3 "$tmp/floor.db" "SELECT count(*) FROM activities")

# cachost: a full sync of the same log
export CACHOST_HOME="$tmp/home"
CACHOST_SET_API_TOKEN=00sandbox-okta-api-token "$bin" instance add okta --name bench --set domain=bench.okta.com \
  --set base_url="$url" --set insecure_loopback=true --set initial_days=30 </dev/null >/dev/null
t3=$(date +%s.%N)
/usr/bin/time -f "%M" -o "$tmp/rss" "$bin" sync bench --stream activities --no-policies >"$tmp/sync.out"
t4=$(date +%s.%N)
ours=$("$bin" query "SELECT count(*) AS n FROM activities" --format csv | tail -n 1)
awk -v n="$n" -v rows="$rows" -v ours="$ours" -v c="$(echo "$t1 - $t0" | bc -l)" -v s="$(echo "$t2 - $t1" | bc -l)" \
    -v sync="$(echo "$t4 - $t3" | bc -l)" -v rss="$(cat "$tmp/rss")" 'BEGIN {
  floor = c + s
  printf "floor: curl %d pages %.1f s + sqlite3 import %d rows %.1f s = %.1f s\n", n, c, rows, s, floor
  printf "cachost sync: %d rows in %.1f s = %.2fx the floor (target 1.5x); peak memory %.1f MB (target 64 MB)\n",
    ours, sync, sync / floor, rss / 1024
}'
