/* test_sqlite.c — the sqlite module (host/sqlite.c) driven from Lua: binding, rows, cursors and their
 * finalization, the statement cache, exec_many, read-only connections, and the error tokens (busy,
 * constraint, notadb, closed handles, symlinks refused). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "host.h"

int luaopen_sqlite(lua_State *L);

static char dir[256];

static const char *prelude =
    "function eq(a, b, what) if a ~= b then error((what or '') .. ': expected ' .. tostring(b) .. ', got ' .. "
    "tostring(a), 2) end end\n"
    "function has(s, pat, what) if not tostring(s):find(pat) then error((what or '') .. ': '"
    " .. tostring(s) .. ' lacks ' .. pat, 2) end end\n";

static int setup(void **state) {
    snprintf(dir, sizeof dir, "/tmp/test_sqlite.XXXXXX");
    if (!mkdtemp(dir)) return -1;
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    luaL_requiref(L, "sqlite", luaopen_sqlite, 1);
    lua_pop(L, 1);
    lua_pushstring(L, dir);
    lua_setglobal(L, "DIR");
    if (luaL_dostring(L, prelude) != LUA_OK) return -1;
    *state = L;
    return 0;
}

static int teardown(void **state) {
    lua_close(*state);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void run(lua_State *L, const char *code) {
    if (luaL_dostring(L, code) != LUA_OK) fail_msg("%s", lua_tostring(L, -1));
}

static void test_types_and_params(void **state) {
    run(*state,
        "local db = assert(sqlite.open(DIR .. '/a.db'))\n"
        "assert(db:exec('CREATE TABLE t(a, b, c, d, e, f)'))\n"
        "assert(db:exec('INSERT INTO t VALUES(?,?,?,?,?,?)', 42, 1.5, 'x\\0y', true, nil, sqlite.blob('\\1\\2')))\n"
        "eq(db:changes(), 1, 'changes')\n"
        "eq(db:last_insert_rowid(), 1, 'rowid')\n"
        "local r = assert(db:query('SELECT a, b, c, d, e, typeof(f) AS tf, f FROM t'))\n"
        "eq(#r, 1, 'rows'); r = r[1]\n"
        "eq(math.type(r.a), 'integer', 'int'); eq(r.a, 42); eq(r.b, 1.5); eq(r.c, 'x\\0y', 'embedded NUL')\n"
        "eq(r.d, 1, 'bool'); eq(r.e, nil, 'NULL'); eq(r.tf, 'blob'); eq(r.f, '\\1\\2')\n"
        "-- named parameters from one table\n"
        "assert(db:exec('INSERT INTO t(a, b) VALUES(:x, @y)', {x = 7, y = 'why'}))\n"
        "eq(db:query('SELECT b FROM t WHERE a = $a', {a = 7})[1].b, 'why', 'named')\n"
        "-- misuse raises\n"
        "local ok, err = pcall(db.exec, db, 'INSERT INTO t(a) VALUES(?)')\n"
        "assert(not ok); has(err, 'too few parameters')\n"
        "ok, err = pcall(db.exec, db, 'INSERT INTO t(a) VALUES(?)', {})\n"
        "assert(not ok)\n"
        "ok, err = pcall(db.query, db, 'SELECT 1; SELECT 2')\n"
        "assert(not ok); has(err, 'more than one statement')\n"
        "-- several statements without parameters\n"
        "assert(db:exec('CREATE TABLE u(x); INSERT INTO u VALUES(1); INSERT INTO u VALUES(2);'))\n"
        "eq(db:query('SELECT count(*) AS n FROM u')[1].n, 2, 'multi')\n"
        "-- pragmas of a rw connection\n"
        "eq(db:query('PRAGMA journal_mode')[1].journal_mode, 'wal', 'wal')\n"
        "eq(db:query('PRAGMA foreign_keys')[1].foreign_keys, 1, 'fk')\n"
        "eq(db:query('PRAGMA synchronous')[1].synchronous, 1, 'NORMAL')\n"
        "db:close(); db:close()\n"
        "ok, err = pcall(db.query, db, 'SELECT 1')\n"
        "assert(not ok); has(err, 'closed')\n");
}

static void test_errors(void **state) {
    run(*state,
        "local db = assert(sqlite.open(DIR .. '/b.db'))\n"
        "local ok, err = db:exec('SELEC 1')\n"
        "eq(ok, nil); has(err, '^sqlite: .*syntax error')\n"
        "assert(db:exec('CREATE TABLE k(id INTEGER PRIMARY KEY, v TEXT NOT NULL)'))\n"
        "ok, err = db:exec('INSERT INTO k(v) VALUES(?)', nil)\n"
        "eq(ok, nil); has(err, '^constraint: ')\n"
        "-- a second writer waits busy_timeout, then gets busy:\n"
        "local other = assert(sqlite.open(DIR .. '/b.db', {busy_timeout = 50}))\n"
        "assert(db:exec('BEGIN IMMEDIATE'))\n"
        "ok, err = other:exec('BEGIN IMMEDIATE')\n"
        "eq(ok, nil); has(err, '^busy: ')\n"
        "assert(db:exec('COMMIT'))\n"
        "assert(other:exec('BEGIN IMMEDIATE')); assert(other:exec('ROLLBACK'))\n"
        "other:close(); db:close()\n"
        "-- a foreign file is refused and left untouched\n"
        "local f = io.open(DIR .. '/notes.txt', 'wb'); f:write(('not a database\\n'):rep(300)); f:close()\n"
        "local db2, e2 = sqlite.open(DIR .. '/notes.txt')\n"
        "eq(db2, nil); has(e2, '^notadb: ')\n"
        "f = io.open(DIR .. '/notes.txt', 'rb'); local s = f:read('a'); f:close()\n"
        "eq(s, ('not a database\\n'):rep(300), 'foreign file intact')\n"
        "-- a symlink is not followed\n"
        "os.execute('ln -s ' .. DIR .. '/b.db ' .. DIR .. '/link.db')\n"
        "local db3, e3 = sqlite.open(DIR .. '/link.db')\n"
        "eq(db3, nil, 'symlink refused'); has(e3, 'cantopen')\n"
        "-- a missing file with create=false\n"
        "local db4, e4 = sqlite.open(DIR .. '/missing.db', {create = false})\n"
        "eq(db4, nil); has(e4, '^cantopen: ')\n");
}

static void test_rows_and_cursors(void **state) {
    run(*state,
        "local db = assert(sqlite.open(DIR .. '/c.db'))\n"
        "assert(db:exec('CREATE TABLE n(i INTEGER, s TEXT)'))\n"
        "assert(db:exec('BEGIN'))\n"
        "for i = 1, 1000 do assert(db:exec('INSERT INTO n VALUES(?, ?)', i, i % 2 == 0 and 'even' or nil)) end\n"
        "assert(db:exec('COMMIT'))\n"
        "local sum, n = 0, 0\n"
        "for r in db:rows('SELECT i, s FROM n WHERE i > ?', 10) do sum = sum + r.i; n = n + 1 end\n"
        "eq(n, 990); eq(sum, 500500 - 55)\n"
        "-- break finalizes the statement at once (the loop's to-be-closed value)\n"
        "local f, s, _, cur = db:rows('SELECT i FROM n')\n"
        "for r in f, s, nil, cur do break end\n"
        "eq(tostring(cur), 'sqlite.cursor (closed)', 'closed on break')\n"
        "-- an error inside the loop finalizes too\n"
        "f, s, _, cur = db:rows('SELECT i FROM n')\n"
        "local ok = pcall(function() for r in f, s, nil, cur do error('boom') end end)\n"
        "assert(not ok); eq(tostring(cur), 'sqlite.cursor (closed)', 'closed on error')\n"
        "-- a SQL error raises from db:rows (like io.lines), cursor() returns nil, err\n"
        "ok = pcall(db.rows, db, 'SELECT nope FROM n')\n"
        "assert(not ok)\n"
        "local c, err = db:cursor('SELECT nope FROM n'); eq(c, nil); has(err, 'no such column')\n"
        "-- cursor API: columns, array rows with NULL holes, end closes\n"
        "c = assert(db:cursor('SELECT i, s, i * 2 AS d FROM n WHERE i <= 2 ORDER BY i'))\n"
        "local cols = c:columns(); eq(#cols, 3); eq(cols[3], 'd')\n"
        "local a = c:next(true); eq(a[1], 1); eq(a[2], nil); eq(a[3], 2)\n"
        "local b = c:next(); eq(b.s, 'even'); eq(b.d, 4)\n"
        "eq(c:next(), nil); eq(tostring(c), 'sqlite.cursor (closed)')\n"
        "-- closing the db finalizes open cursors\n"
        "c = assert(db:cursor('SELECT i FROM n'))\n"
        "assert(c:next())\n"
        "db:close()\n"
        "eq(tostring(c), 'sqlite.cursor (closed)', 'closed with db'); eq(c:next(), nil)\n");
}

static void test_cache_and_exec_many(void **state) {
    run(*state,
        "local db = assert(sqlite.open(DIR .. '/d.db'))\n"
        "assert(db:exec('CREATE TABLE a(inst INTEGER, ext_id TEXT, v TEXT, seen TEXT, UNIQUE(inst, ext_id))'))\n"
        "-- more distinct statements than the cache holds, then reuse the first ones\n"
        "for round = 1, 2 do for i = 1, 150 do\n"
        "  eq(db:query('SELECT ' .. i .. ' AS x, ? AS y', round)[1].y, round)\n"
        "end end\n"
        "local rows = {}\n"
        "for i = 1, 500 do rows[i] = {ext_id = 'e' .. i, v = (i % 3 == 0) and 'x' or nil} end\n"
        "local seen = {}; for i = 1, 500 do seen[i] = 't' .. i end\n"
        "local sql = 'INSERT INTO a(inst, ext_id, v, seen) VALUES(?,?,?,?) ON CONFLICT(inst, ext_id) DO NOTHING'\n"
        "local spec = {{value = 3}, 'ext_id', 'v', {list = seen}}\n"
        "assert(db:exec('BEGIN'))\n"
        "local res = assert(db:exec_many(sql, rows, spec))\n"
        "assert(db:exec('COMMIT'))\n"
        "eq(#res, 500); eq(res[1], 1); eq(res[500], 1)\n"
        "eq(db:query('SELECT count(*) AS n FROM a WHERE inst = 3 AND v = ?', 'x')[1].n, 166)\n"
        "eq(db:query('SELECT seen FROM a WHERE ext_id = ?', 'e42')[1].seen, 't42')\n"
        "-- the same rows again change nothing\n"
        "rows[501] = {ext_id = 'new'}; seen[501] = 'tn'\n"
        "res = assert(db:exec_many(sql, rows, spec))\n"
        "eq(res[1], 0); eq(res[500], 0); eq(res[501], 1)\n"
        "eq(db:query('SELECT count(*) AS n FROM a')[1].n, 501)\n"
        "-- a failing row reports its index\n"
        "local ok, err, token, at = db:exec_many('INSERT INTO a(inst, ext_id, v, seen) VALUES(?,?,?,?)', rows, spec)\n"
        "eq(ok, nil); has(err, '^constraint: '); eq(token, 'constraint'); eq(at, 1)\n"
        "local e = select(2, pcall(db.exec_many, db, sql, {{ext_id = {}}}, spec)); has(e, 'column ext_id')\n"
        "e = select(2, pcall(db.exec_many, db, sql, rows, {'ext_id'})); has(e, 'exactly 1 parameters')\n"
        "db:close()\n");
}

static void test_readonly(void **state) {
    run(*state,
        "local rw = assert(sqlite.open(DIR .. '/e.db'))\n"
        "assert(rw:exec('CREATE TABLE s(x); INSERT INTO s VALUES(1); PRAGMA user_version = 3'))\n"
        "local ro = assert(sqlite.open(DIR .. '/e.db', {readonly = true}))\n"
        "eq(ro:readonly(), true)\n"
        "eq(ro:query('SELECT x FROM s')[1].x, 1)\n"
        "eq(ro:query('PRAGMA user_version')[1].user_version, 3)\n"
        "local ok, err = ro:exec('INSERT INTO s VALUES(2)'); eq(ok, nil); assert(err)\n"
        "ok, err = ro:exec('DELETE FROM s'); eq(ok, nil)\n"
        "local token; ok, err, token = ro:exec('PRAGMA query_only = OFF'); eq(ok, nil); has(err, '^auth: '); eq(token, 'auth')\n"
        "ok, err = ro:exec(\"ATTACH '\" .. DIR .. \"/x.db' AS x\"); eq(ok, nil); has(err, '^auth: ')\n"
        "ok, err = ro:exec('CREATE TEMP TABLE z(a)'); eq(ok, nil)\n"
        "eq(rw:query('SELECT count(*) AS n FROM s')[1].n, 1, 'nothing written')\n"
        "local f = io.open(DIR .. '/x.db'); eq(f, nil, 'attach created no file')\n"
        "ro:close(); rw:close()\n");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_types_and_params, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rows_and_cursors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cache_and_exec_many, setup, teardown),
        cmocka_unit_test_setup_teardown(test_readonly, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
