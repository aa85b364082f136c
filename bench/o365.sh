#!/bin/sh
# bench/o365.sh [BINARY] [RECORDS] — a full sync of Office 365 activities (the Management Activity API's
# content blobs, and the directory audits and sign-ins the same stream reads through Graph; the sandbox
# made with RECORDS events, default 1,000,000), beside its floor measured in the same run: curl fetching
# the same answers plus the sqlite3 CLI importing the same records.  As in bench/sync.sh, both sides fetch
# from a static loopback server (bench/replay_server.lua: the sandbox's answers recorded once by a first
# sync, then served from memory), so neither is bounded by the emulator: CPU time (user + sys) of each
# side is the figure that counts, printed beside wall time.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
. "$here/floor.sh"
bin=${1:-$here/../build/cachost}
records=${2:-${O365_BENCH_RECORDS:-1000000}}
tmp=$(mktemp -d)
spid=""; rpid=""
trap 'kill $spid $rpid 2>/dev/null; wait $spid $rpid 2>/dev/null; rm -rf "$tmp"' EXIT INT TERM
wait_file() { i=0; while [ ! -s "$1" ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done; }
"$bin" sandbox microsoft --events "$records" --rate-limit 100000000 >"$tmp/tenants" 2>"$tmp/sandbox.log" &
spid=$!
wait_file "$tmp/tenants"
url=$(cut -f3 "$tmp/tenants")
cred() { cut -f4 "$tmp/tenants" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
tid=$(cred tenant_id); cid=$(cred client_id); secret=$(cred client_secret)
"$bin" script "$here/replay_server.lua" "$url" >"$tmp/replay" 2>"$tmp/replay.err" &
rpid=$!
wait_file "$tmp/replay"
replay=$(head -n 1 "$tmp/replay")
[ -n "$replay" ] || { echo "o365 bench: the replay server did not start" >&2; cat "$tmp/replay.err" >&2; exit 1; }
add() {
  CACHOST_HOME="$1" CACHOST_SET_CLIENT_SECRET="$secret" "$bin" instance add office365 --name bench --set tenant_id="$tid" \
    --set client_id="$cid" --set base_url="$replay" --set insecure_loopback=true --set components=users,audits,signins,activities </dev/null >/dev/null
}

# 1. record: a first sync through the replay server, which passes each request to the sandbox
add "$tmp/record"
CACHOST_HOME="$tmp/record" "$bin" sync bench --stream activities --no-policies >/dev/null 2>"$tmp/record.err"
curl -s -X POST "$replay/_replay/replay" >/dev/null
kill $spid; wait $spid 2>/dev/null || true; spid=""
ticks() { awk '{ print $14 + $15 }' "/proc/$rpid/stat"; }     # the replay server's CPU (clock ticks)
hz=$(getconf CLK_TCK)
cpu() { awk "BEGIN { print $(cat "$tmp/cpu") }"; }           # user+sys of the timed child, from /usr/bin/time

# 2. floor: one curl process fetching every GET the sync made (content listings, blobs, Graph pages), in
# its order; then the sqlite3 CLI importing the blobs' records and the Graph pages' values
: >"$tmp/curl.conf"; n=0; g=0
curl -s "$replay/_replay/gets" >"$tmp/gets"
while read -r u; do
  case "$u" in
    */audit/*) n=$((n + 1)); out="$tmp/blob$n.json" ;;
    */auditLogs/*) g=$((g + 1)); out="$tmp/graph$g.json" ;;
    *) out=/dev/null ;;
  esac
  printf 'url = "%s"\noutput = "%s"\n' "$u" "$out" >>"$tmp/curl.conf"
done <"$tmp/gets"
curl -s -X POST "$replay/_replay/rewind" >/dev/null
h0=$(ticks); t0=$(date +%s.%N)
/usr/bin/time -f %U+%S -o "$tmp/cpu" curl -s --fail --config "$tmp/curl.conf"
t1=$(date +%s.%N); h1=$(ticks); curl_cpu=$(cpu)
FLOOR_TIMER="/usr/bin/time -f %U+%S -o $tmp/cpu" floor_import "$tmp/floor.db" "$tmp/blob" "$n" \
  "time TEXT, action TEXT, actor TEXT, app TEXT, ip TEXT" \
  '$.Id' '$.CreationTime' '$.Operation' '$.UserId' '$.Workload' '$.ClientIP'
import_cpu=$(cpu)
FLOOR_ROOT='$.value' FLOOR_TIMER="/usr/bin/time -f %U+%S -o $tmp/cpu" floor_import "$tmp/floor.db" "$tmp/graph" "$g" \
  "time TEXT, action TEXT, actor TEXT, app TEXT, ip TEXT" \
  '$.id' '$.createdDateTime' '$.activityDisplayName' '$.userPrincipalName' '$.appDisplayName' '$.ipAddress'
t2=$(date +%s.%N); sqlite_cpu=$(awk "BEGIN { print $import_cpu + $(cpu) }")
rows=$(sqlite3 "$tmp/floor.db" "SELECT count(*) FROM activities")

# 3. cachost: the same sync, from the same answers
curl -s -X POST "$replay/_replay/rewind" >/dev/null
add "$tmp/home"
export CACHOST_HOME="$tmp/home"
h2=$(ticks); t3=$(date +%s.%N)
/usr/bin/time -f "%M %U %S" -o "$tmp/rss" "$bin" sync bench --stream activities --no-policies >"$tmp/sync.out" 2>"$tmp/sync.err"
t4=$(date +%s.%N); h3=$(ticks)
ours=$("$bin" query "SELECT count(*) AS n FROM activities" --format csv | tail -n 1)
awk -v n="$n" -v g="$g" -v rows="$rows" -v ours="$ours" -v c="$(echo "$t1 - $t0" | bc -l)" -v s="$(echo "$t2 - $t1" | bc -l)" \
    -v sync="$(echo "$t4 - $t3" | bc -l)" -v ccpu="$curl_cpu" -v scpu="$sqlite_cpu" -v hz="$hz" \
    -v hfloor="$((h1 - h0))" -v hours="$((h3 - h2))" $(awk '{ printf "-v rss=%s -v ocpu=%s", $1, $2 + $3 }' "$tmp/rss") 'BEGIN {
  floor = c + s; fcpu = ccpu + scpu
  printf "replay server (answers in memory): %.2f s CPU serving the floor, %.2f s serving cachost\n", hfloor / hz, hours / hz
  printf "floor: curl %d blobs and %d Graph pages %.1f s (CPU %.2f s) + sqlite3 import %d records %.1f s (CPU %.2f s) = %.1f s wall, %.2f s CPU = %.1f us CPU per record\n",
    n, g, c, ccpu, rows, s, scpu, floor, fcpu, fcpu * 1e6 / rows
  printf "cachost sync: %d activity rows (Management API and Graph) in %.1f s wall = %.2fx the floor; CPU %.2f s = %.1f us per record = %.2fx the floor'"'"'s CPU (target <= 1.0x: %s); peak memory %.1f MB\n",
    ours, sync, sync / floor, ocpu, ocpu * 1e6 / ours, (ocpu / ours) / (fcpu / rows), ((ocpu / ours) / (fcpu / rows) <= 1.0) ? "met" : "NOT met", rss / 1024
}'
