#!/bin/sh
# bench/dlp.sh [MB] — scanning MB (default 1024) of text files with every DLP detector, next to
# grep -E over the same files with a card|ssn|akia regex, measured in the same run.
# DLP_PROFILE=1 also prints MB/s per detector alone over one 16 MiB file: pure Lua passes, then regex.
set -e
MB=${1:-1024}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${CACHOST_BIN:-$ROOT/cachost}
DIR=$(mktemp -d)
trap 'rm -rf "$DIR"' EXIT
mkdir -p "$DIR/files"
# 8 distinct seeded 16 MiB files of words, numbers and some seeded secrets, copied up to MB
python3 - "$DIR/files" <<'PY'
import random, sys
out = sys.argv[1]
words = ("lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor invoice total order "
         "customer account number phone date 2024-05-17 ref 99812 qty 3 EUR USD").split()
secrets = ["4111 1111 1111 1111", "5555555555554444", "536-22-1234", "AKIAIOSFODNN7EXAMPLE",
           "GB82 WEST 1234 5698 7654 32", "4111111111111112", "666-12-3456"]
for n in range(8):
    rnd = random.Random(n)
    parts, size = [], 0
    while size < 16 << 20:
        line = " ".join(rnd.choice(words) for _ in range(12))
        if rnd.random() < 0.01: line += " " + rnd.choice(secrets)
        if rnd.random() < 0.2: line += " %d" % rnd.randrange(10**9)
        parts.append(line); size += len(line) + 1
    with open("%s/part%d.txt" % (out, n), "w") as f: f.write("\n".join(parts) + "\n")
PY
i=0; total=$((8 * 16)); n=8
while [ "$total" -lt "$MB" ]; do
  cp "$DIR/files/part$((i % 8)).txt" "$DIR/files/copy$i.txt"; i=$((i + 1)); total=$((total + 16))
done
sync
bytes=$(du -sb "$DIR/files" | cut -f1)
cat "$DIR/files"/* > /dev/null   # warm the page cache for both
out=$("$BIN" script "$ROOT/bench/dlp.lua" "$DIR/files" ${DLP_PROFILE:+--profile})
secs=$(echo "$out" | awk '/^dlp_seconds/ {print $2}')
t0=$(date +%s.%N)
LC_ALL=C grep -E -c -r '[0-9]{4}[ -]?[0-9]{4}[ -]?[0-9]{4}[ -]?[0-9]{1,7}|[0-9]{3}-[0-9]{2}-[0-9]{4}|A[KS]IA[A-Z0-9]{16}' \
  "$DIR/files" > "$DIR/grep.out" || true   # not /dev/null: GNU grep then stops at the first match
t1=$(date +%s.%N)
gsecs=$(awk -v a="$t0" -v b="$t1" 'BEGIN {print b - a}')
echo "$out" | grep '^dlp_count' | sed 's/^dlp_count /dlp: found /' | tr '\n' ' '; echo
[ -n "$DLP_PROFILE" ] && echo "$out" | awk '/^dlp_profile/ { if (!h++) printf "dlp: %-16s %10s %10s\n", "detector alone", "Lua MB/s", "regex MB/s"; printf "dlp: %-16s %10s %10s\n", $2, $3, $4 }'
awk -v b="$bytes" -v s="$secs" -v g="$gsecs" 'BEGIN {
  printf "dlp: scan %.0f MB, all detectors %8.1f MB/s (%.2f s)   floor: grep -E card|ssn|akia %8.1f MB/s (%.2f s)   ratio %.1fx\n",
    b / 1048576, b / 1048576 / s, s, b / 1048576 / g, g, s / g }'
