#!/bin/sh
# tests/run.sh BUILD — runs every test (cmocka units, busted specs inside the host, end-to-end specs)
# and ends with one line: "N passed, N failed".
BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 1
export CACHOST_BIN="$ROOT/$BUILD/cachost"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
passed=0; failed=0
: >"$TMP/figures"

for t in "$BUILD"/tests/test_*; do
  [ -x "$t" ] || continue
  echo "== $t"
  "$t" >"$TMP/out" 2>&1; rc=$?
  cat "$TMP/out"
  p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$TMP/out" | awk '{s+=$1} END {print s+0}')
  f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$TMP/out" | awk '{s+=$1} END {print s+0}')
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; echo "!! $t exited $rc"; fi
  passed=$((passed + p)); failed=$((failed + f))
done

for suite in tests/spec tests/e2e; do
  [ -d "$suite" ] || continue
  echo "== $suite"
  CACHOST_HOME="$TMP/home-$(basename $suite)" "$CACHOST_BIN" test -o TAP "$suite" >"$TMP/out" 2>&1; rc=$?
  cat "$TMP/out"
  grep '^# figure: ' "$TMP/out" >>"$TMP/figures"
  p=$(grep -c '^ok ' "$TMP/out")
  f=$(grep -c '^not ok ' "$TMP/out")
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; echo "!! $suite exited $rc"; fi
  passed=$((passed + p)); failed=$((failed + f))
done

# Figures of the robustness suites (kills, faults, attacks, fuzzing): a spec prints "# figure: ..." lines.
if [ -s "$TMP/figures" ]; then echo "== figures"; sed 's/^# figure: //' "$TMP/figures"; fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
