#!/bin/sh
# tests/run.sh BUILD — runs every test (cmocka units, busted specs inside the host, end-to-end specs)
# and ends with one line: "N passed, N failed".
BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 1
export CACHOST_BIN="$ROOT/$BUILD/cachost"
TMP=$(mktemp -d)
trap 'tests/pg.sh stop "$TMP/pg"; rm -rf "$TMP"' EXIT
# One PostgreSQL server for the whole run (tests/pg.sh): the specs of the PostgreSQL store and of the
# workers take a database each on it (tests/pgtest.lua).  Not started: those specs fail, saying why.
if tests/pg.sh start "$TMP/pg" >"$TMP/pg.url" 2>"$TMP/pg.err"; then
  CACHOST_TEST_PG=$(cat "$TMP/pg.url"); export CACHOST_TEST_PG
else
  echo "!! PostgreSQL did not start:"; cat "$TMP/pg.err"
fi
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

# Fuzz smoke (make test sets CACHOST_FUZZ to the built harnesses): each libFuzzer target for a few seconds;
# a target that crashes is a failure, the others a pass.  The long campaign is `make fuzz`.
if [ -n "$CACHOST_FUZZ" ]; then
  echo "== fuzz smoke ($CACHOST_FUZZ)"
  # the same run every time (a fixed seed, the committed seeds only): what it finds, it finds at once
  FUZZ_CORPUS="$TMP/fuzz-corpus" tests/fuzz/run.sh "$CACHOST_FUZZ" -seed=1 -max_total_time="${FUZZ_SMOKE_SECONDS:-3}" \
    >"$TMP/out" 2>&1; rc=$?
  cat "$TMP/out"
  sed -n 's/^# figure: fuzz: /# figure: fuzz smoke: /p' "$TMP/out" >>"$TMP/figures"
  n=$(sed -n 's/^# figure: fuzz: \([0-9]*\) targets.*/\1/p' "$TMP/out")
  f=$(sed -n 's/^# figure: fuzz: .* \([0-9]*\) crashes$/\1/p' "$TMP/out")
  if [ -z "$n" ] || [ -z "$f" ]; then n=1; f=1; echo "!! fuzz smoke did not finish (exit $rc)"; fi
  passed=$((passed + n - f)); failed=$((failed + f))
fi

# Figures of the robustness suites (kills, faults, attacks, fuzzing): a spec prints "# figure: ..." lines.
if [ -s "$TMP/figures" ]; then echo "== figures"; sed 's/^# figure: //' "$TMP/figures"; fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
