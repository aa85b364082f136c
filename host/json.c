/* json.c — the `json` Lua module on YAJL (streaming parser and generator).
 *
 * Why not lua-cjson: Debian 12 ships lua-cjson 2.1.0, which decodes every number as a float (1 -> 1.0,
 * so ids turn into "123.0" in URLs), writes numbers with 14 significant digits, cannot tell [] from {}
 * and has no array marks.  YAJL hands us raw number text and container events, so integers stay
 * integers, floats round-trip, and arrays keep a mark.
 *
 * Memory: the YAJL handle lives in a userdata box whose __gc frees it, so a Lua error (out of memory)
 * raised from a parser callback cannot leak it.  Operational failures (bad input, unencodable value)
 * unwind by return codes and end as nil, "json: <detail>".
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <limits.h>
#include <string.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_parse.h>

#include "host.h"

#define ARRAY_MT "cachost.json.array"
#define DECODE_MAX_DEPTH 512        /* deeper input is refused, not recursed into */
#define ENCODE_MAX_DEPTH YAJL_MAX_DEPTH /* the generator's fixed limit (128); also stops cycles */
#define SPARSE_SAFE 10              /* like lua-cjson: {[1]=..,[3]=..} is an array with null holes, */
#define SPARSE_RATIO 2              /* but {[1000]=x} is refused as excessively sparse */

/* ---- boxes: a handle owned by a userdata ---- */

struct box { void *h; int parser; };

static int box_gc(lua_State *L) {
    struct box *b = lua_touserdata(L, 1);
    if (b->h) {
        if (b->parser) yajl_free(b->h);
        else yajl_gen_free(b->h);
        b->h = NULL;
    }
    return 0;
}

static struct box *box_new(lua_State *L, int parser) {
    struct box *b = lua_newuserdatauv(L, sizeof *b, 0);
    b->h = NULL;
    b->parser = parser;
    luaL_setmetatable(L, "cachost.json.box");
    return b;
}

/* ---- encoding ---- */

struct enc { lua_State *L; yajl_gen g; const char *err; };

static int gen_ok(struct enc *e, yajl_gen_status st) {
    if (st == yajl_gen_status_ok) return 1;
    if (!e->err)
        e->err = st == yajl_gen_invalid_string ? "json: invalid UTF-8 in string"
               : st == yajl_max_depth_exceeded ? "json: too deep" : "json: generator error";
    return 0;
}

/* Shortest of %.14g..%.17g that reads back to the same double; always looks like a float. */
static int fmt_float(char *buf, size_t size, double d) {
    int n = 0;
    for (int prec = 14; prec <= 17; prec++) {
        n = snprintf(buf, size, "%.*g", prec, d);
        if (strtod(buf, NULL) == d) break;
    }
    if (!strpbrk(buf, ".eEn")) {
        memcpy(buf + n, ".0", 3);
        n += 2;
    }
    return n;
}

static int enc_value(struct enc *e, int idx, int depth);

/* Sort an object's keys: index array of stack positions whose strings are anchored on the stack. */
static lua_State *sort_L;
static int key_cmp(const void *a, const void *b) {
    size_t la, lb;
    const char *x = lua_tolstring(sort_L, *(const int *)a, &la);
    const char *y = lua_tolstring(sort_L, *(const int *)b, &lb);
    int c = memcmp(x, y, la < lb ? la : lb);
    return c ? c : (la > lb) - (la < lb);
}

static int enc_object(struct enc *e, int t, lua_Integer count, int depth) {
    lua_State *L = e->L;
    /* Push (key-as-string, original key) pairs: keys are strings or numbers (like lua-cjson). */
    /* the keys go on the stack to be sorted: an object larger than the stack can grow is an error of the
     * value (nil, err), not of the caller */
    if (count > (INT_MAX - 4) / 2 || !lua_checkstack(L, (int)(count * 2 + 4))) {
        e->err = "json: object too large (too many keys)";
        return 0;
    }
    int base = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, t)) {
        lua_pop(L, 1);
        int kt = lua_type(L, -1);
        if (kt == LUA_TNUMBER) {
            lua_pushvalue(L, -1);
            lua_tostring(L, -1); /* converts the copy; the original key stays a number for lua_next */
        } else if (kt == LUA_TSTRING) {
            lua_pushvalue(L, -1);
        } else {
            e->err = "json: table key must be a string or number";
            lua_settop(L, base);
            return 0;
        }
        /* stack: ... key keystr -> keep keystr, origkey; continue iteration from key */
        lua_insert(L, -2);      /* keystr key */
        lua_pushvalue(L, -1);   /* keystr key key */
    }
    /* stack after base: keystr1 key1 keystr2 key2 ... */
    int n = (lua_gettop(L) - base) / 2;
    int *order = lua_newuserdatauv(L, (size_t)(n ? n : 1) * sizeof *order, 0);
    for (int i = 0; i < n; i++) order[i] = base + 1 + 2 * i;
    sort_L = L;
    qsort(order, (size_t)n, sizeof *order, key_cmp);
    int ok = gen_ok(e, yajl_gen_map_open(e->g));
    for (int i = 0; ok && i < n; i++) {
        size_t kl;
        const char *ks = lua_tolstring(L, order[i], &kl);
        ok = gen_ok(e, yajl_gen_string(e->g, (const unsigned char *)ks, kl));
        if (!ok) break;
        lua_pushvalue(L, order[i] + 1);
        lua_rawget(L, t);
        ok = enc_value(e, lua_gettop(L), depth + 1);
        lua_pop(L, 1);
    }
    if (ok) ok = gen_ok(e, yajl_gen_map_close(e->g));
    lua_settop(L, base);
    return ok;
}

static int enc_array(struct enc *e, int t, lua_Integer n, int depth) {
    lua_State *L = e->L;
    int ok = gen_ok(e, yajl_gen_array_open(e->g));
    for (lua_Integer i = 1; ok && i <= n; i++) {
        lua_rawgeti(L, t, i);
        ok = enc_value(e, lua_gettop(L), depth + 1);
        lua_pop(L, 1);
    }
    return ok && gen_ok(e, yajl_gen_array_close(e->g));
}

static int enc_table(struct enc *e, int t, int depth) {
    lua_State *L = e->L;
    if (depth >= ENCODE_MAX_DEPTH) {
        e->err = "json: too deep (or a cycle)";
        return 0;
    }
    luaL_checkstack(L, 8, "json: too deep");
    if (lua_getmetatable(L, t)) {
        luaL_getmetatable(L, ARRAY_MT);
        int marked = lua_rawequal(L, -1, -2);
        lua_pop(L, 2);
        if (marked) return enc_array(e, t, (lua_Integer)lua_rawlen(L, t), depth);
    }
    /* unmarked: an array iff every key is a positive integer and it is not excessively sparse */
    lua_Integer count = 0, max = 0;
    int array = 1;
    lua_pushnil(L);
    while (lua_next(L, t)) {
        lua_pop(L, 1);
        count++;
        if (array && lua_isinteger(L, -1) && lua_tointeger(L, -1) >= 1) {
            lua_Integer k = lua_tointeger(L, -1);
            if (k > max) max = k;
        } else {
            array = 0;
        }
    }
    if (count == 0) array = 0; /* {} unless marked with json.array */
    if (array) {
        if (max > SPARSE_SAFE && max > count * SPARSE_RATIO) {
            e->err = "json: excessively sparse array";
            return 0;
        }
        return enc_array(e, t, max, depth);
    }
    return enc_object(e, t, count, depth);
}

static int enc_value(struct enc *e, int idx, int depth) {
    lua_State *L = e->L;
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
        return gen_ok(e, yajl_gen_null(e->g));
    case LUA_TBOOLEAN:
        return gen_ok(e, yajl_gen_bool(e->g, lua_toboolean(L, idx)));
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx)) return gen_ok(e, yajl_gen_integer(e->g, (long long)lua_tointeger(L, idx)));
        else {
            double d = lua_tonumber(L, idx);
            char buf[64];
            if (!isfinite(d)) {
                e->err = "json: cannot encode NaN or infinity";
                return 0;
            }
            int n = fmt_float(buf, sizeof buf, d);
            return gen_ok(e, yajl_gen_number(e->g, buf, (size_t)n));
        }
    case LUA_TSTRING: {
        size_t len;
        const char *s = lua_tolstring(L, idx, &len);
        return gen_ok(e, yajl_gen_string(e->g, (const unsigned char *)s, len));
    }
    case LUA_TTABLE:
        return enc_table(e, idx, depth);
    case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L, idx) == NULL) return gen_ok(e, yajl_gen_null(e->g)); /* json.null */
        e->err = "json: cannot encode userdata";
        return 0;
    case LUA_TFUNCTION:
        e->err = "json: cannot encode function";
        return 0;
    case LUA_TTHREAD:
        e->err = "json: cannot encode thread";
        return 0;
    default:
        e->err = "json: cannot encode userdata";
        return 0;
    }
}

static int encode(lua_State *L, int pretty) {
    luaL_checkany(L, 1);
    lua_settop(L, 1);
    struct box *b = box_new(L, 0);
    yajl_gen g = yajl_gen_alloc(NULL);
    if (!g) return luaL_error(L, "json: out of memory");
    b->h = g;
    yajl_gen_config(g, yajl_gen_validate_utf8, 1);
    if (pretty) {
        yajl_gen_config(g, yajl_gen_beautify, 1);
        yajl_gen_config(g, yajl_gen_indent_string, "  ");
    }
    struct enc e = {L, g, NULL};
    int r = enc_value(&e, 1, 0);
    if (!r) {
        lua_pushnil(L);
        lua_pushstring(L, e.err ? e.err : "json: generator error");
        return 2;
    }
    const unsigned char *buf;
    size_t len;
    yajl_gen_get_buf(g, &buf, &len);
    if (!pretty) {
        lua_pushlstring(L, (const char *)buf, len);
        return 1; /* the box frees the generator when collected */
    }
    /* YAJL beautifies an empty container as "[\n\n  ]": fold it to "[]".  Safe to do on the text: a
     * newline never occurs inside a generated string (it is escaped). */
    luaL_Buffer out;
    luaL_buffinitsize(L, &out, len);
    for (size_t i = 0; i < len; i++) {
        luaL_addchar(&out, (char)buf[i]);
        if ((buf[i] == '[' || buf[i] == '{') && i + 1 < len && buf[i + 1] == '\n') {
            size_t j = i + 2;
            while (j < len && buf[j] == '\n') j++;
            while (j < len && buf[j] == ' ') j++;
            if (j < len && buf[j] == (buf[i] == '[' ? ']' : '}') && j > i + 2 && buf[i + 2] == '\n') {
                luaL_addchar(&out, (char)buf[j]);
                i = j;
            }
        }
    }
    /* and drop the trailing newline */
    if (luaL_bufflen(&out) > 0 && luaL_buffaddr(&out)[luaL_bufflen(&out) - 1] == '\n') luaL_buffsub(&out, 1);
    luaL_pushresult(&out);
    return 1;
}

static int j_encode(lua_State *L) { return encode(L, 0); }
static int j_pretty(lua_State *L) { return encode(L, 1); }

/* ---- decoding ---- */

#define SOURCES "cachost.json.sources"
#define PARTIAL_NAME "json.partial"

/* fields: the members of a listing's items to build (the others are parsed and validated, never built).
 * A tree: each node is a list of member names (linked by `next`), each either built whole (child -1) or an
 * object (or an array of objects) of which only the members of node `child` are built.  key: the stack
 * index of the name as a Lua string, made once per decode (not hashed and interned again for each item). */
struct field { const char *name; size_t len; int child, next, key; };
/* n: its members; mt: stack index of its metatable (partial objects); mask: keybit of each member's name,
 * so that most undeclared keys are told apart without a compare */
struct fnode { int head, n, mt; unsigned long long mask; };

static unsigned long long keybit(const char *s, size_t len) {
    return 1ULL << ((len * 8 + (len ? (unsigned char)s[0] : 0)) & 63);
}

struct dec {
    lua_State *L;
    int depth;
    const char *err;
    /* sources: the exact text of each object in the first array met (a listing's items) */
    yajl_handle h;
    const char *text;
    int want_sources, items_depth;   /* items_depth: 0 none yet, -1 done */
    int sources, array_mt;           /* stack indices of the sources table and the arrays' metatable */
    size_t start;
    /* fields: nodes[0] restricts each item; node[depth]: the node restricting the object open at that
     * depth, or each object in the array open there (-1: built whole); skip: > 0 inside a value not built
     * (its nesting), skip_next: the next value is not built; next_node: the node of the value after the
     * key just read */
    struct field *fields;
    struct fnode *nodes;
    int skip, skip_next, next_node;
    int node[DECODE_MAX_DEPTH + 1];
    unsigned char is_map[DECODE_MAX_DEPTH + 1];
    lua_Integer count[DECODE_MAX_DEPTH + 1];
};

/* A value is on top of the stack: store it into the open container (or leave it: top level). */
static int add(struct dec *d) {
    if (d->depth == 0) return 1;
    if (d->is_map[d->depth]) lua_rawset(d->L, -3);
    else lua_rawseti(d->L, -2, ++d->count[d->depth]);
    return 1;
}

/* A scalar that is not built: inside a skipped value, or the skipped value itself. */
static int skipped(struct dec *d) {
    if (d->skip) return 1;
    if (d->skip_next) { d->skip_next = 0; return 1; }
    return 0;
}

static int cb_null(void *ctx) {
    struct dec *d = ctx;
    if (skipped(d)) return 1;
    lua_pushlightuserdata(d->L, NULL);
    return add(d);
}
static int cb_bool(void *ctx, int v) {
    struct dec *d = ctx;
    if (skipped(d)) return 1;
    lua_pushboolean(d->L, v);
    return add(d);
}
static int cb_number(void *ctx, const char *s, size_t len) {
    struct dec *d = ctx;
    char buf[128];
    if (skipped(d)) return 1;
    /* lua_stringtonumber gives an integer for integral text that fits, a float otherwise */
    if (len < sizeof buf) {
        memcpy(buf, s, len);
        buf[len] = '\0';
        if (lua_stringtonumber(d->L, buf) == 0) lua_pushnumber(d->L, strtod(buf, NULL));
    } else {
        lua_pushlstring(d->L, s, len);
        double v = strtod(lua_tostring(d->L, -1), NULL);
        lua_pop(d->L, 1);
        lua_pushnumber(d->L, v);
    }
    return add(d);
}
static int cb_string(void *ctx, const unsigned char *s, size_t len) {
    struct dec *d = ctx;
    if (skipped(d)) return 1;
    lua_pushlstring(d->L, (const char *)s, len);
    return add(d);
}
static int open_container(struct dec *d, int map) {
    if (d->depth >= DECODE_MAX_DEPTH) {
        d->err = "json: too deep";
        return 0; /* cancels the parse */
    }
    if (d->skip || d->skip_next) {          /* a value not built: only its depth is followed */
        d->skip++;
        d->skip_next = 0;
        d->depth++;
        return 1;
    }
    luaL_checkstack(d->L, 4, "json: too deep");
    int item = d->items_depth > 0 && d->depth == d->items_depth;
    if (d->want_sources && item && map)
        d->start = yajl_get_bytes_consumed(d->h) - 1;          /* just after its '{' */
    /* the node restricting this object (or the objects in this array): the root for an item, a declared
     * member's path inside one (through arrays: each element as the array) */
    int node = -1;
    if (d->fields) {
        if (item && map) node = 0;
        else if (d->node[d->depth] >= 0) node = d->is_map[d->depth] ? d->next_node : d->node[d->depth];
    }
    /* a restricted object holds at most its declared members: sized once, never rehashed */
    lua_createtable(d->L, 0, map && node >= 0 ? d->nodes[node].n : 0);
    if (!map) {
        lua_pushvalue(d->L, d->array_mt);
        lua_setmetatable(d->L, -2);
    } else if (node >= 0) {
        lua_pushvalue(d->L, d->nodes[node].mt);
        lua_setmetatable(d->L, -2);
    }
    d->depth++;
    d->node[d->depth] = node;
    if ((d->want_sources || d->fields) && !map && d->items_depth == 0) d->items_depth = d->depth;
    d->is_map[d->depth] = (unsigned char)map;
    d->count[d->depth] = 0;
    return 1;
}
static int cb_start_map(void *ctx) { return open_container(ctx, 1); }
static int cb_start_array(void *ctx) { return open_container(ctx, 0); }
static int cb_key(void *ctx, const unsigned char *s, size_t len) {
    struct dec *d = ctx;
    if (d->skip) return 1;
    int node = d->node[d->depth];
    if (node < 0) {
        lua_pushlstring(d->L, (const char *)s, len);
        return 1;
    }
    /* a restricted object: is this member declared? */
    int f = -1;
    if (d->nodes[node].mask & keybit((const char *)s, len)) {
        f = d->nodes[node].head;
        while (f >= 0 && (d->fields[f].len != len || memcmp(d->fields[f].name, s, len) != 0)) f = d->fields[f].next;
    }
    if (f < 0) { d->skip_next = 1; return 1; }
    d->next_node = d->fields[f].child;
    lua_pushvalue(d->L, d->fields[f].key);
    return 1;
}
static int cb_end(void *ctx) {
    struct dec *d = ctx;
    if (d->skip) {                           /* the end of a container inside a value not built */
        d->skip--;
        d->depth--;
        return 1;
    }
    if (d->items_depth > 0) {
        if (d->want_sources && d->depth == d->items_depth + 1 && d->is_map[d->depth]) {   /* an item closes: sources[item] = text */
            size_t end = yajl_get_bytes_consumed(d->h);
            lua_pushvalue(d->L, -1);
            lua_pushlstring(d->L, d->text + d->start, end - d->start);
            lua_rawset(d->L, d->sources);
        } else if (d->depth == d->items_depth) {
            d->items_depth = -1;
        }
    }
    d->depth--;
    return add(d);
}

static const yajl_callbacks callbacks = {
    cb_null, cb_bool, NULL, NULL, cb_number, cb_string,
    cb_start_map, cb_key, cb_end, cb_start_array, cb_end,
};

/* A partial object's __index (upvalues: the declared names as a set, the object's path prefix, where the
 * fields were declared): a declared member that is absent is nil; any other name is a misuse, raised, as
 * a silent nil would lose data. */
static int partial_index(lua_State *L) {
    if (lua_type(L, 2) != LUA_TSTRING) return 0;       /* not a JSON member name: nothing */
    lua_pushvalue(L, 2);
    if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL) return 0;
    luaL_where(L, 1);                                   /* the code that read it */
    const char *origin = lua_tostring(L, lua_upvalueindex(3));
    lua_pushfstring(L, "json: undeclared field '%s%s': the item was decoded with only its declared fields; "
                       "add it to %s", lua_tostring(L, lua_upvalueindex(2)), lua_tostring(L, 2),
                    origin && *origin ? origin : "the fields given to json.decode");
    lua_concat(L, 2);
    return lua_error(L);
}

/* Compiles opts.fields (a list of "name" or "name.member..." strings) into d->fields/d->nodes, allocated
 * in a userdata left on the stack with each node's metatable (so they live as long as the decode). */
static void compile_fields(lua_State *L, struct dec *d, int list, const char *origin) {
    lua_Integer n = luaL_len(L, list);
    size_t segs = 0;
    for (lua_Integer i = 1; i <= n; i++) {
        size_t len;
        if (lua_rawgeti(L, list, i) != LUA_TSTRING) luaL_error(L, "json.decode: fields[%d] is not a string", (int)i);
        const char *s = lua_tolstring(L, -1, &len);
        lua_pop(L, 1);                   /* the string stays alive in the list */
        if (len == 0 || s[0] == '.' || s[len - 1] == '.' || strstr(s, ".."))
            luaL_error(L, "json.decode: fields[%d] '%s' is not a name or a dotted path", (int)i, s);
        segs++;
        for (size_t k = 0; k < len; k++) segs += s[k] == '.';
    }
    if (segs > INT_MAX / 4) luaL_error(L, "json.decode: too many fields");
    char *mem = lua_newuserdatauv(L, segs * sizeof(struct field) + (segs + 1) * sizeof(struct fnode), 0);
    d->fields = (struct field *)mem;
    d->nodes = (struct fnode *)(mem + segs * sizeof(struct field));
    int nf = 0, nn = 1;
    d->nodes[0].head = -1;
    d->nodes[0].n = 0;
    d->nodes[0].mask = 0;
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, list, i);
        const char *s = lua_tostring(L, -1);
        lua_pop(L, 1);
        int cur = 0;
        for (;;) {
            const char *dot = strchr(s, '.');
            size_t len = dot ? (size_t)(dot - s) : strlen(s);
            int f = d->nodes[cur].head;
            while (f >= 0 && (d->fields[f].len != len || memcmp(d->fields[f].name, s, len) != 0)) f = d->fields[f].next;
            if (f < 0) {                 /* a new member of this node */
                f = nf++;
                d->fields[f] = (struct field){ s, len, -1, d->nodes[cur].head, 0 };
                d->nodes[cur].head = f;
                d->nodes[cur].n++;
                d->nodes[cur].mask |= keybit(s, len);
                if (dot) {
                    d->fields[f].child = nn;
                    d->nodes[nn].head = -1;
                    d->nodes[nn].mask = 0;
                    d->nodes[nn++].n = 0;
                }
            } else if (!dot) {
                d->fields[f].child = -1;   /* the whole member: it wins over paths inside it */
            }
            if (!dot || d->fields[f].child < 0) break;   /* the whole member is built already */
            cur = d->fields[f].child;
            s = dot + 1;
        }
    }
    /* each member's name, on the stack for the decode */
    luaL_checkstack(L, nf + nn + 8, "json.decode: too many fields");
    for (int f = 0; f < nf; f++) {
        lua_pushlstring(L, d->fields[f].name, d->fields[f].len);
        d->fields[f].key = lua_gettop(L);
    }
    /* each node's metatable: __index with its declared names and its path ("client." for client.x) */
    for (int k = 0; k < nn; k++) {
        lua_createtable(L, 0, 2);
        d->nodes[k].mt = lua_gettop(L);
        lua_createtable(L, 0, d->nodes[k].n);               /* upvalue 1: the declared names */
        for (int f = d->nodes[k].head; f >= 0; f = d->fields[f].next) {
            lua_pushvalue(L, d->fields[f].key);
            lua_pushboolean(L, 1);
            lua_rawset(L, -3);
        }
        lua_pushliteral(L, "");                             /* upvalue 2: the path, found below */
        lua_pushstring(L, origin);                          /* upvalue 3 */
        lua_pushcclosure(L, partial_index, 3);
        lua_setfield(L, -2, "__index");
        lua_pushliteral(L, PARTIAL_NAME);
        lua_setfield(L, -2, "__name");
    }
    /* the paths: a child's is its parent's, its member's name and a dot */
    for (int k = 0; k < nn; k++) {
        for (int f = d->nodes[k].head; f >= 0; f = d->fields[f].next) {
            int c = d->fields[f].child;
            if (c < 0) continue;
            lua_getfield(L, d->nodes[k].mt, "__index");
            lua_getupvalue(L, -1, 2);
            lua_pushlstring(L, d->fields[f].name, d->fields[f].len);
            lua_pushliteral(L, ".");
            lua_concat(L, 3);
            lua_getfield(L, d->nodes[c].mt, "__index");
            lua_insert(L, -2);
            lua_setupvalue(L, -2, 2);
            lua_pop(L, 2);
        }
    }
}

/* json.decode(s[, {sources = true, fields = {...}, origin = "..."}]): with sources, json.source(item) is
 * the exact text of each object of the first array in s (a listing's items), so the provider's raw JSON
 * is kept as it came.  With fields, those items are built with only the declared members (the whole text
 * is still parsed and validated); reading any other member raises (see partial_index). */
static int j_decode(lua_State *L) {
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    int want = 0, list = 0;
    const char *origin = "";
    lua_settop(L, 2);
    if (lua_istable(L, 2)) {
        lua_getfield(L, 2, "sources");
        want = lua_toboolean(L, -1);
        if (lua_getfield(L, 2, "fields") == LUA_TTABLE) list = lua_gettop(L);
        else if (!lua_isnil(L, -1)) return luaL_error(L, "json.decode: fields must be a list of names");
        if (lua_getfield(L, 2, "origin") == LUA_TSTRING) origin = lua_tostring(L, -1);
    }
    struct dec *d = lua_newuserdatauv(L, sizeof *d, 0);
    d->L = L;
    d->depth = 0;
    d->err = NULL;
    d->want_sources = want;
    d->items_depth = 0;
    d->text = s;
    d->fields = NULL;
    d->nodes = NULL;
    d->skip = d->skip_next = 0;
    d->next_node = -1;
    d->node[0] = -1;
    if (list) compile_fields(L, d, list, origin);
    lua_getfield(L, LUA_REGISTRYINDEX, SOURCES);
    d->sources = lua_gettop(L);
    luaL_getmetatable(L, ARRAY_MT);
    d->array_mt = lua_gettop(L);
    struct box *b = box_new(L, 1);
    int base = lua_gettop(L);           /* the decoded value goes just above */
    yajl_handle h = yajl_alloc(&callbacks, NULL, d);
    if (!h) return luaL_error(L, "json: out of memory");
    b->h = h;
    d->h = h;
    yajl_status st = yajl_parse(h, (const unsigned char *)s, len);
    if (st == yajl_status_ok) st = yajl_complete_parse(h);
    if (st != yajl_status_ok) {
        lua_settop(L, base);
        lua_pushnil(L);
        if (d->err) {
            lua_pushstring(L, d->err);
        } else {
            /* YAJL's message ends in a newline; keep one line */
            unsigned char *m = yajl_get_error(h, 0, NULL, 0);
            size_t n = m ? strlen((char *)m) : 0;
            while (n > 0 && (m[n - 1] == '\n' || m[n - 1] == ' ' || m[n - 1] == '.')) n--;
            if (m) m[n] = '\0';
            lua_pushfstring(L, "json: %s", m ? (const char *)m : "parse error");
            if (m) yajl_free_error(h, m);
        }
        return 2;
    }
    if (lua_gettop(L) != base + 1) { /* nothing decoded (cannot happen after a complete parse) */
        lua_pushnil(L);
        lua_pushliteral(L, "json: no value");
        return 2;
    }
    return 1;
}

/* ---- the rest ---- */

static int j_source(lua_State *L) {
    lua_getfield(L, LUA_REGISTRYINDEX, SOURCES);
    lua_pushvalue(L, 1);
    lua_rawget(L, -2);
    return 1;
}

static int j_array(lua_State *L) {
    if (lua_isnoneornil(L, 1)) {
        lua_settop(L, 0);
        lua_newtable(L);
    }
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    luaL_setmetatable(L, ARRAY_MT);
    return 1;
}

static int j_is_array(lua_State *L) {
    int r = 0;
    if (lua_type(L, 1) == LUA_TTABLE && lua_getmetatable(L, 1)) {
        luaL_getmetatable(L, ARRAY_MT);
        r = lua_rawequal(L, -1, -2);
    }
    lua_pushboolean(L, r);
    return 1;
}

int luaopen_json(lua_State *L) {
    static const luaL_Reg fns[] = {
        {"encode", j_encode}, {"decode", j_decode}, {"pretty", j_pretty},
        {"array", j_array}, {"is_array", j_is_array}, {"source", j_source}, {NULL, NULL}};
    lua_newtable(L);                                  /* sources: weak keys, gone with their items */
    lua_createtable(L, 0, 1);
    lua_pushliteral(L, "k");
    lua_setfield(L, -2, "__mode");
    lua_setmetatable(L, -2);
    lua_setfield(L, LUA_REGISTRYINDEX, SOURCES);
    if (luaL_newmetatable(L, "cachost.json.box")) {
        lua_pushcfunction(L, box_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
    if (luaL_newmetatable(L, ARRAY_MT)) {
        lua_pushliteral(L, "json.array");
        lua_setfield(L, -2, "__name");
    }
    lua_pop(L, 1);
    luaL_newlib(L, fns);
    lua_pushlightuserdata(L, NULL); /* the same sentinel as lua-cjson's cjson.null */
    lua_setfield(L, -2, "null");
    luaL_getmetatable(L, ARRAY_MT);
    lua_setfield(L, -2, "array_mt");
    return 1;
}
