#!/bin/sh
# bench/sync.sh [BINARY] [EVENTS] — full sync of an Okta System Log (pages of 1,000), beside its floor
# measured in the same run: curl fetching the same pages plus the sqlite3 CLI importing the same rows
# (from the saved pages, with its JSON functions).  Peak memory of the sync.
# The pages are rendered once by the sandbox, then BOTH sides fetch them from a static loopback server
# holding them in memory: the Lua emulator generating pages would otherwise bound both sides and the ratio
# would say nothing about cachost's own cost.  So CPU time (user + sys) of each side is the figure that
# counts, printed beside wall time; the static server's own CPU is printed too.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
. "$here/floor.sh"
bin=${1:-$here/../build/cachost}
events=${2:-${SYNC_BENCH_EVENTS:-1000000}}
tmp=$(mktemp -d)
mkdir "$tmp/pages"
spid=""; hpid=""
trap 'kill $spid $hpid 2>/dev/null; wait $spid $hpid 2>/dev/null; rm -rf "$tmp"' EXIT INT TERM
wait_port() { i=0; while [ ! -s "$1" ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done; }
"$bin" sandbox okta --events "$events" --rate-limit 100000000 >"$tmp/tenants" 2>"$tmp/sandbox.log" &
spid=$!
wait_port "$tmp/tenants"
url=$(awk '{print $3}' "$tmp/tenants")
since=$(date -u -d '30 days ago' +%Y-%m-%dT%H:%M:%SZ)
auth="Authorization: SSWS 00sandbox-okta-api-token"

# 1. pre-render: walk the sandbox's pages once (following its Link header), save each page and its next
# link, rewritten to the static server's ?page=N+1 (the last, empty page links to itself, as Okta's
# polling queries always offer a next link).
next="$url/api/v1/logs?since=$since&limit=1000&sortOrder=ASCENDING"
n=0
while [ -n "$next" ]; do
  n=$((n + 1))
  curl -s -H "$auth" -D "$tmp/h" -o "$tmp/pages/page$n.json" "$next"
  if [ "$(head -c 2 "$tmp/pages/page$n.json")" = "[]" ]; then echo "<@STATIC@/api/v1/logs?page=$n>; rel=\"next\"" >"$tmp/pages/page$n.link"; break; fi
  echo "<@STATIC@/api/v1/logs?page=$((n + 1))>; rel=\"next\"" >"$tmp/pages/page$n.link"
  next=$(tr -d '\r' <"$tmp/h" | sed -n 's/.*<\([^>]*\)>; rel="next".*/\1/p' | head -n 1)
done
kill $spid; wait $spid 2>/dev/null || true; spid=""

# 2. the static server (cachost's own evhttp server, pages in memory); its port goes into the links
"$bin" script "$here/static_server.lua" "$tmp/pages" >"$tmp/port" 2>"$tmp/static.err" &
hpid=$!
wait_port "$tmp/port"
static="http://127.0.0.1:$(head -n 1 "$tmp/port")"
[ "$static" != "http://127.0.0.1:" ] || { echo "sync bench: static server did not start" >&2; cat "$tmp/static.err" >&2; exit 1; }
# the static server's CPU (utime + stime, clock ticks, from /proc) before and after each side
ticks() { awk '{ print $14 + $15 }' "/proc/$hpid/stat"; }
hz=$(getconf CLK_TCK)
cpu() { awk "BEGIN { print $(cat "$tmp/cpu") }"; }     # user+sys of the timed child, from /usr/bin/time

# floor: one curl process fetching the same pages (their URLs are known: no process per page), then the
# sqlite3 CLI importing the same rows
i=1; : >"$tmp/curl.conf"
while [ $i -le $n ]; do printf 'url = "%s/api/v1/logs?page=%d"\noutput = "%s/floor%d.json"\n' "$static" $i "$tmp" $i >>"$tmp/curl.conf"; i=$((i + 1)); done
h0=$(ticks); t0=$(date +%s.%N)
/usr/bin/time -f %U+%S -o "$tmp/cpu" curl -s --fail --config "$tmp/curl.conf"
t1=$(date +%s.%N); h1=$(ticks); curl_cpu=$(cpu)
FLOOR_TIMER="/usr/bin/time -f %U+%S -o $tmp/cpu" floor_import "$tmp/floor.db" "$tmp/floor" "$n" \
  "time TEXT, action TEXT, actor TEXT, outcome TEXT, ip TEXT" \
  '$.uuid' '$.published' '$.eventType' '$.actor.alternateId' '$.outcome.result' '$.client.ipAddress'
t2=$(date +%s.%N); sqlite_cpu=$(cpu)
rows=$(sqlite3 "$tmp/floor.db" "SELECT count(*) FROM activities")

# cachost: a full sync of the same log from the same static server
export CACHOST_HOME="$tmp/home"
CACHOST_SET_API_TOKEN=00sandbox-okta-api-token "$bin" instance add okta --name bench --set domain=bench.okta.com \
  --set base_url="$static" --set insecure_loopback=true --set initial_days=30 </dev/null >/dev/null
h2=$(ticks); t3=$(date +%s.%N)
/usr/bin/time -f "%M %U %S" -o "$tmp/rss" "$bin" sync bench --stream activities --no-policies >"$tmp/sync.out"
t4=$(date +%s.%N); h3=$(ticks)
ours=$("$bin" query "SELECT count(*) AS n FROM activities" --format csv | tail -n 1)
awk -v n="$n" -v rows="$rows" -v ours="$ours" -v c="$(echo "$t1 - $t0" | bc -l)" -v s="$(echo "$t2 - $t1" | bc -l)" \
    -v sync="$(echo "$t4 - $t3" | bc -l)" -v ccpu="$curl_cpu" -v scpu="$sqlite_cpu" -v hz="$hz" \
    -v hfloor="$((h1 - h0))" -v hours="$((h3 - h2))" $(awk '{ printf "-v rss=%s -v ocpu=%s", $1, $2 + $3 }' "$tmp/rss") 'BEGIN {
  floor = c + s; fcpu = ccpu + scpu
  printf "static server (pages in memory): %.2f s CPU serving the floor, %.2f s serving cachost\n", hfloor / hz, hours / hz
  printf "floor: curl %d pages %.1f s (CPU %.2f s) + sqlite3 import %d rows %.1f s (CPU %.2f s) = %.1f s wall, %.2f s CPU = %.1f us CPU per event\n",
    n, c, ccpu, rows, s, scpu, floor, fcpu, fcpu * 1e6 / rows
  printf "cachost sync: %d rows in %.1f s wall = %.2fx the floor; CPU %.2f s = %.1f us per event = %.2fx the floor'"'"'s CPU (target <= 1.0x: %s); peak memory %.1f MB (target 64 MB)\n",
    ours, sync, sync / floor, ocpu, ocpu * 1e6 / ours, (ocpu / ours) / (fcpu / rows), ((ocpu / ours) / (fcpu / rows) <= 1.0) ? "met" : "NOT met", rss / 1024
}'
