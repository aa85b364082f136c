#!/bin/sh
# bench/http.sh [BINARY] — 10,000 GETs to a loopback server, 64 in flight: cachost's http.request from
# one Lua script versus `curl --parallel --parallel-max 64` over the same URLs, in the same run.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
bin=${1:-$here/../cachost}
n=${HTTP_BENCH_N:-10000}
par=${HTTP_BENCH_PARALLEL:-64}
tmp=$(mktemp -d)
"$bin" script "$here/http_server.lua" >"$tmp/port" 2>"$tmp/server.err" &
spid=$!
trap 'kill $spid 2>/dev/null; wait $spid 2>/dev/null; rm -rf "$tmp"' EXIT INT TERM
i=0; while [ ! -s "$tmp/port" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
port=$(head -n1 "$tmp/port")
[ -n "$port" ] || { echo "http bench: server did not start" >&2; cat "$tmp/server.err" >&2; exit 1; }
seq 1 "$n" | sed "s|.*|http://127.0.0.1:$port/item/&|" >"$tmp/urls"
sed 's|.*|url = "&"\noutput = "/dev/null"|' "$tmp/urls" >"$tmp/curl.conf"
# warm-up, so neither side pays for the server's first accepts
curl -s -o /dev/null "http://127.0.0.1:$port/item/0"
# Alternate the two clients ROUNDS times and keep each one's best: the machine may be busy.  CPU time
# (user+sys, via /usr/bin/time when installed) is printed too: it is less sensitive to a busy machine.
rounds=${HTTP_BENCH_ROUNDS:-5}
timer=""; [ -x /usr/bin/time ] && timer="/usr/bin/time -f %U+%S -o $tmp/cpu"
calc() { awk "BEGIN { print $1 }"; }     # awk, not bc: always there on Debian
cpu() { if [ -n "$timer" ]; then calc "$(cat "$tmp/cpu")"; else echo 0; fi; }
best_curl=999999; best_ours=999999; cpu_curl=999999; cpu_ours=999999
min() { awk "BEGIN { a = $1; b = $2; print (a < b) ? a : b }"; }
r=0
while [ $r -lt "$rounds" ]; do
  t0=$(date +%s.%N)
  $timer curl -s --no-progress-meter --fail --parallel --parallel-max "$par" --config "$tmp/curl.conf" 2>"$tmp/curl.err" || { cat "$tmp/curl.err" >&2; exit 1; }
  t1=$(date +%s.%N)
  cpu_curl=$(min "$(cpu)" "$cpu_curl")
  # the whole process for both sides (start-up and reading the URL list included)
  $timer "$bin" script "$here/http.lua" "$tmp/urls" "$par" >"$tmp/ours.out" || { cat "$tmp/ours.out" >&2; exit 1; }
  t2=$(date +%s.%N)
  cpu_ours=$(min "$(cpu)" "$cpu_ours")
  best_curl=$(min "$t1 - $t0" "$best_curl")
  best_ours=$(min "$t2 - $t1" "$best_ours")
  r=$((r + 1))
done
printf 'curl --parallel --parallel-max %d: %d GETs in %.3f s = %.0f req/s (best of %d)\n' "$par" "$n" "$best_curl" "$(calc "$n / $best_curl")" "$rounds"
printf 'cachost http.request, %d tasks:  %d GETs in %.3f s = %.0f req/s (best of %d)\n' "$par" "$n" "$best_ours" "$(calc "$n / $best_ours")" "$rounds"
[ -n "$timer" ] && printf 'client CPU (user+sys, best): curl %.2f s, cachost %.2f s\n' "$cpu_curl" "$cpu_ours"
printf 'http: cachost/curl throughput = %.2fx (floor 0.80x)\n' "$(calc "$best_curl / $best_ours")"
