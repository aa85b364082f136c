#!/bin/sh
# tests/pg.sh start DIR | stop DIR — a throwaway PostgreSQL server for the tests, in DIR (created): its
# data directory and its unix socket, no TCP port (nothing to collide with other test runs).  `start`
# prints the URL to connect with (database postgres, user postgres, no password: trust on the socket
# only).  initdb refuses to run as root: as root the server runs as the `postgres` user (or `nobody`),
# which owns DIR.
set -e
cmd=$1; dir=$2
[ -n "$dir" ] || { echo "usage: tests/pg.sh start|stop DIR" >&2; exit 2; }
bin=$(pg_config --bindir 2>/dev/null || true)
[ -x "$bin/initdb" ] || bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -x "$bin/initdb" ] || { echo "tests/pg.sh: no initdb (apt-get install postgresql)" >&2; exit 1; }
as=""
if [ "$(id -u)" = 0 ]; then
  user=postgres; id postgres >/dev/null 2>&1 || user=nobody
  as="runuser -u $user --"
fi
case $cmd in
start)
  mkdir -p "$dir"
  # the server's user must reach DIR: its parent (a 0700 mktemp -d) becomes traversable, no more
  [ -z "$as" ] || { chown "$user" "$dir"; chmod o+x "$(dirname "$dir")"; }
  chmod 700 "$dir"
  $as "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --no-locale --no-sync >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; exit 1; }
  # fsync off: a test server's data need not survive a crash of the machine
  $as "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -s \
    -o "-c listen_addresses='' -k $dir -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" start \
    || { cat "$dir/server.log" >&2; exit 1; }
  echo "postgresql:///postgres?host=$dir&user=postgres"
  ;;
stop)
  [ -d "$dir/data" ] && $as "$bin/pg_ctl" -D "$dir/data" -m immediate -w -s stop >/dev/null 2>&1 || true
  ;;
*) echo "usage: tests/pg.sh start|stop DIR" >&2; exit 2 ;;
esac
