#!/bin/sh
# bench/o365.sh [BINARY] [RECORDS] — Office 365 activities through the Management Activity API (default
# 1,000,000 records), beside the floor measured in the same run: curl listing the same content and
# fetching the same blobs from the same sandbox, plus the sqlite3 CLI importing the same records.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
. "$here/floor.sh"
bin=${1:-$here/../build/cachost}
records=${2:-${O365_BENCH_RECORDS:-1000000}}
tmp=$(mktemp -d)
"$bin" sandbox microsoft --events "$records" --rate-limit 100000000 >"$tmp/tenants" 2>"$tmp/sandbox.log" &
spid=$!
trap 'kill $spid 2>/dev/null; wait $spid 2>/dev/null; rm -rf "$tmp"' EXIT INT TERM
i=0; while [ ! -s "$tmp/tenants" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
url=$(cut -f3 "$tmp/tenants")
cred() { cut -f4 "$tmp/tenants" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
tid=$(cred tenant_id); cid=$(cred client_id); secret=$(cred client_secret)

# floor 1: curl — a token, the subscriptions, the content listings (24-hour windows, NextPageUri), the blobs
: >"$tmp/blobs.conf"
t0=$(date +%s.%N)
token=$(curl -s -d "grant_type=client_credentials&client_id=$cid&client_secret=$secret&scope=https%3A%2F%2Fmanage.office.com%2F.default" \
  "$url/$tid/oauth2/v2.0/token" | sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')
feed="$url/api/v1.0/$tid/activity/feed"
n=0
for ct in Audit.AzureActiveDirectory Audit.Exchange Audit.SharePoint Audit.General; do
  curl -s -X POST -H "Authorization: Bearer $token" "$feed/subscriptions/start?contentType=$ct" >/dev/null
  day=7
  while [ $day -ge 1 ]; do
    start=$(date -u -d "$day days ago" +%Y-%m-%dT%H:%M:%S); end=$(date -u -d "$((day - 1)) days ago" +%Y-%m-%dT%H:%M:%S)
    next="$feed/subscriptions/content?contentType=$ct&startTime=$start&endTime=$end"
    while [ -n "$next" ]; do
      curl -s -H "Authorization: Bearer $token" -D "$tmp/h" -o "$tmp/list.json" "$next"
      for blob in $(grep -o '"contentUri":"[^"]*"' "$tmp/list.json" | cut -d'"' -f4); do
        n=$((n + 1))
        printf 'url = "%s"\noutput = "%s/blob%d.json"\n' "$blob" "$tmp" "$n" >>"$tmp/blobs.conf"
      done
      next=$(tr -d '\r' <"$tmp/h" | sed -n 's/^[Nn]ext[Pp]age[Uu]ri: //p')
    done
    day=$((day - 1))
  done
done
# the blobs, one curl reusing its connection (as sequential as the listing)
curl -s -H "Authorization: Bearer $token" --config "$tmp/blobs.conf"
t1=$(date +%s.%N)
# floor 2: sqlite3 imports the same records
floor_import "$tmp/floor.db" "$tmp/blob" "$n" "time TEXT, action TEXT, actor TEXT, app TEXT, ip TEXT" \
  '$.Id' '$.CreationTime' '$.Operation' '$.UserId' '$.Workload' '$.ClientIP'
t2=$(date +%s.%N)
rows=$(sqlite3 "$tmp/floor.db" "SELECT count(*) FROM activities")

# cachost: the office365 instance's activities (Management Activity API, plus the directory audits and
# sign-ins that the same stream reads through Graph)
export CACHOST_HOME="$tmp/home"
CACHOST_SET_CLIENT_SECRET="$secret" "$bin" instance add office365 --name bench --set tenant_id="$tid" \
  --set client_id="$cid" --set base_url="$url" --set insecure_loopback=true --set components=users,activities </dev/null >/dev/null
t3=$(date +%s.%N)
/usr/bin/time -f "%M" -o "$tmp/rss" "$bin" sync bench --stream activities --no-policies >"$tmp/sync.out"
t4=$(date +%s.%N)
ours=$("$bin" query "SELECT count(*) AS n FROM activities WHERE app NOT IN ('Entra sign-ins', 'Entra audit')" --format csv | tail -n 1)
all=$("$bin" query "SELECT count(*) AS n FROM activities" --format csv | tail -n 1)
awk -v n="$n" -v rows="$rows" -v ours="$ours" -v all="$all" -v c="$(echo "$t1 - $t0" | bc -l)" -v s="$(echo "$t2 - $t1" | bc -l)" \
    -v sync="$(echo "$t4 - $t3" | bc -l)" -v rss="$(cat "$tmp/rss")" 'BEGIN {
  floor = c + s
  printf "floor: curl %d blobs %.1f s + sqlite3 import %d records %.1f s = %.1f s\n", n, c, rows, s, floor
  printf "cachost sync: %d activity rows (Management API and Graph) in %.1f s = %.2fx the floor; peak memory %.1f MB\n",
    all, sync, sync / floor, rss / 1024
}'
