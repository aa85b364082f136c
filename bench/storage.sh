#!/bin/sh
# bench/storage.sh [BINARY] [EVENTS] [USERS] — the store's size beside its floor, the raw JSON the APIs sent,
# measured in the same run on sandboxes: an Okta org (EVENTS System Log events, default 20,000; USERS users,
# default 500) and a Box enterprise (USERS users, its files and collaborations).
#   1. Okta's System Log alone: the database file (with its WAL) against the events' own JSON texts.
#   2. Then every stream of both (users, groups, memberships, privileges, grants, files, permissions, events):
#      the whole database against the JSON of every row stored (raw: byte for byte what was sent).
#   3. The same database compacted (VACUUM INTO), with its raw compressed and decompressed (the store as it
#      was before compression), and the CPU time (user + sys) of `cachost query` reading raw (written
#      json_extract(unzstd(raw), ...) and json_extract(raw, ...)) and of policy tests replaying the stored
#      rows, on each; then what the readers' views of raw cost (bench/raw_views.lua).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
bin=${1:-$here/../build/cachost}
events=${2:-${STORAGE_BENCH_EVENTS:-20000}}
users=${3:-${STORAGE_BENCH_USERS:-500}}
tmp=$(mktemp -d)
"$bin" sandbox okta:bench box:bench --size "$users" --events "$events" --rate-limit 100000000 >"$tmp/tenants" 2>"$tmp/sandbox.log" &
spid=$!
trap 'kill $spid 2>/dev/null; wait $spid 2>/dev/null; rm -rf "$tmp"' EXIT INT TERM
i=0; while [ "$(cat "$tmp/tenants" 2>/dev/null | wc -l)" -lt 2 ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
export CACHOST_HOME="$tmp/home" CACHOST_MASTER_KEY=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
# the `cachost instance add` lines the sandbox prints (secrets in the environment, never argv)
sed -n 's/^  \(CACHOST_SET_[A-Z_]*=[^ ]*\) cachost \(.*\)$/\1 "$bin" \2/p' "$tmp/sandbox.log" >"$tmp/add.sh"
bin="$bin" sh -eu "$tmp/add.sh" </dev/null >/dev/null
"$bin" instance edit bench-okta --set initial_days=30 >/dev/null

size() { echo $(( $(stat -c %s "$1/cachost.db") + $(stat -c %s "$1/cachost.db-wal" 2>/dev/null || echo 0) )); }
raw_sum() {   # SQL summing the JSON bytes of the entity tables' raw
  s=""; for t in users groups group_members privileges files file_permissions app_grants activities; do
    s="$s${s:+ + }(SELECT coalesce(sum(length(CAST(unzstd(raw) AS BLOB))), 0) FROM $t)"; done; echo "SELECT $s AS raw"; }

"$bin" sync bench-okta --stream activities --no-policies >/dev/null
out=$("$bin" query "SELECT count(*) AS n, sum(length(CAST(unzstd(raw) AS BLOB))) AS raw FROM activities" --format csv | tail -n 1)
echo "$out" | awk -F, -v db="$(size "$CACHOST_HOME")" '{
  printf "storage (events): %d Okta events, database %.1f MB = %d B per event   floor: raw JSON received %.1f MB = %d B per event   ratio %.2f (target 0.50)\n",
    $1, db / 1048576, db / $1, $2 / 1048576, $2 / $1, db / $2 }'

"$bin" sync bench-okta --no-policies >/dev/null
"$bin" sync bench-box --no-policies >/dev/null
rows=$("$bin" query "SELECT (SELECT count(*) FROM users) || ' users, ' || (SELECT count(*) FROM groups) || ' groups, ' || (SELECT count(*) FROM files) || ' files, ' || (SELECT count(*) FROM file_permissions) || ' permissions, ' || (SELECT count(*) FROM activities) || ' events' AS n" --format csv | tail -n 1)
raw=$("$bin" query "$(raw_sum)" --format csv | tail -n 1)
db=$(size "$CACHOST_HOME")
awk -v db="$db" -v raw="$raw" -v rows="$rows" 'BEGIN {
  printf "storage (whole database): %s; database %.1f MB   floor: raw JSON received %.1f MB   ratio %.2f (target 0.50)\n",
    rows, db / 1048576, raw / 1048576, db / raw }'
"$bin" query "SELECT t AS \"table\", n AS rows, json AS json_bytes, stored AS stored_raw_bytes, round(1.0 * stored / json, 2) AS raw_ratio FROM (
  $(for t in users groups group_members privileges files file_permissions app_grants activities; do
    echo "SELECT '$t' AS t, count(*) AS n, coalesce(sum(length(CAST(unzstd(raw) AS BLOB))), 0) AS json, coalesce(sum(length(CAST(raw AS BLOB))), 0) AS stored FROM main.$t UNION ALL"; done)
  SELECT NULL, 0, 0, 0) WHERE n > 0"

# compacted copies: compressed (z) and with raw decompressed (p: the store before compression)
mkdir -p "$tmp/z" "$tmp/p"
"$bin" script "$here/storage.lua" "$CACHOST_HOME/cachost.db" "$tmp/z/cachost.db" "$tmp/p/cachost.db" >/dev/null
zs=$(size "$tmp/z"); ps=$(size "$tmp/p")
awk -v z="$zs" -v p="$ps" -v raw="$raw" 'BEGIN {
  printf "storage (compacted): compressed raw %.1f MB = %.2fx, plain raw (before) %.1f MB = %.2fx the raw JSON\n",
    z / 1048576, z / raw, p / 1048576, p / raw }'

cpu() {   # CPU seconds (user + sys) of N runs of a cachost command on home $1
  home=$1; n=$2; shift 2
  /usr/bin/time -f "%U %S" -o "$tmp/time" sh -c 'i=0; while [ $i -lt "$0" ]; do "$@" >/dev/null || exit 1; i=$((i + 1)); done' "$n" "$@" \
    </dev/null 2>/dev/null
  awk '{ printf "%.3f", $1 + $2 }' "$tmp/time"
}
q_inventory="SELECT count(*) AS n, count(json_extract(unzstd(raw), '\$.id')) AS ids FROM (SELECT raw FROM users UNION ALL SELECT raw FROM groups
  UNION ALL SELECT raw FROM group_members UNION ALL SELECT raw FROM privileges UNION ALL SELECT raw FROM app_grants
  UNION ALL SELECT raw FROM files UNION ALL SELECT raw FROM file_permissions)"
q_users="SELECT count(*) AS n FROM users WHERE json_extract(unzstd(raw), '\$.status') = 'ACTIVE' OR json_extract(unzstd(raw), '\$.status') IS NULL"
q_files="SELECT json_extract(unzstd(raw), '\$.owned_by.login') AS owner, count(*) AS n FROM files GROUP BY 1 ORDER BY 2 DESC LIMIT 3"
q_events="SELECT json_extract(unzstd(raw), '\$.eventType') AS t, count(*) AS n FROM activities GROUP BY 1 ORDER BY 2 DESC LIMIT 3"
failed=0
for what in inventory users files events; do
  eval "q=\$q_$what"
  CACHOST_HOME="$tmp/z" "$bin" query "$q" --format csv >"$tmp/z.out"
  CACHOST_HOME="$tmp/p" "$bin" query "$q" --format csv >"$tmp/p.out"
  cmp -s "$tmp/z.out" "$tmp/p.out" || { echo "storage: query over $what answers differently compressed and plain" >&2; exit 1; }
  zt=$(CACHOST_HOME="$tmp/z" cpu "$tmp/z" 10 "$bin" query "$q"); pt=$(CACHOST_HOME="$tmp/p" cpu "$tmp/p" 10 "$bin" query "$q")
  echo "storage (query json_extract(unzstd(raw)) over $what raw, 10 runs, CPU user+sys): compressed ${zt} s   floor: plain ${pt} s"
  # the same query as a user writes it, json_extract(raw, ...): raw reads as its JSON text in readers' SQL
  q=$(printf '%s' "$q" | sed 's/unzstd(raw)/raw/g')
  CACHOST_HOME="$tmp/z" "$bin" query "$q" --format csv >"$tmp/z.out" 2>&1 || true
  CACHOST_HOME="$tmp/p" "$bin" query "$q" --format csv >"$tmp/p.out"
  if cmp -s "$tmp/z.out" "$tmp/p.out"; then
    zt=$(CACHOST_HOME="$tmp/z" cpu "$tmp/z" 10 "$bin" query "$q"); pt=$(CACHOST_HOME="$tmp/p" cpu "$tmp/p" 10 "$bin" query "$q")
    echo "storage (query json_extract(raw) over $what raw, 10 runs, CPU user+sys): compressed ${zt} s   floor: plain ${pt} s"
  else
    echo "storage: json_extract(raw) over $what answers differently compressed and plain" >&2; failed=1
  fi
done
for pol in offboarding sensitive_file_shared bruteforce; do
  zt=$(CACHOST_HOME="$tmp/z" cpu "$tmp/z" 3 "$bin" policy test "$pol" --since 3650); pt=$(CACHOST_HOME="$tmp/p" cpu "$tmp/p" 3 "$bin" policy test "$pol" --since 3650)
  echo "storage (policy test $pol over the stored rows, 3 runs, CPU user+sys): compressed ${zt} s   floor: plain ${pt} s"
done
# the readers' views of raw (raw reads as its JSON text): their cost, in one process, beside none
"$bin" script "$here/raw_views.lua" "$tmp/z/cachost.db" 20 | sed 's/^/storage (/; s/: /): /'
echo "storage: load average $(cut -d' ' -f1-3 /proc/loadavg)"
exit $failed
