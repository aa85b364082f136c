/* pg.c — the `pg` Lua module: PostgreSQL over libpq, with the sqlite module's API where it can.
 *
 *   pg.open(conninfo, {readonly=, busy_timeout=ms, timeout=s}) -> db | nil, err, token
 *   db:exec(sql, ...) -> true | nil, err, token    (no params: may hold several statements)
 *   db:query(sql, ...) -> {rows keyed by column} | nil, err, token
 *   db:rows(sql, ...) -> iterator (raises on error, like io.lines)
 *   db:cursor(sql, ...) -> cursor | nil, err, token   cursor:next([array]), cursor:columns(), cursor:close()
 *   db:exec_many(sql, rows, columns) -> {per-row changes} | nil, err, token, row_index
 *   db:changes(), db:last_insert_rowid(), db:autocommit(), db:readonly(), db:close()
 *   pg.blob(s) marks a string to bind as bytea (sqlite.blob values are accepted too).
 *
 * Statements are written as for SQLite: `?` and `?NNN` placeholders become $n here (outside quotes and
 * comments), and parameters are always bound, never spliced into the SQL.  Each statement is prepared
 * once per connection (an LRU cache of 64, like the sqlite module's).  A parameter whose type PostgreSQL
 * cannot infer (`? IS NULL`) is declared text and the statement prepared again.
 *
 * Parameters: nil / json.null -> NULL, boolean -> 1/0, integer, float, string -> text, blob -> bytea.
 * Results: integers (int2/4/8, bool as 1/0, integral numeric) as Lua integers, floats as numbers, bytea as
 * its bytes, everything else as text: the same values the sqlite module gives for the store's columns.
 *
 * Errors: nil, "<token>: message", token with the sqlite module's tokens by SQLSTATE class: busy
 * (lock_timeout, deadlock, serialization failure), full (disk full, out of memory), constraint (23xxx),
 * readonly (25006), timeout (57014 from statement_timeout), cantopen (the connection), io (a connection
 * lost), perm (42501), auth (28xxx), corrupt (XX001/XX002), or pg (anything else).
 *
 * libpq's calls block like SQLite's: the event loop waits for the database.  The store keeps its
 * transactions short (a page) and bounds lock waits by lock_timeout (busy_timeout). */
#include "host.h"

#include "pq_dl.h"      /* <libpq-fe.h>, its functions loaded at the first pg.open */
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <ctype.h>

#define DB_MT     "pg.db"
#define CURSOR_MT "pg.cursor"
#define BLOB_MT   "sqlite.blob"      /* one blob marker for both modules (the store binds either) */
#define CACHE_MAX 64
#define MAX_PARAMS 4096
#define PIPE_BATCH 256       /* rows exec_many sends before it reads their results */

/* PostgreSQL type oids (catalog/pg_type.h is not among libpq-dev's headers) */
enum { BOOLOID = 16, BYTEAOID = 17, INT8OID = 20, INT2OID = 21, INT4OID = 23, TEXTOID = 25, OIDOID = 26,
       FLOAT4OID = 700, FLOAT8OID = 701, NUMERICOID = 1700 };

struct cached {
    char *sql;               /* the statement as the caller wrote it */
    size_t len;
    char name[16];           /* its prepared name on the server */
    int nparams;
    unsigned long used;
};

typedef struct {
    PGconn *conn;            /* NULL once closed */
    int readonly;
    unsigned long clock, serial;
    int ncache;
    struct cached cache[CACHE_MAX];
    long long changes;       /* rows the last statement changed */
    unsigned long txn;       /* read-only: the transaction a streaming cursor began (0: none open) */
    unsigned long txns;      /* how many it began */
} db_t;

typedef struct {
    PGresult *res;           /* the rows at hand; NULL once closed */
    int row, nrows, ncol;
    db_t *owner;             /* streaming: the connection its server-side cursor lives on (kept alive) */
    char name[24];           /* streaming: the server-side cursor's name ("" when the result is whole) */
    unsigned long began;     /* streaming: the transaction it began (db_t.txn), 0 if it found one open */
} cursor_t;

#define FETCH_ROWS 500       /* rows a streaming cursor fetches at a time */

/* ---------- errors ---------- */

static const char *state_token(const char *s) {
    if (!s) return "io";
    if (!strcmp(s, "55P03") || !strcmp(s, "40P01") || !strcmp(s, "40001")) return "busy";
    if (!strcmp(s, "53100") || !strcmp(s, "53200")) return "full";
    if (!strncmp(s, "23", 2)) return "constraint";
    if (!strcmp(s, "25006")) return "readonly";
    if (!strcmp(s, "57014")) return "timeout";
    if (!strncmp(s, "08", 2) || !strcmp(s, "57P01")) return "io";
    if (!strcmp(s, "42501")) return "perm";
    if (!strncmp(s, "28", 2)) return "auth";
    if (!strcmp(s, "XX001") || !strcmp(s, "XX002")) return "corrupt";
    return "pg";
}

/* The first line of a message (libpq's end with a newline, some carry a DETAIL after it). */
static void push_line(lua_State *L, const char *token, const char *msg) {
    size_t n = strcspn(msg ? msg : "", "\n");
    lua_pushfstring(L, "%s: ", token);
    lua_pushlstring(L, msg ? msg : "", n);
    lua_concat(L, 2);
}

static int push_res_err(lua_State *L, db_t *d, PGresult *r) {
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    const char *token = state ? state_token(state) : (PQstatus(d->conn) == CONNECTION_BAD ? "io" : "pg");
    const char *msg = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    lua_pushnil(L);
    push_line(L, token, msg ? msg : PQerrorMessage(d->conn));
    lua_pushstring(L, token);
    /* a statement failed inside the transaction a streaming cursor began: that transaction is aborted
     * (the cursor with it: its next fetch says so); the connection goes on without it */
    if (d->txn && PQtransactionStatus(d->conn) == PQTRANS_INERROR) {
        PQclear(PQexec(d->conn, "ROLLBACK"));
        d->txn = 0;
    }
    return 3;
}

/* ---------- handles ---------- */

static db_t *check_db(lua_State *L, int i) {
    db_t *d = luaL_checkudata(L, i, DB_MT);
    if (!d->conn) luaL_error(L, "attempt to use a closed database");
    return d;
}

static void db_release(db_t *d) {
    if (!d->conn) return;
    for (int i = 0; i < d->ncache; i++) free(d->cache[i].sql);
    d->ncache = 0;
    PQfinish(d->conn);
    d->conn = NULL;
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
    if (d->conn) lua_pushfstring(L, "pg.db (%p)", (void *)d);
    else lua_pushliteral(L, "pg.db (closed)");
    return 1;
}

/* Server notices (e.g. "there is no transaction in progress") are not the user's business. */
static void quiet(void *arg, const char *msg) { (void)arg; (void)msg; }

/* ---------- placeholders ---------- */

/* SQLite's `?` and `?NNN` as $n in a malloc'd copy (a bare ? takes the largest index so far + 1, as in
 * SQLite); quotes, identifiers, comments and dollar-quoted text are copied as they are.  *np: the
 * number of parameters; NULL on a placeholder beyond MAX_PARAMS or out of memory. */
static char *translate(const char *sql, size_t len, int *np) {
    char *out = malloc(len * 5 + 16), *o = out;     /* a ? becomes at most $4096 */
    if (!out) return NULL;
    int max = 0;
    const char *p = sql, *end = sql + len;
    while (p < end) {
        char c = *p;
        if (c == '\'' || c == '"') {
            const char *q = p + 1;
            while (q < end && *q != c) q++;
            if (q < end) q++;
            memcpy(o, p, (size_t)(q - p)); o += q - p; p = q;
        } else if (c == '-' && p + 1 < end && p[1] == '-') {
            const char *q = p;
            while (q < end && *q != '\n') q++;
            memcpy(o, p, (size_t)(q - p)); o += q - p; p = q;
        } else if (c == '/' && p + 1 < end && p[1] == '*') {
            const char *q = p + 2;
            while (q + 1 < end && !(q[0] == '*' && q[1] == '/')) q++;
            q = q + 1 < end ? q + 2 : end;
            memcpy(o, p, (size_t)(q - p)); o += q - p; p = q;
        } else if (c == '?') {
            p++;
            int n = 0;
            if (p < end && isdigit((unsigned char)*p)) {
                while (p < end && isdigit((unsigned char)*p) && n <= MAX_PARAMS) n = n * 10 + (*p++ - '0');
            } else {
                n = max + 1;
            }
            if (n < 1 || n > MAX_PARAMS) { free(out); return NULL; }
            if (n > max) max = n;
            o += sprintf(o, "$%d", n);
        } else {
            *o++ = *p++;
        }
    }
    *o = 0;
    *np = max;
    return out;
}

/* ---------- binding ---------- */

typedef struct {
    int n;
    const char **values;
    int *lengths, *formats;
    char (*num)[32];         /* the text of numbers and booleans */
} params_t;

static void params_free(params_t *p) {
    free(p->values); free(p->lengths); free(p->formats); free(p->num);
    memset(p, 0, sizeof *p);
}

static int params_init(params_t *p, int n) {
    memset(p, 0, sizeof *p);
    p->n = n;
    int m = n > 0 ? n : 1;
    p->values = calloc((size_t)m, sizeof *p->values);
    p->lengths = calloc((size_t)m, sizeof *p->lengths);
    p->formats = calloc((size_t)m, sizeof *p->formats);
    p->num = calloc((size_t)m, sizeof *p->num);
    if (!p->values || !p->lengths || !p->formats || !p->num) { params_free(p); return 0; }
    return 1;
}

static int is_blob(lua_State *L, int idx) {
    if (!lua_getmetatable(L, idx)) return 0;
    luaL_getmetatable(L, BLOB_MT);
    int yes = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    return yes;
}

/* Parameter i (0-based) from the Lua value at idx, which stays reachable until the statement ran.
 * Returns NULL or a static error message. */
static const char *bind_one(lua_State *L, params_t *p, int i, int idx) {
    p->values[i] = NULL;
    p->formats[i] = 0;
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
    case LUA_TNONE:
        return NULL;
    case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L, idx) != NULL) return "unsupported parameter type (lightuserdata)";
        return NULL; /* json.null */
    case LUA_TBOOLEAN:
        strcpy(p->num[i], lua_toboolean(L, idx) ? "1" : "0");
        p->values[i] = p->num[i];
        return NULL;
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx)) snprintf(p->num[i], 32, "%lld", (long long)lua_tointeger(L, idx));
        else snprintf(p->num[i], 32, "%.17g", (double)lua_tonumber(L, idx));
        p->values[i] = p->num[i];
        return NULL;
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        if (memchr(s, 0, n)) return "a text parameter holds a NUL byte (bind it as a blob)";
        p->values[i] = s;
        return NULL;
    }
    case LUA_TTABLE: {
        if (!is_blob(L, idx)) return "unsupported parameter type (table)";
        lua_rawgeti(L, idx, 1);
        size_t n;
        const char *s = lua_tolstring(L, -1, &n);
        lua_pop(L, 1); /* still referenced by the blob table */
        p->values[i] = s ? s : "";
        p->lengths[i] = (int)n;
        p->formats[i] = 1;
        return NULL;
    }
    default:
        return "unsupported parameter type";
    }
}

/* ---------- statements ---------- */

/* PostgreSQL cannot type a parameter used only where any type fits (`$1 IS NULL`); such a parameter is
 * sent as text.  r failed that way (42P18 / 42P08: "could not determine data type of parameter $n") ->
 * n, the parameter to type as text and try again | 0: r is not that, or n is already typed. */
static int untyped_param(const PGresult *r, int np, const Oid *types) {
    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    if (PQresultStatus(r) != PGRES_FATAL_ERROR || !state || (strcmp(state, "42P18") && strcmp(state, "42P08")))
        return 0;
    const char *m = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
    const char *dollar = m ? strchr(m, '$') : NULL;
    int which = dollar ? atoi(dollar + 1) : 0;
    return which >= 1 && which <= np && !types[which - 1] ? which : 0;
}

/* The prepared statement for sql, prepared now if it is not cached -> its cache slot | NULL with the
 * error pushed (3 values in *nret), or raises on misuse. */
static struct cached *stmt_get(lua_State *L, db_t *d, const char *sql, size_t len, int *nret) {
    for (int i = 0; i < d->ncache; i++) {
        struct cached *c = &d->cache[i];
        if (c->len == len && memcmp(c->sql, sql, len) == 0) {
            c->used = ++d->clock;
            return c;
        }
    }
    int np = 0;
    char *text = translate(sql, len, &np);
    if (!text) luaL_error(L, "too many parameters, or out of memory");
    struct cached *slot;
    if (d->ncache < CACHE_MAX) {
        slot = &d->cache[d->ncache++];
    } else {
        slot = &d->cache[0];
        for (int i = 1; i < d->ncache; i++)
            if (d->cache[i].used < slot->used) slot = &d->cache[i];
        char q[40];
        snprintf(q, sizeof q, "DEALLOCATE %s", slot->name);
        PQclear(PQexec(d->conn, q));
        free(slot->sql);
    }
    memset(slot, 0, sizeof *slot);
    snprintf(slot->name, sizeof slot->name, "c%lu", ++d->serial);
    Oid types[np > 0 ? np : 1];
    memset(types, 0, sizeof types);
    PGresult *r;
    for (;;) {
        r = PQprepare(d->conn, slot->name, text, np, types);
        int which = untyped_param(r, np, types);
        if (!which) break;
        types[which - 1] = TEXTOID;
        PQclear(r);
    }
    free(text);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        *nret = push_res_err(L, d, r);
        PQclear(r);
        d->ncache--;
        if (slot != &d->cache[d->ncache]) *slot = d->cache[d->ncache];
        return NULL;
    }
    PQclear(r);
    slot->sql = malloc(len + 1);
    if (!slot->sql) luaL_error(L, "out of memory");
    memcpy(slot->sql, sql, len);
    slot->sql[len] = 0;
    slot->len = len;
    slot->nparams = np;
    slot->used = ++d->clock;
    return slot;
}

static void note_changes(db_t *d, PGresult *r) {
    const char *n = PQcmdTuples(r);
    d->changes = n && *n ? atoll(n) : 0;
}

/* Runs the cached statement with the arguments first..top -> its result (status checked) | NULL with
 * the error pushed in *nret; raises on misuse. */
static PGresult *run_args(lua_State *L, db_t *d, const char *what, int first, int *nret) {
    size_t len;
    const char *sql = luaL_checklstring(L, 2, &len);
    struct cached *c = stmt_get(L, d, sql, len, nret);
    if (!c) return NULL;
    int top = lua_gettop(L), nargs = top >= first ? top - first + 1 : 0;
    if (nargs != c->nparams)
        luaL_error(L, "%s: %s", what, nargs < c->nparams ? "too few parameters" : "too many parameters");
    params_t p;
    if (!params_init(&p, nargs)) luaL_error(L, "out of memory");
    for (int i = 0; i < nargs; i++) {
        const char *e = bind_one(L, &p, i, first + i);
        if (e) { params_free(&p); luaL_error(L, "%s: %s", what, e); }
    }
    PGresult *r = PQexecPrepared(d->conn, c->name, nargs, p.values, p.lengths, p.formats, 0);
    params_free(&p);
    ExecStatusType s = PQresultStatus(r);
    if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK) {
        *nret = push_res_err(L, d, r);
        PQclear(r);
        return NULL;
    }
    note_changes(d, r);
    return r;
}

/* ---------- reading values ---------- */

static void push_value(lua_State *L, PGresult *r, int row, int col) {
    const char *v = PQgetvalue(r, row, col);
    int n = PQgetlength(r, row, col);
    switch (PQftype(r, col)) {
    case BOOLOID: lua_pushinteger(L, v[0] == 't'); break;
    case INT2OID: case INT4OID: case INT8OID: case OIDOID:
        lua_pushinteger(L, strtoll(v, NULL, 10));
        break;
    case FLOAT4OID: case FLOAT8OID: case NUMERICOID: {
        /* an integral numeric (sum() of integers) reads as an integer, as in SQLite */
        if (PQftype(r, col) == NUMERICOID && !strpbrk(v, ".eEN")) {
            lua_pushinteger(L, strtoll(v, NULL, 10));
            break;
        }
        lua_pushnumber(L, strtod(v, NULL));
        break;
    }
    case BYTEAOID: {
        size_t bn = 0;
        unsigned char *b = PQunescapeBytea((const unsigned char *)v, &bn);
        if (b) { lua_pushlstring(L, (const char *)b, bn); PQfreemem(b); }
        else lua_pushnil(L);
        break;
    }
    default: lua_pushlstring(L, v, (size_t)n);
    }
}

static void push_row(lua_State *L, PGresult *r, int row, int ncol) {
    lua_createtable(L, 0, ncol);
    for (int i = 0; i < ncol; i++) {
        if (PQgetisnull(r, row, i)) continue;
        lua_pushstring(L, PQfname(r, i));
        push_value(L, r, row, i);
        lua_rawset(L, -3);
    }
}

static void push_array_row(lua_State *L, PGresult *r, int row, int ncol) {
    lua_createtable(L, ncol, 0);
    for (int i = 0; i < ncol; i++) {
        if (PQgetisnull(r, row, i)) lua_pushnil(L);
        else push_value(L, r, row, i);
        lua_rawseti(L, -2, i + 1);
    }
}

static void push_names(lua_State *L, PGresult *r, int ncol) {
    lua_createtable(L, ncol, 0);
    for (int i = 0; i < ncol; i++) {
        lua_pushstring(L, PQfname(r, i));
        lua_rawseti(L, -2, i + 1);
    }
}

/* ---------- open ---------- */

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

static int l_open(lua_State *L) {
    const char *conninfo = luaL_checkstring(L, 1);
    if (!lua_isnoneornil(L, 2)) luaL_checktype(L, 2, LUA_TTABLE);
    int readonly = getopt_bool(L, 2, "readonly", 0);
    int busy = getopt_int(L, 2, "busy_timeout", 5000);
    double budget = 0;
    if (!lua_isnoneornil(L, 2)) {
        lua_getfield(L, 2, "timeout");
        if (!lua_isnil(L, -1)) {
            budget = luaL_checknumber(L, -1);
            if (!(budget >= 0)) return luaL_argerror(L, 2, "timeout must be seconds >= 0");
        }
        lua_pop(L, 1);
    }
    const char *why = pq_dl_load();
    if (why) {
        lua_pushnil(L);
        lua_pushfstring(L, "cantopen: %s", why);
        lua_pushliteral(L, "cantopen");
        return 3;
    }
    db_t *d = lua_newuserdatauv(L, sizeof *d, 0);
    memset(d, 0, sizeof *d);
    luaL_setmetatable(L, DB_MT);
    PGconn *conn = PQconnectdb(conninfo);
    if (PQstatus(conn) != CONNECTION_OK) {
        lua_pushnil(L);
        /* libpq's message names host and port, never the password */
        push_line(L, "cantopen", PQerrorMessage(conn));
        lua_pushliteral(L, "cantopen");
        PQfinish(conn);
        return 3;
    }
    PQsetNoticeProcessor(conn, quiet, NULL);
    d->conn = conn;
    d->readonly = readonly;
    char set[256];
    snprintf(set, sizeof set, "SET lock_timeout = %d; SET statement_timeout = %lld; SET TIME ZONE 'UTC'%s",
             busy, (long long)(budget * 1000), readonly ? "; SET default_transaction_read_only = on" : "");
    PGresult *r = PQexec(conn, set);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        int n = push_res_err(L, d, r);
        PQclear(r);
        db_release(d);
        return n;
    }
    PQclear(r);
    return 1;     /* d */
}

/* ---------- exec / query ---------- */

static int l_exec(lua_State *L) {
    db_t *d = check_db(L, 1);
    const char *sql = luaL_checkstring(L, 2);
    if (lua_gettop(L) == 2) {
        /* No parameters: the whole script in one simple query (migrations, BEGIN, COMMIT). */
        PGresult *r = PQexec(d->conn, sql);
        ExecStatusType s = PQresultStatus(r);
        if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK && s != PGRES_EMPTY_QUERY) {
            int n = push_res_err(L, d, r);
            PQclear(r);
            return n;
        }
        note_changes(d, r);
        PQclear(r);
        lua_pushboolean(L, 1);
        return 1;
    }
    int nret = 0;
    PGresult *r = run_args(L, d, "exec", 3, &nret);
    if (!r) return nret;
    PQclear(r);
    lua_pushboolean(L, 1);
    return 1;
}

static int l_query(lua_State *L) {
    db_t *d = check_db(L, 1);
    int nret = 0;
    PGresult *r = run_args(L, d, "query", 3, &nret);
    if (!r) return nret;
    int nrows = PQntuples(r), ncol = PQnfields(r);
    lua_createtable(L, nrows, 0);
    for (int i = 0; i < nrows; i++) {
        push_row(L, r, i, ncol);
        lua_rawseti(L, -2, i + 1);
    }
    PQclear(r);
    return 1;
}

/* exec_many(sql, rows, columns): as the sqlite module's: columns[j] is a field name of each row, {value =
 * v} or {list = t}; results[i] the rows statement i changed.  On failure: nil, err, token, i. */
enum { COL_KEY, COL_VALUE, COL_LIST };

static int l_exec_many(lua_State *L) {
    db_t *d = check_db(L, 1);
    luaL_checktype(L, 3, LUA_TTABLE);
    luaL_checktype(L, 4, LUA_TTABLE);
    lua_settop(L, 4);
    lua_Integer nrows = (lua_Integer)lua_rawlen(L, 3);
    int ncols = (int)lua_rawlen(L, 4);
    if (ncols == 0) return luaL_argerror(L, 4, "no columns");
    luaL_checkstack(L, ncols + 8, "too many columns");    /* the column specs, one slot each */
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
    int nret = 0;
    struct cached *c = stmt_get(L, d, sql, len, &nret);
    if (!c) return nret;
    if (c->nparams != ncols) return luaL_error(L, "exec_many: need one statement with exactly %d parameters", ncols);
    char name[16];
    memcpy(name, c->name, sizeof name);
    params_t p;
    if (!params_init(&p, ncols)) return luaL_error(L, "out of memory");
    lua_createtable(L, (int)(nrows > 1 << 24 ? 1 << 24 : nrows), 0);
    int results = lua_gettop(L);
    /* a row's table and its ncols values stay on the stack until the row is sent */
    luaL_checkstack(L, ncols + 8, "too many columns");
    /* Pipelined: a batch of rows sent at once, then their results read, one round trip per batch (the
     * results of a batch are small enough to wait in the socket's buffers while it is sent). */
    for (lua_Integer first = 1; first <= nrows; first += PIPE_BATCH) {
        lua_Integer last = first + PIPE_BATCH - 1 < nrows ? first + PIPE_BATCH - 1 : nrows;
        if (!PQenterPipelineMode(d->conn)) {
            params_free(&p);
            return push_res_err(L, d, NULL);
        }
        lua_Integer sent = first - 1;
        for (lua_Integer i = first; i <= last; i++) {
            if (lua_rawgeti(L, 3, i) != LUA_TTABLE) {
                lua_settop(L, results);
                break;     /* raised below, once the pipeline is drained */
            }
            int row = lua_gettop(L);
            const char *e = NULL;
            int j;
            for (j = 1; j <= ncols && !e; j++) {
                int spec = base + j;
                switch (kinds[j - 1]) {
                case COL_KEY: lua_pushvalue(L, spec); lua_rawget(L, row); break;
                case COL_LIST: lua_rawgeti(L, spec, i); break;
                default: lua_pushvalue(L, spec);
                }
                /* the value stays on the stack until the statement is sent (its string is bound as is) */
                e = bind_one(L, &p, j - 1, lua_gettop(L));
            }
            if (e) {
                lua_settop(L, results);
                lua_pushvalue(L, base + j - 1);
                lua_pushfstring(L, "exec_many: row %d column %s: %s", (int)i,
                                lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "?", e);
                lua_replace(L, -2);
                break;
            }
            int ok = PQsendQueryPrepared(d->conn, name, ncols, p.values, p.lengths, p.formats, 0);
            lua_settop(L, results);
            if (!ok) break;
            sent = i;
        }
        PQpipelineSync(d->conn);
        /* results of rows first..sent, then the sync point */
        lua_Integer at = first, bad = 0;
        PGresult *err = NULL;
        for (;;) {
            PGresult *r = PQgetResult(d->conn);
            if (!r) {
                if (PQstatus(d->conn) == CONNECTION_BAD) break;
                continue;              /* the end of one statement's results */
            }
            ExecStatusType st = PQresultStatus(r);
            if (st == PGRES_PIPELINE_SYNC) { PQclear(r); break; }
            if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
                note_changes(d, r);
                lua_pushinteger(L, d->changes);
                lua_rawseti(L, results, at);
                PQclear(r);
            } else if (!err && st != PGRES_PIPELINE_ABORTED) {
                err = r;
                bad = at;
            } else {
                PQclear(r);
            }
            at++;
        }
        PQexitPipelineMode(d->conn);
        if (err || sent < last) {
            params_free(&p);
            if (err) {
                int n = push_res_err(L, d, err);
                PQclear(err);
                lua_pushinteger(L, bad);
                return n + 1;
            }
            if (lua_gettop(L) > results) return lua_error(L);     /* a bad value: misuse */
            if (sent + 1 <= nrows && lua_rawgeti(L, 3, sent + 1) != LUA_TTABLE)
                return luaL_error(L, "exec_many: row %d is not a table", (int)(sent + 1));
            int n = push_res_err(L, d, NULL);
            lua_pushinteger(L, sent + 1);
            return n + 1;
        }
    }
    params_free(&p);
    return 1;
}

/* ---------- cursors ---------- */

/* On a read-only connection a cursor streams (`cachost query` over millions of rows in constant memory):
 * a server-side cursor (DECLARE ... NO SCROLL CURSOR FOR the statement, its parameters bound) fetched
 * FETCH_ROWS at a time, in a transaction of its own unless one is open; other statements may run on the
 * connection between fetches.  On a connection that writes, the store's transactions are the
 * connection's: a cursor holds its whole result instead. */
static cursor_t *check_cursor(lua_State *L, int i) { return luaL_checkudata(L, i, CURSOR_MT); }

static void cursor_release(cursor_t *c) {
    if (c->res) PQclear(c->res);
    c->res = NULL;
    if (c->name[0] && c->owner && c->owner->conn) {
        PGconn *conn = c->owner->conn;
        char q[64];
        if (PQtransactionStatus(conn) == PQTRANS_INTRANS) {
            snprintf(q, sizeof q, "CLOSE %s", c->name);
            PQclear(PQexec(conn, q));
        }
        if (c->began && c->began == c->owner->txn) {       /* it only read */
            PQclear(PQexec(conn, "ROLLBACK"));
            c->owner->txn = 0;
        }
    }
    c->name[0] = 0;
    c->owner = NULL;
}

/* The next FETCH_ROWS rows of a streaming cursor -> 1 (c->res holds them, maybe none) | 3 (error pushed) */
static int cursor_fetch(lua_State *L, cursor_t *c) {
    char q[64];
    snprintf(q, sizeof q, "FETCH %d FROM %s", FETCH_ROWS, c->name);
    PGresult *r = PQexec(c->owner->conn, q);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        int n = push_res_err(L, c->owner, r);
        PQclear(r);
        return n;
    }
    if (c->res) PQclear(c->res);
    c->res = r;
    c->row = 0;
    c->nrows = PQntuples(r);
    return 1;
}

/* DECLARE the statement at stack 2 (parameters first..last) as cursor c's -> 0 | 3 (error pushed); raises
 * on misuse as run_args does. */
static int cursor_declare(lua_State *L, db_t *d, cursor_t *c, int first, int last) {
    static unsigned long serial;
    size_t len;
    const char *sql = luaL_checklstring(L, 2, &len);
    int np = 0;
    char *text = translate(sql, len, &np);
    if (!text) luaL_error(L, "too many parameters, or out of memory");
    int nargs = last >= first ? last - first + 1 : 0;
    if (nargs != np) { free(text); luaL_error(L, "rows: %s", nargs < np ? "too few parameters" : "too many parameters"); }
    params_t p;
    if (!params_init(&p, nargs)) { free(text); luaL_error(L, "out of memory"); }
    for (int i = 0; i < nargs; i++) {
        const char *e = bind_one(L, &p, i, first + i);
        if (e) { params_free(&p); free(text); luaL_error(L, "rows: %s", e); }
    }
    snprintf(c->name, sizeof c->name, "cur%lu", ++serial);
    size_t n = strlen(text) + 64;
    char *decl = malloc(n);
    if (!decl) { params_free(&p); free(text); luaL_error(L, "out of memory"); }
    snprintf(decl, n, "DECLARE %s NO SCROLL CURSOR FOR %s", c->name, text);
    free(text);
    if (PQtransactionStatus(d->conn) == PQTRANS_IDLE) {
        PQclear(PQexec(d->conn, "BEGIN"));
        c->began = d->txn = ++d->txns;
    }
    c->owner = d;
    Oid types[np > 0 ? np : 1];
    memset(types, 0, sizeof types);
    PGresult *r;
    for (;;) {      /* parameters PostgreSQL cannot type are text, as in stmt_get */
        PQclear(PQexec(d->conn, "SAVEPOINT declare_"));
        r = PQexecParams(d->conn, decl, nargs, types, p.values, p.lengths, p.formats, 0);
        int which = untyped_param(r, np, types);
        if (!which) break;
        types[which - 1] = TEXTOID;
        PQclear(r);
        PQclear(PQexec(d->conn, "ROLLBACK TO declare_"));
    }
    free(decl);
    params_free(&p);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        /* back to before the DECLARE first: a transaction someone else began goes on */
        PQclear(PQexec(d->conn, "ROLLBACK TO declare_"));
        PQclear(PQexec(d->conn, "RELEASE declare_"));
        int nerr = push_res_err(L, d, r);
        PQclear(r);
        c->name[0] = 0;
        if (c->began) { PQclear(PQexec(d->conn, "ROLLBACK")); d->txn = 0; }
        c->began = 0;
        c->owner = NULL;
        return nerr;
    }
    PQclear(r);
    PQclear(PQexec(d->conn, "RELEASE declare_"));
    return 0;
}

static int open_cursor(lua_State *L, db_t *d) {
    int top = lua_gettop(L);
    PGresult *r = NULL;
    if (!d->readonly) {
        int nret = 0;
        r = run_args(L, d, "rows", 3, &nret);
        if (!r) return nret;
    }
    cursor_t *c = lua_newuserdatauv(L, sizeof *c, 2); /* uv1: column names, uv2: the db (kept alive) */
    memset(c, 0, sizeof *c);
    luaL_setmetatable(L, CURSOR_MT);
    int ci = lua_gettop(L);
    lua_pushvalue(L, 1);
    lua_setiuservalue(L, ci, 2);
    if (r) {
        c->res = r;
        c->nrows = PQntuples(r);
    } else {
        int n = cursor_declare(L, d, c, 3, top);
        if (n) return n;
        if (cursor_fetch(L, c) == 3) { cursor_release(c); return 3; }
    }
    c->ncol = PQnfields(c->res);
    push_names(L, c->res, c->ncol);
    lua_setiuservalue(L, ci, 1);
    lua_settop(L, ci);
    return 1;
}

static int l_cursor(lua_State *L) { return open_cursor(L, check_db(L, 1)); }

/* cursor:next([array]) -> row | nil (done, cursor closed) | nil, err, token (cursor closed) */
static int cursor_next(lua_State *L) {
    cursor_t *c = check_cursor(L, 1);
    if (!c->res) return 0;
    if (c->row >= c->nrows) {
        /* a streaming cursor's batch is used up: the next one, unless this one was the last */
        if (!c->name[0] || c->nrows < FETCH_ROWS || !c->owner || !c->owner->conn) { cursor_release(c); return 0; }
        int n = cursor_fetch(L, c);
        if (n == 3) { cursor_release(c); return 3; }
        if (c->nrows == 0) { cursor_release(c); return 0; }
    }
    if (lua_toboolean(L, 2)) push_array_row(L, c->res, c->row, c->ncol);
    else push_row(L, c->res, c->row, c->ncol);
    c->row++;
    return 1;
}

static int cursor_columns(lua_State *L) {
    check_cursor(L, 1);
    lua_getiuservalue(L, 1, 1);
    return 1;
}

static int cursor_close(lua_State *L) {
    cursor_release(check_cursor(L, 1));
    return 0;
}

static int cursor_tostring(lua_State *L) {
    cursor_t *c = check_cursor(L, 1);
    if (c->res) lua_pushfstring(L, "pg.cursor (%p)", (void *)c);
    else lua_pushliteral(L, "pg.cursor (closed)");
    return 1;
}

/* The for-loop step: raises on error (like io.lines), so a failing query never ends a loop silently. */
static int rows_step(lua_State *L) {
    check_cursor(L, 1);
    lua_settop(L, 1);
    int n = cursor_next(L);
    if (n == 3) { lua_pop(L, 1); return lua_error(L); }
    return n;
}

static int l_rows(lua_State *L) {
    db_t *d = check_db(L, 1);
    if (open_cursor(L, d) == 3) { lua_pop(L, 1); return lua_error(L); }
    lua_pushcfunction(L, rows_step);
    lua_insert(L, -2);
    lua_pushnil(L);
    lua_pushvalue(L, -2);
    return 4;
}

/* ---------- misc ---------- */

static int l_changes(lua_State *L) {
    lua_pushinteger(L, check_db(L, 1)->changes);
    return 1;
}

/* The id the last INSERT of this session took from a sequence (lastval()); 0 if none. */
static int l_last_rowid(lua_State *L) {
    db_t *d = check_db(L, 1);
    PGresult *r = PQexec(d->conn, PQtransactionStatus(d->conn) == PQTRANS_INTRANS
                                      ? "SAVEPOINT lastval_; SELECT lastval()" : "SELECT lastval()");
    lua_Integer id = 0;
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    /* in a transaction, a failed lastval() must not abort it */
    if (PQtransactionStatus(d->conn) == PQTRANS_INERROR) PQclear(PQexec(d->conn, "ROLLBACK TO lastval_"));
    if (PQtransactionStatus(d->conn) == PQTRANS_INTRANS) PQclear(PQexec(d->conn, "RELEASE lastval_"));
    lua_pushinteger(L, id);
    return 1;
}

static int l_autocommit(lua_State *L) {
    lua_pushboolean(L, PQtransactionStatus(check_db(L, 1)->conn) == PQTRANS_IDLE);
    return 1;
}

static int l_readonly(lua_State *L) {
    lua_pushboolean(L, check_db(L, 1)->readonly);
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

int luaopen_pg(lua_State *L) {
    host_class(L, DB_MT, db_meta, db_methods);
    host_class(L, CURSOR_MT, cursor_meta, cursor_methods);
    luaL_newmetatable(L, BLOB_MT);     /* the sqlite module's, if it registered it first */
    lua_pushliteral(L, "sqlite.blob");
    lua_setfield(L, -2, "__name");
    lua_pop(L, 1);
    luaL_newlib(L, funcs);
    return 1;
}
