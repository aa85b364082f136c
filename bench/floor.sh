# bench/floor.sh — sourced by the sync benches: the sqlite3 half of their floor.
# floor_import DB FILES_PREFIX N "COLUMNS" ID_PATH PATH... imports the JSON arrays saved in
# FILES_PREFIX1.json .. FILES_PREFIXN.json (each whole, or the array at FLOOR_ROOT in each: '$.value') into
# an activities table of DB, one row per element: ext_id from ID_PATH, then one column per PATH
# (json_extract), then the element itself as raw; then removes the files.
floor_import() {
  db=$1 prefix=$2 count=$3 cols=$4
  shift 4
  idp=$1
  shift
  sel="json_extract(value, '$idp')"
  for p in "$@"; do sel="$sel, json_extract(value, '$p')"; done
  {
    echo "CREATE TABLE IF NOT EXISTS activities (ext_id TEXT PRIMARY KEY, $cols, raw TEXT);"
    echo "BEGIN;"
    i=1; while [ "$i" -le "$count" ]; do
      echo "INSERT OR IGNORE INTO activities SELECT $sel, value FROM json_each(readfile('$prefix$i.json'), '${FLOOR_ROOT:-\$}');"
      i=$((i + 1))
    done
    echo "COMMIT;"
  } >"$db.sql"
  ${FLOOR_TIMER:-} sqlite3 "$db" <"$db.sql"     # FLOOR_TIMER: e.g. /usr/bin/time, for the CPU of the import
  rm -f "$prefix"*.json
}
