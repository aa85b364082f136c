/* sqlite.c — the `sqlite` Lua module: a small, sharp SQLite binding.
 *
 *   sqlite.open(path, {readonly=, busy_timeout=ms, create=true, timeout=s, hidden="t1,t2", unzstd=true|"c1,c2",
 *                      page_size=n, text_views="c1,c2"}) -> db | nil, err, token
 *     (unzstd: BLOBs holding a zstd frame, in any column or the columns so named, read as text; page_size: a
 *     new database's, a power of two from 512 to 65536; an existing one keeps its own; text_views: read-only,
 *     the columns so named read through unzstd() in SQL too, see text_views() and views_for())
 *   db:exec(sql, ...) -> true | nil, err, token    (no params: may hold several statements)
 *   db:query(sql, ...) -> {rows keyed by column} | nil, err, token
 *   db:rows(sql, ...) -> iterator, for `for row in db:rows(...)` (raises on error, like io.lines)
 *   db:cursor(sql, ...) -> cursor | nil, err, token   cursor:next([array]), cursor:columns(), cursor:close()
 *   db:exec_many(sql, rows, columns) -> {per-row sqlite3_changes()} | nil, err, token, row_index
 *   db:changes(), db:last_insert_rowid(), db:autocommit(), db:close()
 *   sqlite.blob(s) marks a string to bind as a BLOB.
 *
 * Parameters: nil / json.null -> NULL, boolean -> 0/1, integer, float, string -> TEXT, sqlite.blob -> BLOB.
 * A single plain table argument binds named parameters (:name, @name, $name) from its fields.
 * Errors: nil, "<token>: <sqlite3_errmsg>", token with token busy, locked, full, corrupt, notadb,
 * readonly, constraint, io, cantopen, perm, interrupt, timeout, auth or sqlite (anything else).
 *
 * Bounded work: a progress handler stops any statement (a recursive CTE never ends) when SIGINT/SIGTERM
 * arrives during it ("interrupt: stopped by a signal"; the event loop cannot run while SQLite does), and,
 * with timeout = s, once it has worked s seconds ("timeout: ..."; a cursor counts every step's work, not
 * the time between steps).
 *
 * This file never calls back into Lua (no lua_call, no metamethods: raw table access only), so every
 * function here is safe to use from a task that yields between calls. */
#include "host.h"

#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <ctype.h>
#include <time.h>
#include <stdio.h>
#include <sys/stat.h>

#define DB_MT     "sqlite.db"
#define CURSOR_MT "sqlite.cursor"
#define BLOB_MT   "sqlite.blob"
#define CACHE_MAX 64

struct cached {
    char *sql;
    size_t len;
    sqlite3_stmt *stmt;
    unsigned long used;      /* LRU clock */
};

struct cursor;

/* unzstd()'s state on a connection: the last few dictionaries prepared, and whether it failed in the
 * statement that is failing (its error is then "corrupt", as a value that cannot be read back) */
#define UNZ_CACHE 8
typedef struct {
    void *dd[UNZ_CACHE];
    unsigned long used[UNZ_CACHE], clock;
    int failed;
} unz_t;

typedef struct {
    sqlite3 *db;             /* NULL once closed */
    int readonly;
    unsigned long clock;
    int ncache;
    struct cached cache[CACHE_MAX];
    struct cursor *cursors;  /* open cursors, finalized on close */
    double budget;           /* seconds of work a statement or cursor may take; 0: no bound */
    double t0;               /* when the running work began (monotonic), less what it had used before */
    sig_atomic_t sig0;       /* H.signals when it began */
    int stopped;             /* why the progress handler stopped it: STOP_SIGNAL or STOP_BUDGET */
    int unz_read;            /* {unzstd = true}: BLOBs holding a zstd frame are read as their text */
    char unz_cols[64];       /* {unzstd = "raw,c"}: only in columns so named, as ",raw,c," (a random BLOB elsewhere is left be) */
    unz_t *unz;              /* unzstd()'s dictionary cache (owned by the connection) */
    int unz_failed;          /* a value of the row just read could not be decompressed: unz_msg says why */
    char unz_msg[220];
    char hidden[256];        /* {hidden = "a,b"}: tables a read-only connection may not read, ",a,b," */
    char views_cols[64];     /* {text_views = "raw,c"}: the columns text_views() makes views for, as ",raw,c,"... */
    int views_pending;       /* ...when the first statement naming one is prepared */
    char views_err[200];     /* why making them failed, for that statement's error */
} db_t;

enum { STOP_SIGNAL = 1, STOP_BUDGET };

typedef struct cursor {
    sqlite3_stmt *stmt;      /* NULL once closed */
    db_t *owner;
    struct cursor *next, **pprev;
    int ncol;
    sig_atomic_t sig0;       /* H.signals when it was opened */
    double used;             /* seconds of work its steps took so far */
} cursor_t;

/* ---------- errors ---------- */

static const char *err_token(int rc) {
    switch (rc & 0xff) {
    case SQLITE_BUSY: return "busy";
    case SQLITE_LOCKED: return "locked";
    case SQLITE_FULL: return "full";
    case SQLITE_CORRUPT: return "corrupt";
    case SQLITE_NOTADB: return "notadb";
    case SQLITE_READONLY: return "readonly";
    case SQLITE_CONSTRAINT: return "constraint";
    case SQLITE_IOERR: return "io";
    case SQLITE_CANTOPEN: return "cantopen";
    case SQLITE_PERM: return "perm";
    case SQLITE_INTERRUPT: return "interrupt";
    case SQLITE_AUTH: return "auth";
    default: return "sqlite";
    }
}

/* nil, "<token>: message", token: callers read the token, never parse the message. */
static int push_err(lua_State *L, db_t *d, int rc) {
    lua_pushnil(L);
    const char *token = err_token(rc);
    if (d->unz && d->unz->failed) {
        d->unz->failed = 0;
        if ((rc & 0xff) == SQLITE_ERROR) token = "corrupt";
    }
    /* a read-only connection's text views (text_views()): a write to one is refused before the authorizer
     * would refuse it, by SQLite's "cannot modify T because it is a view" */
    if (d->readonly && (rc & 0xff) == SQLITE_ERROR && strstr(sqlite3_errmsg(d->db), "because it is a view"))
        token = "readonly";
    if ((rc & 0xff) == SQLITE_INTERRUPT && d->stopped == STOP_BUDGET) {
        token = "timeout";
        lua_pushfstring(L, "timeout: the statement worked longer than %f s", d->budget);
    } else if ((rc & 0xff) == SQLITE_INTERRUPT && d->stopped == STOP_SIGNAL)
        lua_pushliteral(L, "interrupt: stopped by a signal");
    else
        lua_pushfstring(L, "%s: %s", token, d->views_err[0] ? d->views_err : sqlite3_errmsg(d->db));
    d->views_err[0] = 0;
    lua_pushstring(L, token);
    return 3;
}

/* ---------- bounded work ---------- */

static double mono(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Work on d begins: signals from sig0 on stop it, and the budget counts from `used` seconds. */
static void work_begin(db_t *d, sig_atomic_t sig0, double used) {
    d->sig0 = sig0;
    d->stopped = 0;
    if (d->budget > 0) d->t0 = mono() - used;
}

/* Seconds the work begun by work_begin has taken, with what it had used before. */
static double work_used(db_t *d) { return d->budget > 0 ? mono() - d->t0 : 0; }

/* SQLite calls this every PROGRESS_OPS virtual machine instructions; non-zero stops the statement with
 * SQLITE_INTERRUPT. */
#define PROGRESS_OPS 1000
static int progress(void *ud) {
    db_t *d = ud;
    if (H.signals != d->sig0) d->stopped = STOP_SIGNAL;
    else if (d->budget > 0 && mono() - d->t0 > d->budget) d->stopped = STOP_BUDGET;
    return d->stopped;
}

/* ---------- handles ---------- */

static db_t *check_db(lua_State *L, int i) {
    db_t *d = luaL_checkudata(L, i, DB_MT);
    if (!d->db) luaL_error(L, "attempt to use a closed database");
    return d;
}

static void cursor_release(cursor_t *c) {
    if (c->stmt) {
        sqlite3_finalize(c->stmt);
        c->stmt = NULL;
    }
    if (c->pprev) {
        *c->pprev = c->next;
        if (c->next) c->next->pprev = c->pprev;
        c->pprev = NULL;
        c->next = NULL;
    }
    c->owner = NULL;
}

static void db_release(db_t *d) {
    if (!d->db) return;
    while (d->cursors) cursor_release(d->cursors);
    for (int i = 0; i < d->ncache; i++) {
        sqlite3_finalize(d->cache[i].stmt);
        free(d->cache[i].sql);
    }
    d->ncache = 0;
    sqlite3_close_v2(d->db);
    d->db = NULL;
    d->unz = NULL;   /* freed with the connection */
}

static int db_gc(lua_State *L) {
    db_release(luaL_checkudata(L, 1, DB_MT));
    return 0;
}

static int db_close(lua_State *L) {
    db_release(luaL_checkudata(L, 1, DB_MT));
    lua_pushboolean(L, 1);
    return 1;
}

static int db_tostring(lua_State *L) {
    db_t *d = luaL_checkudata(L, 1, DB_MT);
    if (d->db) lua_pushfstring(L, "sqlite.db (%p)", (void *)d);
    else lua_pushliteral(L, "sqlite.db (closed)");
    return 1;
}

/* ---------- statement cache ---------- */

static int views_for(db_t *d, const char *sql, size_t len);

/* Returns a reset statement for sql (cached by text), or NULL with rc set. */
static sqlite3_stmt *stmt_get(db_t *d, const char *sql, size_t len, int *rc, const char **tail) {
    for (int i = 0; i < d->ncache; i++) {
        struct cached *c = &d->cache[i];
        if (c->len == len && memcmp(c->sql, sql, len) == 0) {
            c->used = ++d->clock;
            if (tail) *tail = NULL;
            return c->stmt;
        }
    }
    sqlite3_stmt *st = NULL;
    const char *t = NULL;
    if ((*rc = views_for(d, sql, len)) != SQLITE_OK) return NULL;
    *rc = sqlite3_prepare_v3(d->db, sql, (int)len, SQLITE_PREPARE_PERSISTENT, &st, &t);
    if (*rc != SQLITE_OK) return NULL;
    if (tail) *tail = t;
    if (!st) return NULL; /* empty SQL */
    char *copy = malloc(len + 1);
    if (!copy) return st; /* uncached: caller must not know the difference except finalize below */
    memcpy(copy, sql, len);
    copy[len] = 0;
    int slot = d->ncache;
    if (slot == CACHE_MAX) {
        slot = 0;
        for (int i = 1; i < CACHE_MAX; i++)
            if (d->cache[i].used < d->cache[slot].used) slot = i;
        sqlite3_finalize(d->cache[slot].stmt);
        free(d->cache[slot].sql);
    } else {
        d->ncache++;
    }
    d->cache[slot] = (struct cached){copy, len, st, ++d->clock};
    return st;
}

/* A statement not in the cache (malloc failure above) is finalized here instead of reset. */
static void stmt_done(db_t *d, sqlite3_stmt *st) {
    if (!st) return;
    for (int i = 0; i < d->ncache; i++)
        if (d->cache[i].stmt == st) {
            sqlite3_reset(st);
            sqlite3_clear_bindings(st);
            return;
        }
    sqlite3_finalize(st);
}

static int only_space(const char *s) {
    if (!s) return 1;
    while (*s) {
        if (!isspace((unsigned char)*s) && *s != ';') return 0;
        s++;
    }
    return 1;
}

/* ---------- binding ---------- */

/* Bind the Lua value at idx to parameter i. Returns NULL or a static error message.  Strings are bound
 * SQLITE_STATIC: every caller keeps them reachable (stack or row table) until the step is over. */
static const char *bind_one(lua_State *L, sqlite3_stmt *st, int i, int idx) {
    int rc;
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
    case LUA_TNONE:
        rc = sqlite3_bind_null(st, i);
        break;
    case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L, idx) != NULL) return "unsupported parameter type (lightuserdata)";
        rc = sqlite3_bind_null(st, i); /* json.null */
        break;
    case LUA_TBOOLEAN:
        rc = sqlite3_bind_int(st, i, lua_toboolean(L, idx));
        break;
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx)) rc = sqlite3_bind_int64(st, i, lua_tointeger(L, idx));
        else rc = sqlite3_bind_double(st, i, lua_tonumber(L, idx));
        break;
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        rc = sqlite3_bind_text64(st, i, s, n, SQLITE_STATIC, SQLITE_UTF8);
        break;
    }
    case LUA_TTABLE: {
        if (!lua_getmetatable(L, idx)) return "unsupported parameter type (table)";
        luaL_getmetatable(L, BLOB_MT);
        int isblob = lua_rawequal(L, -1, -2);
        lua_pop(L, 2);
        if (!isblob) return "unsupported parameter type (table)";
        lua_rawgeti(L, idx, 1);
        size_t n;
        const char *s = lua_tolstring(L, -1, &n);
        lua_pop(L, 1); /* still referenced by the blob table */
        rc = sqlite3_bind_blob64(st, i, s ? s : "", s ? n : 0, SQLITE_STATIC);
        break;
    }
    default:
        return "unsupported parameter type";
    }
    return rc == SQLITE_OK ? NULL : "parameter index out of range";
}

static int is_plain_table(lua_State *L, int idx) {
    if (lua_type(L, idx) != LUA_TTABLE) return 0;
    if (!lua_getmetatable(L, idx)) return 1;
    luaL_getmetatable(L, BLOB_MT);
    int isblob = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    return !isblob;
}

/* Bind args first..top. Returns NULL or an error message. */
static const char *bind_args(lua_State *L, sqlite3_stmt *st, int first) {
    int top = lua_gettop(L), nparam = sqlite3_bind_parameter_count(st);
    if (top == first && is_plain_table(L, first)) {
        for (int i = 1; i <= nparam; i++) {
            const char *name = sqlite3_bind_parameter_name(st, i);
            if (!name) return "positional parameter with a table of named values";
            lua_pushstring(L, name + 1);
            lua_rawget(L, first);
            const char *e = bind_one(L, st, i, lua_gettop(L));
            lua_pop(L, 1); /* kept alive by the table */
            if (e) return e;
        }
        return NULL;
    }
    int nargs = top >= first ? top - first + 1 : 0;
    if (nargs != nparam) return nargs < nparam ? "too few parameters" : "too many parameters";
    for (int i = 0; i < nargs; i++) {
        const char *e = bind_one(L, st, i + 1, first + i);
        if (e) return e;
    }
    return NULL;
}

/* ---------- unzstd(): compressed values read back in SQL ---------- */

/* unzstd(x): x itself unless it is a BLOB holding a zstd frame; then the text it decompresses to.  A frame
 * made with a dictionary finds it in the connection's table zstd_dicts(id = the dictionary's zstd id,
 * dict BLOB); the last few dictionaries stay prepared on the connection.  A missing or damaged dictionary,
 * or a damaged frame, is an SQL error naming it (one message, the statement stops). */
#define UNZ_MAX (64u * 1024 * 1024)

static void unz_free(void *p) {
    unz_t *u = p;
    for (int i = 0; i < UNZ_CACHE; i++) zstd_ddict_free(u->dd[i]);
    free(u);
}

/* The prepared dictionary `id` | NULL with the error in msg. */
static void *unz_dict(sqlite3 *db, unz_t *u, unsigned id, char *msg, size_t msgsz) {
    int slot = 0;
    for (int i = 0; i < UNZ_CACHE; i++) {
        if (u->dd[i] && zstd_ddict_id(u->dd[i]) == id) { u->used[i] = ++u->clock; return u->dd[i]; }
        if (u->used[i] < u->used[slot]) slot = i;
    }
    sqlite3_stmt *st = NULL;
    void *dd = NULL;
    snprintf(msg, msgsz, "unzstd: dictionary %u is missing from zstd_dicts", id);
    if (sqlite3_prepare_v2(db, "SELECT dict FROM zstd_dicts WHERE id = ?", -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, id);
        if (sqlite3_step(st) == SQLITE_ROW) {
            dd = zstd_ddict_new(sqlite3_column_blob(st, 0), (size_t)sqlite3_column_bytes(st, 0));
            if (!dd || zstd_ddict_id(dd) != id) {
                zstd_ddict_free(dd);
                dd = NULL;
                snprintf(msg, msgsz, "unzstd: dictionary %u in zstd_dicts is damaged", id);
            }
        }
    }
    sqlite3_finalize(st);
    if (!dd) return NULL;
    zstd_ddict_free(u->dd[slot]);
    u->dd[slot] = dd;
    u->used[slot] = ++u->clock;
    return dd;
}

/* The text of frame b (n bytes, dictionary id) -> malloc'd *out, *len | NULL with the error in msg. */
static int unz_text(sqlite3 *db, unz_t *u, const void *b, size_t n, long id, char **out, size_t *len, char *msg,
                    size_t msgsz) {
    void *dd = NULL;
    if (id > 0 && !(dd = unz_dict(db, u, (unsigned)id, msg, msgsz))) return 0;
    const char *token, *err = zstd_decompress_buf(b, n, dd, UNZ_MAX, out, len, &token);
    if (err) { snprintf(msg, msgsz, "unzstd: %s: %s", token, err); return 0; }
    return 1;
}

static void sql_unzstd(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
    (void)argc;
    sqlite3_value *v = argv[0];
    const void *b = sqlite3_value_type(v) == SQLITE_BLOB ? sqlite3_value_blob(v) : NULL;
    size_t n = b ? (size_t)sqlite3_value_bytes(v) : 0;
    long id = b ? zstd_frame_dict(b, n) : -1;
    if (id < 0) { sqlite3_result_value(ctx, v); return; }
    char *out, msg[200];
    size_t len;
    unz_t *u = sqlite3_user_data(ctx);
    if (!unz_text(sqlite3_context_db_handle(ctx), u, b, n, id, &out, &len, msg, sizeof msg)) {
        u->failed = 1;
        sqlite3_result_error(ctx, msg, -1);
        return;
    }
    sqlite3_result_text64(ctx, out, len, free, SQLITE_UTF8);
}

/* zstd_dict(x): the id of the dictionary x's zstd frame was made with (0: none), NULL when x is not one (the
 * store asks which dictionaries rows still use before deleting one). */
static void sql_zstd_dict(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
    (void)argc;
    sqlite3_value *v = argv[0];
    const void *b = sqlite3_value_type(v) == SQLITE_BLOB ? sqlite3_value_blob(v) : NULL;
    long id = b ? zstd_frame_dict(b, (size_t)sqlite3_value_bytes(v)) : -1;
    if (id < 0) sqlite3_result_null(ctx);
    else sqlite3_result_int64(ctx, id);
}

/* -> the function's dictionary cache (owned by the connection: freed when it closes) | NULL */
static unz_t *add_functions(sqlite3 *db, int *rc) {
    unz_t *u = calloc(1, sizeof *u);
    if (!u) { *rc = SQLITE_NOMEM; return NULL; }
    *rc = sqlite3_create_function_v2(db, "unzstd", 1, SQLITE_UTF8 | SQLITE_DETERMINISTIC, u, sql_unzstd, NULL,
                                     NULL, unz_free);
    if (*rc != SQLITE_OK) return NULL;
    *rc = sqlite3_create_function_v2(db, "zstd_dict", 1, SQLITE_UTF8 | SQLITE_DETERMINISTIC, NULL, sql_zstd_dict,
                                     NULL, NULL, NULL);
    return *rc == SQLITE_OK ? u : NULL;
}

/* ---------- reading values ---------- */

/* Name lists ({hidden}, {unzstd}, {text_views}) are kept as ",a,b," in lower case: one strstr finds a name.
 * set_list(dst, cap, "a,b", n) -> 0 when the list is empty or too long for cap. */
static int set_list(char *dst, size_t cap, const char *src, size_t n) {
    if (n == 0 || n + 3 > cap) return 0;
    dst[0] = ',';
    for (size_t i = 0; i < n; i++) dst[i + 1] = (char)tolower((unsigned char)src[i]);
    dst[n + 1] = ',';
    dst[n + 2] = 0;
    return 1;
}

static int in_list(const char *list, const char *name) {
    if (!name || !list[0] || strchr(name, ',')) return 0;
    char key[130];
    size_t n = strlen(name);
    if (n > sizeof key - 3) return 0;
    key[0] = ',';
    for (size_t i = 0; i < n; i++) key[i + 1] = (char)tolower((unsigned char)name[i]);
    key[n + 1] = ',';
    key[n + 2] = 0;
    return strstr(list, key) != NULL;
}

static int push_unz_err(lua_State *L, db_t *d) {
    d->unz_failed = 0;
    lua_pushnil(L);
    lua_pushstring(L, d->unz_msg);
    lua_pushliteral(L, "corrupt");
    return 3;
}

static void push_column(lua_State *L, db_t *d, sqlite3_stmt *st, int i) {
    switch (sqlite3_column_type(st, i)) {
    case SQLITE_INTEGER: lua_pushinteger(L, sqlite3_column_int64(st, i)); break;
    case SQLITE_FLOAT: lua_pushnumber(L, sqlite3_column_double(st, i)); break;
    case SQLITE_TEXT:
        lua_pushlstring(L, (const char *)sqlite3_column_text(st, i), sqlite3_column_bytes(st, i));
        break;
    case SQLITE_BLOB: {
        const void *b = sqlite3_column_blob(st, i);
        size_t n = (size_t)sqlite3_column_bytes(st, i);
        int unz = d->unz_read && (!d->unz_cols[0] || in_list(d->unz_cols, sqlite3_column_name(st, i)));
        long id = b && unz ? zstd_frame_dict(b, n) : -1;
        if (id >= 0) {   /* {unzstd = true}: a compressed value is read as its text */
            char *out, msg[200];
            size_t len;
            if (!unz_text(d->db, d->unz, b, n, id, &out, &len, msg, sizeof msg)) {
                /* the caller sees unz_failed after the row and returns nil, the message, "corrupt" */
                if (!d->unz_failed) snprintf(d->unz_msg, sizeof d->unz_msg, "corrupt: %s", msg);
                d->unz_failed = 1;
                lua_pushnil(L);
                break;
            }
            lua_pushlstring(L, out, len);
            free(out);
            break;
        }
        lua_pushlstring(L, b ? b : "", n);
        break;
    }
    default: lua_pushnil(L);
    }
}

/* Push the current row as a table keyed by column name; names at stack index names (array). */
static void push_row(lua_State *L, db_t *d, sqlite3_stmt *st, int ncol, int names) {
    lua_createtable(L, 0, ncol);
    for (int i = 0; i < ncol; i++) {
        if (sqlite3_column_type(st, i) == SQLITE_NULL) continue;
        lua_rawgeti(L, names, i + 1);
        push_column(L, d, st, i);
        lua_rawset(L, -3);
    }
}

static void push_array_row(lua_State *L, db_t *d, sqlite3_stmt *st, int ncol) {
    lua_createtable(L, ncol, 0);
    for (int i = 0; i < ncol; i++) {
        push_column(L, d, st, i);
        lua_rawseti(L, -2, i + 1);
    }
}

static void push_names(lua_State *L, sqlite3_stmt *st, int ncol) {
    lua_createtable(L, ncol, 0);
    for (int i = 0; i < ncol; i++) {
        const char *n = sqlite3_column_name(st, i);
        lua_pushstring(L, n ? n : "?");
        lua_rawseti(L, -2, i + 1);
    }
}

/* ---------- open ---------- */

/* Read-only connections (policies, the REPL, `cachost query`) may read and nothing else: no ATTACH
 * (which could create a writable file), no PRAGMA that changes state (query_only cannot be turned off),
 * no function that reaches outside the database (fts3_tokenizer hands out and takes C pointers), and
 * nothing of the tables the opener hides ({hidden = "secrets,..."}: the vault), not even their row count. */
static int is_hidden(const db_t *db, const char *table) { return in_list(db->hidden, table); }

static int ro_authorizer(void *ud, int action, const char *a, const char *b, const char *c, const char *d) {
    const db_t *db = ud;
    (void)c; (void)d;
    switch (action) {
    case SQLITE_SELECT: case SQLITE_RECURSIVE: case SQLITE_TRANSACTION: case SQLITE_SAVEPOINT:
        return SQLITE_OK;
    case SQLITE_READ:
        return is_hidden(db, a) ? SQLITE_DENY : SQLITE_OK;
    case SQLITE_FUNCTION: {
        static const char *const no[] = {"fts3_tokenizer", "load_extension", "readfile", "writefile", "edit", NULL};
        for (int i = 0; no[i]; i++)
            if (b && sqlite3_stricmp(b, no[i]) == 0) return SQLITE_DENY;
        return SQLITE_OK;
    }
    case SQLITE_PRAGMA: {
        /* pragmas that read the schema; the first few take a table or index name as their argument */
        static const char *const ok[] = {"table_info", "table_xinfo", "index_list", "index_info", "index_xinfo",
                                         "foreign_key_list", "table_list", "user_version", "schema_version",
                                         "database_list", "collation_list", "function_list", NULL};
        for (int i = 0; ok[i]; i++)
            if (a && sqlite3_stricmp(a, ok[i]) == 0) {
                if (b && i >= 6) return SQLITE_DENY;   /* setting a value */
                if (is_hidden(db, b)) return SQLITE_DENY;
                return SQLITE_OK;
            }
        return SQLITE_DENY;
    }
    default:
        return SQLITE_DENY;
    }
}

static int getopt_int(lua_State *L, int t, const char *k, int dflt) {
    if (lua_isnoneornil(L, t)) return dflt;
    lua_getfield(L, t, k);
    int v = lua_isnil(L, -1) ? dflt : (int)luaL_checkinteger(L, -1);
    lua_pop(L, 1);
    return v;
}

static int getopt_bool(lua_State *L, int t, const char *k, int dflt) {
    if (lua_isnoneornil(L, t)) return dflt;
    lua_getfield(L, t, k);
    int v = lua_isnil(L, -1) ? dflt : lua_toboolean(L, -1);
    lua_pop(L, 1);
    return v;
}

/* Run a statement that must succeed on a fresh connection; returns rc. */
static int simple(sqlite3 *db, const char *sql) {
    return sqlite3_exec(db, sql, NULL, NULL, NULL);
}

/* chmod go-rwx the database file and its -wal and -shm where others may read them (a store created by
 * an older version under umask 022).  By name, never by a descriptor: closing one would drop SQLite's
 * POSIX locks. */
static void make_private(sqlite3 *db) {
    const char *file = sqlite3_db_filename(db, "main");
    if (!file || !*file) return;                       /* :memory: or a temporary database */
    const char *names[] = {file, sqlite3_filename_wal(file), NULL};
    char shm[4096];
    struct stat st;
    for (int i = 0; names[i]; i++)
        if (stat(names[i], &st) == 0 && (st.st_mode & 077)) chmod(names[i], st.st_mode & 0700);
    if (snprintf(shm, sizeof shm, "%s-shm", file) < (int)sizeof shm && stat(shm, &st) == 0 && (st.st_mode & 077))
        chmod(shm, st.st_mode & 0700);
}

/* {text_views = "raw"} on a read-only connection: each table of main with a column so named (but a hidden
 * one) is shadowed by a TEMP view of the same name, which SQLite finds first for a bare name, reading those
 * columns through unzstd() and the others as they are.  The reader's SQL sees the JSON text where the table
 * holds zstd frames (json_extract(raw, ...), raw LIKE ...), as a human writes it.  SQLite flattens such a
 * view into the query that reads it (or runs it as a co-routine computing only the columns used), so a
 * value is decompressed only where the query uses the column, and the tables' indexes serve as before;
 * main.<table> reads the stored values. */
static int text_views(sqlite3 *db, const db_t *d) {
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, "SELECT name FROM main.sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'",
                                -1, &st, NULL);
    sqlite3_stmt *cols = NULL;   /* a table's columns, in order */
    if (rc == SQLITE_OK) rc = sqlite3_prepare_v2(db, "SELECT name FROM pragma_table_info(?1, 'main')", -1, &cols, NULL);
    if (rc != SQLITE_OK) { sqlite3_finalize(st); return rc; }
    sqlite3_str *sql = sqlite3_str_new(db);
    sqlite3_str_appendall(sql, "BEGIN;");
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *t = (const char *)sqlite3_column_text(st, 0);
        if (!t || is_hidden(d, t)) continue;
        sqlite3_reset(cols);
        sqlite3_bind_text(cols, 1, t, -1, SQLITE_STATIC);
        sqlite3_str *sel = sqlite3_str_new(db);
        int named = 0;   /* has a column so named: a view */
        for (int i = 0; (rc = sqlite3_step(cols)) == SQLITE_ROW; i++) {
            const char *c = (const char *)sqlite3_column_text(cols, 0);
            if (in_list(d->views_cols, c)) { named = 1; sqlite3_str_appendf(sel, "%sunzstd(\"%w\") AS \"%w\"", i ? ", " : "", c, c); }
            else sqlite3_str_appendf(sel, "%s\"%w\"", i ? ", " : "", c);
        }
        char *list = sqlite3_str_finish(sel);
        if (rc == SQLITE_DONE && named) {
            if (list) sqlite3_str_appendf(sql, "CREATE TEMP VIEW \"%w\" AS SELECT %s FROM main.\"%w\";", t, list, t);
            else rc = SQLITE_NOMEM;
        }
        sqlite3_free(list);
        if (rc != SQLITE_DONE) break;
    }
    sqlite3_finalize(cols);
    sqlite3_finalize(st);
    sqlite3_str_appendall(sql, "COMMIT;");
    char *text = sqlite3_str_finish(sql);
    if (rc == SQLITE_DONE) rc = text ? simple(db, text) : SQLITE_NOMEM;
    sqlite3_free(text);
    return rc;
}

/* Does sql (len bytes) name one of list's columns, in any case?  (A word that merely contains one counts too:
 * harmless.) */
static int names_col(const char *sql, size_t len, const char *list) {
    for (const char *c = list + 1; *c; c = strchr(c, ',') + 1) {
        size_t n = (size_t)(strchr(c, ',') - c);
        for (size_t i = 0; i + n <= len; i++)
            if (sqlite3_strnicmp(sql + i, c, (int)n) == 0) return 1;
    }
    return 0;
}

/* Makes the text views of a {text_views} connection before the first statement that names one of their columns is
 * prepared (one that does not reads none of its values in SQL, and a result's are decompressed anyway:
 * unzstd), so that opening costs nothing more; the read-only restrictions lifted meanwhile (nothing but
 * text_views() runs).  On failure the statement fails with why (views_err), and the next one tries again. */
static int views_for(db_t *d, const char *sql, size_t len) {
    if (!d->views_pending || !names_col(sql, len, d->views_cols)) return SQLITE_OK;
    work_begin(d, H.signals, 0);    /* the progress handler measures from here */
    sqlite3_set_authorizer(d->db, NULL, NULL);
    int rc = simple(d->db, "PRAGMA query_only=OFF");
    if (rc == SQLITE_OK) rc = text_views(d->db, d);
    if (rc != SQLITE_OK) {
        snprintf(d->views_err, sizeof d->views_err, "%s", sqlite3_errmsg(d->db));
        if (!sqlite3_get_autocommit(d->db)) simple(d->db, "ROLLBACK");
    }
    /* the restrictions back, whatever happened: a connection that cannot have them is closed */
    if (simple(d->db, "PRAGMA query_only=ON") != SQLITE_OK || sqlite3_set_authorizer(d->db, ro_authorizer, d) != SQLITE_OK) {
        if (rc == SQLITE_OK) snprintf(d->views_err, sizeof d->views_err, "%s", sqlite3_errmsg(d->db));
        rc = SQLITE_ERROR;
        db_release(d);
    }
    if (rc == SQLITE_OK) d->views_pending = 0;
    return rc;
}

static int l_open(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    if (!lua_isnoneornil(L, 2)) luaL_checktype(L, 2, LUA_TTABLE);
    int readonly = getopt_bool(L, 2, "readonly", 0);
    int create = getopt_bool(L, 2, "create", 1);
    int busy = getopt_int(L, 2, "busy_timeout", 5000);
    int page = getopt_int(L, 2, "page_size", 0);
    luaL_argcheck(L, page == 0 || (page >= 512 && page <= 65536 && !(page & (page - 1))), 2,
                  "page_size: a power of two from 512 to 65536");
    const char *views = NULL;    /* alive in the options table, at index 2, while open runs */
    double budget = 0;
    if (!lua_isnoneornil(L, 2)) {
        lua_getfield(L, 2, "text_views");
        if (!lua_isnil(L, -1) && (!(views = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL) || !*views ||
                                  strlen(views) + 3 > sizeof ((db_t *)0)->views_cols))
            return luaL_argerror(L, 2, "text_views: column names (\"a,b\") of 1 to 61 bytes");
        lua_pop(L, 1);
        lua_getfield(L, 2, "timeout");
        if (!lua_isnil(L, -1)) {
            budget = luaL_checknumber(L, -1);
            if (!(budget >= 0)) return luaL_argerror(L, 2, "timeout must be seconds >= 0");
        }
        lua_pop(L, 1);
    }

    db_t *d = lua_newuserdatauv(L, sizeof *d, 0); /* "closed" until the connection exists */
    memset(d, 0, sizeof *d);
    luaL_setmetatable(L, DB_MT);

    int flags = SQLITE_OPEN_NOFOLLOW | SQLITE_OPEN_NOMUTEX;
    flags |= readonly ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0));
    sqlite3 *db = NULL;
    /* The store holds what providers know about people: whatever the umask, the database is created
     * 0600, and its -wal and -shm (SQLite gives them the database's mode) with it.  An existing file
     * others may read is made private too. */
    mode_t umask_was = umask(077);
    int rc = sqlite3_open_v2(path, &db, flags, NULL);
    if (rc != SQLITE_OK) {
        umask(umask_was);
        lua_pushnil(L);
        lua_pushfstring(L, "%s: %s: %s", err_token(rc), path, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        lua_pushstring(L, err_token(rc));
        sqlite3_close_v2(db);
        return 3;
    }
    if (!readonly) make_private(db);
    d->db = db;
    d->readonly = readonly;
    d->budget = budget;
    d->sig0 = H.signals;
    sqlite3_progress_handler(db, PROGRESS_OPS, progress, d);
    sqlite3_busy_timeout(db, busy);
    sqlite3_extended_result_codes(db, 0);
    /* Reading the schema refuses a file that is not a database (NOTADB) before anything is written. */
    rc = simple(db, "SELECT count(*) FROM sqlite_schema");
    if (rc == SQLITE_OK) d->unz = add_functions(db, &rc);
    d->unz_read = getopt_bool(L, 2, "unzstd", 0);
    if (!lua_isnoneornil(L, 2)) {
        lua_getfield(L, 2, "unzstd");
        size_t cl = 0;
        const char *col = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &cl) : NULL;
        if (col && !set_list(d->unz_cols, sizeof d->unz_cols, col, cl)) {
            db_release(d);
            return luaL_argerror(L, 2, "unzstd: column names (\"a,b\") of 1 to 61 bytes, or true");
        }
        lua_pop(L, 1);
    }
    if (!lua_isnoneornil(L, 2)) {
        lua_getfield(L, 2, "hidden");
        size_t hl = 0;
        const char *h = lua_isnil(L, -1) ? NULL : luaL_checklstring(L, -1, &hl);
        if (h && hl && !set_list(d->hidden, sizeof d->hidden, h, hl)) {
            db_release(d);
            return luaL_argerror(L, 2, "hidden: too long a list");
        }
        lua_pop(L, 1);
    }
    if (rc == SQLITE_OK && !readonly) {
        char sql[160];
        snprintf(sql, sizeof sql, "PRAGMA page_size=%d", page);   /* before anything is written; else a no-op */
        if (page) rc = simple(db, sql);
        if (rc == SQLITE_OK) rc = simple(db, "PRAGMA journal_mode=WAL");
        /* checkpoint the WAL every ~40 MB instead of ~4 MB: scans commit page by page, and each commit
         * rewrites the index pages it touched; fewer checkpoints write them back fewer times */
        if (rc == SQLITE_OK) {
            sqlite3_stmt *st = NULL;
            int size = 4096;
            if (sqlite3_prepare_v2(db, "PRAGMA page_size", -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
                size = sqlite3_column_int(st, 0);
            sqlite3_finalize(st);
            snprintf(sql, sizeof sql, "PRAGMA foreign_keys=ON; PRAGMA synchronous=NORMAL; PRAGMA wal_autocheckpoint=%d",
                     10000 * 4096 / (size > 0 ? size : 4096));
            rc = simple(db, sql);
        }
        /* an 8 MB page cache (SQLite's default is 2 MB): events' (instance_id, ext_id) index takes random ids,
         * so each page of a sync touches leaves all over it; with 2 MB they were read back from the file
         * again and again (bench/sync.sh: ~5% of the sync's CPU).  Allocated as used. */
        if (rc == SQLITE_OK) rc = simple(db, "PRAGMA cache_size=-8192");
    }
    if (readonly && views) {      /* made when first needed: views_for() */
        set_list(d->views_cols, sizeof d->views_cols, views, strlen(views));
        d->views_pending = 1;
    }
    if (rc == SQLITE_OK && readonly) {
        rc = simple(db, "PRAGMA query_only=ON");
        if (rc == SQLITE_OK) rc = sqlite3_set_authorizer(db, ro_authorizer, d);
    }
    umask(umask_was);
    if (rc != SQLITE_OK) {
        lua_pushnil(L);
        if ((rc & 0xff) == SQLITE_NOTADB)
            lua_pushfstring(L, "notadb: %s is not a SQLite database (left untouched)", path);
        else
            lua_pushfstring(L, "%s: %s: %s", err_token(rc), path, sqlite3_errmsg(db));
        lua_pushstring(L, err_token(rc));
        db_release(d);
        return 3;
    }
    return 1;
}

/* ---------- exec / query ---------- */

static int l_exec(lua_State *L) {
    db_t *d = check_db(L, 1);
    size_t len;
    const char *sql = luaL_checklstring(L, 2, &len);
    int rc;
    if (lua_gettop(L) == 2) {
        /* No parameters: run every statement of the script (migrations), uncached. */
        const char *p = sql, *end = sql + len;
        work_begin(d, H.signals, 0);
        while (p < end) {
            sqlite3_stmt *st = NULL;
            const char *tail = NULL;
            rc = views_for(d, p, (size_t)(end - p));
            if (rc == SQLITE_OK) rc = sqlite3_prepare_v2(d->db, p, (int)(end - p), &st, &tail);
            if (rc != SQLITE_OK) return push_err(L, d, rc);
            if (!st) break; /* only whitespace / comments left */
            if (sqlite3_bind_parameter_count(st) > 0) {
                sqlite3_finalize(st);
                return luaL_error(L, "exec: too few parameters");
            }
            while ((rc = sqlite3_step(st)) == SQLITE_ROW) {}
            sqlite3_finalize(st);
            if (rc != SQLITE_DONE) return push_err(L, d, rc);
            p = tail;
        }
        lua_pushboolean(L, 1);
        return 1;
    }
    const char *tail = NULL;
    sqlite3_stmt *st = stmt_get(d, sql, len, &rc, &tail);
    if (!st) return rc == SQLITE_OK ? (lua_pushboolean(L, 1), 1) : push_err(L, d, rc);
    if (!only_space(tail)) {
        stmt_done(d, st);
        return luaL_error(L, "exec: parameters given with more than one statement");
    }
    const char *e = bind_args(L, st, 3);
    if (e) {
        stmt_done(d, st);
        return luaL_error(L, "exec: %s", e);
    }
    work_begin(d, H.signals, 0);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {}
    if (rc != SQLITE_DONE) {
        int n = push_err(L, d, rc);
        stmt_done(d, st);
        return n;
    }
    stmt_done(d, st);
    lua_pushboolean(L, 1);
    return 1;
}

/* Prepare (cached) and bind, or push an error / raise on misuse. */
static sqlite3_stmt *prepare_bound(lua_State *L, db_t *d, const char *what, int *nret) {
    size_t len;
    const char *sql = luaL_checklstring(L, 2, &len);
    int rc;
    const char *tail = NULL;
    sqlite3_stmt *st = stmt_get(d, sql, len, &rc, &tail);
    if (!st) {
        if (rc == SQLITE_OK) luaL_error(L, "%s: empty SQL", what);
        *nret = push_err(L, d, rc);
        return NULL;
    }
    if (!only_space(tail)) {
        stmt_done(d, st);
        luaL_error(L, "%s: more than one statement", what);
    }
    const char *e = bind_args(L, st, 3);
    if (e) {
        stmt_done(d, st);
        luaL_error(L, "%s: %s", what, e);
    }
    return st;
}

static int l_query(lua_State *L) {
    db_t *d = check_db(L, 1);
    int nret = 0;
    sqlite3_stmt *st = prepare_bound(L, d, "query", &nret);
    if (!st) return nret;
    int ncol = sqlite3_column_count(st);
    push_names(L, st, ncol);
    int names = lua_gettop(L);
    lua_newtable(L);
    int rc, n = 0;
    work_begin(d, H.signals, 0);
    d->unz_failed = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        push_row(L, d, st, ncol, names);
        if (d->unz_failed) {
            stmt_done(d, st);
            return push_unz_err(L, d);
        }
        lua_rawseti(L, -2, ++n);
    }
    if (rc != SQLITE_DONE) {
        int nerr = push_err(L, d, rc);
        stmt_done(d, st);
        return nerr;
    }
    stmt_done(d, st);
    return 1;
}

/* exec_many(sql, rows, columns): columns[j] is a field name of each row, {value = v} (the same value for
 * every row) or {list = t} (t[i] for row i). One cached statement stepped per row; results[i] is
 * sqlite3_changes() after row i (1 inserted/updated, 0 e.g. ON CONFLICT DO NOTHING). Call it inside a
 * transaction. On failure: nil, err, i (the failing row; earlier rows are not rolled back here). */
enum { COL_KEY, COL_VALUE, COL_LIST };

static int l_exec_many(lua_State *L) {
    db_t *d = check_db(L, 1);
    luaL_checktype(L, 3, LUA_TTABLE);
    luaL_checktype(L, 4, LUA_TTABLE);
    lua_settop(L, 4);
    lua_Integer nrows = (lua_Integer)lua_rawlen(L, 3);
    int ncols = (int)lua_rawlen(L, 4);
    if (ncols == 0) return luaL_argerror(L, 4, "no columns");
    luaL_checkstack(L, ncols + 8, "too many columns");
    /* Resolve the column specs once: stack slots 5..4+ncols hold the key, the value or the list. */
    int kinds[ncols];
    for (int j = 1; j <= ncols; j++) {
        int t = lua_rawgeti(L, 4, j);
        if (t == LUA_TSTRING) { kinds[j - 1] = COL_KEY; continue; }
        if (t != LUA_TTABLE) return luaL_argerror(L, 4, "column spec must be a name, {value=} or {list=}");
        lua_getfield(L, -1, "list");
        if (lua_type(L, -1) == LUA_TTABLE) {
            kinds[j - 1] = COL_LIST;
        } else {
            lua_pop(L, 1);
            lua_getfield(L, -1, "value");
            kinds[j - 1] = COL_VALUE;
        }
        lua_remove(L, -2);
    }
    int base = 4;
    size_t len;
    const char *sql = luaL_checklstring(L, 2, &len);
    int rc;
    const char *tail = NULL;
    sqlite3_stmt *st = stmt_get(d, sql, len, &rc, &tail);
    if (!st) {
        if (rc == SQLITE_OK) return luaL_argerror(L, 2, "empty SQL");
        return push_err(L, d, rc);
    }
    if (!only_space(tail) || sqlite3_bind_parameter_count(st) != ncols) {
        stmt_done(d, st);
        return luaL_error(L, "exec_many: need one statement with exactly %d parameters", ncols);
    }
    lua_createtable(L, (int)(nrows > 1 << 24 ? 1 << 24 : nrows), 0);
    int results = lua_gettop(L);
    work_begin(d, H.signals, 0);
    for (lua_Integer i = 1; i <= nrows; i++) {
        if (lua_rawgeti(L, 3, i) != LUA_TTABLE) {
            stmt_done(d, st);
            return luaL_error(L, "exec_many: row %d is not a table", (int)i);
        }
        int row = lua_gettop(L);
        for (int j = 1; j <= ncols; j++) {
            int spec = base + j;
            switch (kinds[j - 1]) {
            case COL_KEY: lua_pushvalue(L, spec); lua_rawget(L, row); break;
            case COL_LIST: lua_rawgeti(L, spec, i); break;
            default: lua_pushvalue(L, spec);
            }
            const char *e = bind_one(L, st, j, -1);
            lua_pop(L, 1); /* still reachable from the row, the list or the spec */
            if (e) {
                stmt_done(d, st);
                lua_pushvalue(L, spec);
                return luaL_error(L, "exec_many: row %d column %s: %s", (int)i,
                                  lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "?", e);
            }
        }
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {}
        if (rc != SQLITE_DONE) {
            int n = push_err(L, d, rc);
            stmt_done(d, st);
            lua_pushinteger(L, i);
            return n + 1;
        }
        sqlite3_reset(st);
        lua_pushinteger(L, sqlite3_changes(d->db));
        lua_rawseti(L, results, i);
        lua_settop(L, results);
    }
    stmt_done(d, st);
    return 1;
}

/* ---------- cursors ---------- */

static cursor_t *check_cursor(lua_State *L, int i) {
    return luaL_checkudata(L, i, CURSOR_MT);
}

/* Returns the cursor on the stack (1), or nil, err, token (3). Raises on misuse. */
static int open_cursor(lua_State *L, db_t *d) {
    size_t len;
    const char *sql = luaL_checklstring(L, 2, &len);
    cursor_t *c = lua_newuserdatauv(L, sizeof *c, 2); /* uv1: the db (kept alive), uv2: column names */
    memset(c, 0, sizeof *c);
    luaL_setmetatable(L, CURSOR_MT);
    lua_pushvalue(L, 1);
    lua_setiuservalue(L, -2, 1);
    lua_insert(L, 3); /* cursor at 3, parameters now from 4 */
    const char *tail = NULL;
    int rc = views_for(d, sql, len);
    if (rc == SQLITE_OK) rc = sqlite3_prepare_v2(d->db, sql, (int)len, &c->stmt, &tail);
    if (rc != SQLITE_OK) return push_err(L, d, rc);
    if (!c->stmt) return luaL_error(L, "rows: empty SQL");
    c->owner = d;
    c->sig0 = H.signals;
    c->next = d->cursors;
    if (d->cursors) d->cursors->pprev = &c->next;
    d->cursors = c;
    c->pprev = &d->cursors;
    if (!only_space(tail)) {
        cursor_release(c);
        return luaL_error(L, "rows: more than one statement");
    }
    const char *e = bind_args(L, c->stmt, 4);
    if (e) {
        cursor_release(c);
        return luaL_error(L, "rows: %s", e);
    }
    c->ncol = sqlite3_column_count(c->stmt);
    push_names(L, c->stmt, c->ncol);
    lua_setiuservalue(L, 3, 2);
    lua_settop(L, 3);
    return 1;
}

static int l_cursor(lua_State *L) {
    db_t *d = check_db(L, 1);
    return open_cursor(L, d);
}

/* cursor:next([array]) -> row | nil (done, cursor closed) | nil, err (cursor closed) */
static int cursor_next(lua_State *L) {
    cursor_t *c = check_cursor(L, 1);
    if (!c->stmt) return 0;
    int asarray = lua_toboolean(L, 2);
    work_begin(c->owner, c->sig0, c->used);
    int rc = sqlite3_step(c->stmt);
    c->used = work_used(c->owner);
    if (rc == SQLITE_ROW) {
        c->owner->unz_failed = 0;
        if (asarray) {
            push_array_row(L, c->owner, c->stmt, c->ncol);
        } else {
            lua_getiuservalue(L, 1, 2);
            push_row(L, c->owner, c->stmt, c->ncol, lua_gettop(L));
        }
        if (c->owner->unz_failed) {
            db_t *d = c->owner;      /* released with the cursor */
            cursor_release(c);
            return push_unz_err(L, d);
        }
        return 1;
    }
    if (rc == SQLITE_DONE) {
        cursor_release(c);
        return 0;
    }
    int n = push_err(L, c->owner, rc);
    cursor_release(c);
    return n;
}

static int cursor_columns(lua_State *L) {
    check_cursor(L, 1);
    lua_getiuservalue(L, 1, 2);
    return 1;
}

static int cursor_close(lua_State *L) {
    cursor_release(check_cursor(L, 1));
    return 0;
}

static int cursor_tostring(lua_State *L) {
    cursor_t *c = check_cursor(L, 1);
    if (c->stmt) lua_pushfstring(L, "sqlite.cursor (%p)", (void *)c);
    else lua_pushliteral(L, "sqlite.cursor (closed)");
    return 1;
}

/* The for-loop step: raises on error (like io.lines), so a failing query never ends a loop silently. */
static int rows_step(lua_State *L) {
    check_cursor(L, 1);
    lua_settop(L, 1);
    int n = cursor_next(L);
    if (n == 3) { lua_pop(L, 1); return lua_error(L); }     /* nil, message, token: raise the message */
    return n;
}

/* for row in db:rows(sql, ...) do ... end — the cursor is the loop's to-be-closed value, so a break or
 * an error finalizes the statement at once. */
static int l_rows(lua_State *L) {
    db_t *d = check_db(L, 1);
    if (open_cursor(L, d) == 3) { lua_pop(L, 1); return lua_error(L); }   /* raise the message */
    lua_pushcfunction(L, rows_step);
    lua_insert(L, -2);
    lua_pushnil(L);
    lua_pushvalue(L, -2);
    return 4;
}

/* ---------- misc ---------- */

static int l_changes(lua_State *L) {
    lua_pushinteger(L, sqlite3_changes(check_db(L, 1)->db));
    return 1;
}

static int l_last_rowid(lua_State *L) {
    lua_pushinteger(L, sqlite3_last_insert_rowid(check_db(L, 1)->db));
    return 1;
}

static int l_autocommit(lua_State *L) {
    lua_pushboolean(L, sqlite3_get_autocommit(check_db(L, 1)->db));
    return 1;
}

static int l_readonly(lua_State *L) {
    lua_pushboolean(L, check_db(L, 1)->readonly);
    return 1;
}

int db_blob(lua_State *L) {
    luaL_checkstring(L, 1);
    lua_createtable(L, 1, 0);
    lua_pushvalue(L, 1);
    lua_rawseti(L, -2, 1);
    luaL_setmetatable(L, BLOB_MT);
    return 1;
}

static const luaL_Reg db_methods[] = {
    {"exec", l_exec},       {"query", l_query},        {"rows", l_rows},
    {"cursor", l_cursor},   {"exec_many", l_exec_many}, {"changes", l_changes},
    {"last_insert_rowid", l_last_rowid}, {"autocommit", l_autocommit},
    {"readonly", l_readonly}, {"close", db_close},     {NULL, NULL}};

static const luaL_Reg db_meta[] = {
    {"__gc", db_gc}, {"__close", db_gc}, {"__tostring", db_tostring}, {"__index", NULL}, {NULL, NULL}};

static const luaL_Reg cursor_methods[] = {
    {"next", cursor_next}, {"columns", cursor_columns}, {"close", cursor_close}, {NULL, NULL}};

static const luaL_Reg cursor_meta[] = {
    {"__gc", cursor_close}, {"__close", cursor_close}, {"__tostring", cursor_tostring},
    {"__index", NULL}, {NULL, NULL}};

static const luaL_Reg funcs[] = {{"open", l_open}, {"blob", db_blob}, {NULL, NULL}};

int luaopen_sqlite(lua_State *L) {
    host_class(L, DB_MT, db_meta, db_methods);
    host_class(L, CURSOR_MT, cursor_meta, cursor_methods);
    luaL_newmetatable(L, BLOB_MT);
    lua_pushliteral(L, "sqlite.blob");
    lua_setfield(L, -2, "__name");
    lua_pop(L, 1);
    luaL_newlib(L, funcs);
    lua_pushstring(L, sqlite3_libversion());
    lua_setfield(L, -2, "version");
    return 1;
}
