#!/bin/sh
# bench/workers.sh [BINARY] [N] — N instances (default 200) synced whole: by one process on SQLite, then
# by 1, 2 and 3 `cachost run` workers sharing a PostgreSQL store (a throwaway server, tests/pg.sh).  The
# instances are spread over three sandbox tenant processes, the same for every run.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
bin=${1:-$here/../build/cachost}
n=${2:-200}
tmp=$(mktemp -d)
pids=""
trap 'for p in $pids; do kill $p 2>/dev/null; done; "$here/../tests/pg.sh" stop "$tmp/pg"; rm -rf "$tmp"' EXIT INT TERM
urls=""
for k in 1 2 3; do
  "$bin" sandbox okta --size 20 --events 400 --rate-limit 1000000 --seed $k >"$tmp/tenants$k" 2>"$tmp/sandbox$k.log" &
  pids="$pids $!"
done
for k in 1 2 3; do
  i=0; while [ ! -s "$tmp/tenants$k" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
  urls="$urls $(awk '{print $3}' "$tmp/tenants$k")"
done
export CACHOST_MASTER_KEY=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
url=$("$here/../tests/pg.sh" start "$tmp/pg")
for w in 0 1 2 3; do
  home="$tmp/home$w"; mkdir -p "$home"
  if [ $w = 0 ]; then
    CACHOST_HOME="$home" "$bin" script "$here/workers.lua" sqlite "$n" "$bin" $urls
  else
    db="w$w"
    "$bin" script /dev/stdin <<EOS
local db = assert(pg.open("$url")); assert(db:exec("CREATE DATABASE $db"))
EOS
    CACHOST_HOME="$home" CACHOST_STORE="$(echo "$url" | sed "s|:///postgres|:///$db|")" \
      "$bin" script "$here/workers.lua" "$w" "$n" "$bin" $urls
  fi
done
