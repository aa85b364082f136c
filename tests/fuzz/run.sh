#!/bin/sh
# tests/fuzz/run.sh DIR [libFuzzer options...] — runs every harness DIR/fuzz_<target> (built by make
# fuzz-build) over its seeds, tests/fuzz/corpus/<target>/, with the options given (e.g. -runs=10000000 or
# -max_total_time=3), tests/fuzz/<target>.dict when there is one, and the target's own options from
# tests/fuzz/<target>.options (or <prefix>.options: webhook.options for webhook_box).  New inputs go to DIR/corpus/<target>/, a crashing one to DIR/crashes/.
# Prints per target: executions, exec/s, crashes, corpus size; then one line
# "# figure: fuzz: N targets, M executions, K crashes" and exits 1 if any target crashed.
# FUZZ_ONLY="json iso8601" runs just those; FUZZ_CORPUS=DIR puts new inputs there instead (make test: a
# temporary directory, so each smoke run starts from the committed seeds).
DIR=${1:?usage: tests/fuzz/run.sh DIR [libFuzzer options...]}
shift
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 1
mkdir -p "$DIR/crashes" "$DIR/logs"
targets=0; total=0; crashes=0
for bin in "$DIR"/fuzz_*; do
  [ -x "$bin" ] || continue
  t=${bin##*/fuzz_}
  if [ -n "$FUZZ_ONLY" ]; then case " $FUZZ_ONLY " in *" $t "*) ;; *) continue ;; esac; fi
  corpus=${FUZZ_CORPUS:-$DIR/corpus}/$t
  mkdir -p "$corpus"
  dict=""; [ -f "tests/fuzz/$t.dict" ] && dict="-dict=tests/fuzz/$t.dict"
  o="tests/fuzz/$t.options"; [ -f "$o" ] || o="tests/fuzz/${t%%_*}.options"   # webhook_box: webhook.options
  opts=""; [ -f "$o" ] && opts=$(grep -v '^#' "$o")
  log="$DIR/logs/$t.log"
  # shellcheck disable=SC2086  # options are words
  ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1} \
    "$bin" -print_final_stats=1 -artifact_prefix="$DIR/crashes/$t-" $dict $opts "$@" \
    "$corpus" "tests/fuzz/corpus/$t" >"$log" 2>&1
  rc=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  corp=$(sed -n 's/.* corp: \([0-9]*\/[0-9A-Za-z]*\).*/\1/p' "$log" | tail -1)
  c=0
  if [ "$rc" -ne 0 ] || [ -z "$runs" ]; then
    c=1
    echo "!! fuzz $t: exit $rc (log: $log)"
    grep -E '^(fuzz: |==[0-9]+==ERROR|SUMMARY|.*runtime error|artifact_prefix|Test unit written)' "$log" | head -20
  fi
  printf 'fuzz %-16s %10s executions %8s exec/s  %d crashes  corpus %s\n' "$t" "${runs:-0}" "${rate:-0}" "$c" "${corp:-?}"
  targets=$((targets + 1)); total=$((total + ${runs:-0})); crashes=$((crashes + c))
done
echo "# figure: fuzz: $targets targets, $total executions, $crashes crashes"
[ "$crashes" -eq 0 ]
