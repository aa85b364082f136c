/* regex.c — Lua module `regex`: PCRE2 (8-bit, JIT when the platform has it) for the scans where Lua patterns
 * are too slow: an unanchored Lua find pays a function call per byte, PCRE2's JIT skips ahead on the first
 * code units a match can start with.  Subjects are byte strings (no UTF unless the "u" flag asks for it).
 *
 *   regex.compile(pattern[, flags]) -> re | nil, "syntax: <message> at <offset>"
 *       flags: i caseless, m multiline, s dotall, x extended, u UTF-8 (+ Unicode properties)
 *   re:find(subject[, init]) -> s, e, caps... | nil | nil, "too_complex" / "error: <message>"
 *       1-based inclusive positions like string.find; init may be negative (from the end); an unset
 *       group is false.  "^" is the start of the subject: anchor at init with \G.
 *   re:gmatch(subject[, init]) -> iterator of s, e, caps... (raises on a match error)
 *   regex.jit -> true when patterns are JIT-compiled
 *
 * Every match runs under explicit limits (one match context for all patterns): MATCH_LIMIT backtracking
 * steps, DEPTH_LIMIT nested backtracking points and HEAP_LIMIT KiB of backtracking memory; a pathological
 * pattern or subject reaching one (or the JIT stack) costs a bounded time and returns nil, "too_complex".
 * PCRE2's own heap default (20 GB) is no bound at all.
 *
 * One match data block lives in each compiled pattern and is reused by every call (the state is single
 * threaded and a match never calls back into Lua); it is freed with the pattern by __gc, so a Lua error
 * raised while pushing results leaks nothing. */
#include "host.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <string.h>

#define REGEX_MT "cachost.regex"
#define MATCH_LIMIT 10000000 /* PCRE2's default: the DLP candidates of a 1 MiB window of digits stay far below */
#define DEPTH_LIMIT 250000
#define HEAP_LIMIT 65536     /* KiB */

static pcre2_match_context *limits; /* shared: the state is single threaded */

static pcre2_match_context *match_limits(void)
{
    if (!limits) {
        limits = pcre2_match_context_create(NULL);
        if (!limits) return NULL;
        pcre2_set_match_limit(limits, MATCH_LIMIT);
        pcre2_set_depth_limit(limits, DEPTH_LIMIT);
        pcre2_set_heap_limit(limits, HEAP_LIMIT);
    }
    return limits;
}

typedef struct {
    pcre2_code *code;
    pcre2_match_data *md;
    int jit;      /* JIT-compiled: pcre2_jit_match, the fast path without the option checks */
    int ncap;     /* capture groups in the pattern */
} Regex;

static int jit_available(void)
{
    uint32_t have = 0;
    return pcre2_config(PCRE2_CONFIG_JIT, &have) >= 0 && have;
}

static int re_gc(lua_State *L)
{
    Regex *re = luaL_checkudata(L, 1, REGEX_MT);
    if (re->md) pcre2_match_data_free(re->md);
    if (re->code) pcre2_code_free(re->code);
    re->md = NULL;
    re->code = NULL;
    return 0;
}

static Regex *check_re(lua_State *L)
{
    Regex *re = luaL_checkudata(L, 1, REGEX_MT);
    if (!re->code) luaL_argerror(L, 1, "regex already freed");
    return re;
}

/* regex.compile(pattern[, flags]) */
static int l_compile(lua_State *L)
{
    size_t plen;
    const char *pat = luaL_checklstring(L, 1, &plen);
    const char *flags = luaL_optstring(L, 2, "");
    uint32_t opts = 0;
    for (const char *f = flags; *f; f++) {
        switch (*f) {
        case 'i': opts |= PCRE2_CASELESS; break;
        case 'm': opts |= PCRE2_MULTILINE; break;
        case 's': opts |= PCRE2_DOTALL; break;
        case 'x': opts |= PCRE2_EXTENDED; break;
        case 'u': opts |= PCRE2_UTF | PCRE2_UCP; break;
        default: return luaL_argerror(L, 2, "unknown flag (expected i, m, s, x, u)");
        }
    }
    /* the userdata first: from here on __gc owns whatever gets allocated */
    Regex *re = lua_newuserdatauv(L, sizeof *re, 0);
    memset(re, 0, sizeof *re);
    luaL_setmetatable(L, REGEX_MT);
    int errcode;
    PCRE2_SIZE erroff;
    re->code = pcre2_compile((PCRE2_SPTR)pat, plen, opts, &errcode, &erroff, NULL);
    if (!re->code) {
        PCRE2_UCHAR msg[256];
        if (pcre2_get_error_message(errcode, msg, sizeof msg) < 0) strcpy((char *)msg, "invalid pattern");
        lua_pushnil(L);
        lua_pushfstring(L, "syntax: %s at %d", (const char *)msg, (int)erroff);
        return 2;
    }
    /* JIT is an optimisation: a pattern it cannot compile still runs in the interpreter */
    re->jit = jit_available() && pcre2_jit_compile(re->code, PCRE2_JIT_COMPLETE) == 0;
    uint32_t ncap = 0;
    pcre2_pattern_info(re->code, PCRE2_INFO_CAPTURECOUNT, &ncap);
    re->ncap = (int)ncap;
    re->md = pcre2_match_data_create_from_pattern(re->code, NULL);
    if (!re->md) return luaL_error(L, "regex.compile: out of memory");
    return 1;
}

/* match at byte offset `off`; >0 on a match, PCRE2_ERROR_NOMATCH, or another (negative) error */
static int do_match(Regex *re, const char *s, size_t n, size_t off, uint32_t mopts)
{
    pcre2_match_context *mc = match_limits();
    if (!mc) return PCRE2_ERROR_NOMEMORY;
    if (re->jit) return pcre2_jit_match(re->code, (PCRE2_SPTR)s, n, off, mopts, re->md, mc);
    return pcre2_match(re->code, (PCRE2_SPTR)s, n, off, mopts, re->md, mc);
}

/* push s, e, captures of the last match; returns the count pushed */
static int push_match(lua_State *L, Regex *re, const char *s)
{
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(re->md);
    luaL_checkstack(L, 2 + re->ncap, "too many captures");
    lua_pushinteger(L, (lua_Integer)ov[0] + 1);
    lua_pushinteger(L, (lua_Integer)ov[1]);
    for (int i = 1; i <= re->ncap; i++) {
        if (ov[2 * i] == PCRE2_UNSET) lua_pushboolean(L, 0);
        else lua_pushlstring(L, s + ov[2 * i], ov[2 * i + 1] - ov[2 * i]);
    }
    return 2 + re->ncap;
}

static int push_error(lua_State *L, int rc)
{
    lua_pushnil(L);
    if (rc == PCRE2_ERROR_MATCHLIMIT || rc == PCRE2_ERROR_DEPTHLIMIT || rc == PCRE2_ERROR_HEAPLIMIT ||
        rc == PCRE2_ERROR_JIT_STACKLIMIT || rc == PCRE2_ERROR_NOMEMORY) {
        lua_pushliteral(L, "too_complex");
    } else {
        PCRE2_UCHAR msg[256];
        if (pcre2_get_error_message(rc, msg, sizeof msg) < 0) strcpy((char *)msg, "match failed");
        lua_pushfstring(L, "error: %s", (const char *)msg);
    }
    return 2;
}

/* string.find's init: 1-based, negative counts from the end; 0 when past the end (no match possible) */
static size_t start_offset(lua_State *L, int arg, size_t n, int *past)
{
    lua_Integer init = luaL_optinteger(L, arg, 1);
    *past = 0;
    if (init > 0) {
        if ((lua_Unsigned)init - 1 > n) *past = 1;
        return (size_t)init - 1;
    }
    if (init == 0 || (lua_Unsigned)-init > n) return 0;
    return n - (size_t)-init;
}

/* re:find(subject[, init]) */
static int re_find(lua_State *L)
{
    Regex *re = check_re(L);
    size_t n;
    const char *s = luaL_checklstring(L, 2, &n);
    int past;
    size_t off = start_offset(L, 3, n, &past);
    if (past) {
        lua_pushnil(L);
        return 1;
    }
    int rc = do_match(re, s, n, off, 0);
    if (rc == PCRE2_ERROR_NOMATCH) {
        lua_pushnil(L);
        return 1;
    }
    if (rc < 0) return push_error(L, rc);
    return push_match(L, re, s);
}

/* gmatch iterator: upvalues regex, subject, next offset, "last match was empty at that offset" */
static int gmatch_next(lua_State *L)
{
    Regex *re = luaL_checkudata(L, lua_upvalueindex(1), REGEX_MT);
    if (!re->code) return luaL_error(L, "regex already freed");
    size_t n;
    const char *s = lua_tolstring(L, lua_upvalueindex(2), &n);
    size_t off = (size_t)lua_tointeger(L, lua_upvalueindex(3));
    if (off > n) return 0;
    /* after an empty match, the next one may start there only if it is not empty (no endless loop) */
    uint32_t mopts = lua_toboolean(L, lua_upvalueindex(4)) ? PCRE2_NOTEMPTY_ATSTART : 0;
    int rc = do_match(re, s, n, off, mopts);
    if (rc == PCRE2_ERROR_NOMATCH) {
        lua_pushinteger(L, (lua_Integer)n + 1);
        lua_replace(L, lua_upvalueindex(3));
        return 0;
    }
    if (rc < 0) {
        push_error(L, rc);
        return luaL_error(L, "regex gmatch: %s", lua_tostring(L, -1));
    }
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(re->md);
    lua_pushinteger(L, (lua_Integer)ov[1]);
    lua_replace(L, lua_upvalueindex(3));
    lua_pushboolean(L, ov[1] == ov[0]);
    lua_replace(L, lua_upvalueindex(4));
    return push_match(L, re, s);
}

/* re:gmatch(subject[, init]) */
static int re_gmatch(lua_State *L)
{
    check_re(L);
    size_t n;
    luaL_checklstring(L, 2, &n);
    int past;
    size_t off = start_offset(L, 3, n, &past);
    lua_settop(L, 2);
    lua_pushinteger(L, past ? (lua_Integer)n + 1 : (lua_Integer)off);
    lua_pushboolean(L, 0);
    lua_pushcclosure(L, gmatch_next, 4);
    return 1;
}

static int re_tostring(lua_State *L)
{
    Regex *re = luaL_checkudata(L, 1, REGEX_MT);
    lua_pushfstring(L, "regex (%s%p)", re->jit ? "jit, " : "", (void *)re);
    return 1;
}

int luaopen_regex(lua_State *L)
{
    static const luaL_Reg methods[] = {{"find", re_find}, {"gmatch", re_gmatch}, {NULL, NULL}};
    static const luaL_Reg meta[] = {{"__gc", re_gc}, {"__tostring", re_tostring}, {NULL, NULL}};
    static const luaL_Reg fns[] = {{"compile", l_compile}, {NULL, NULL}};
    host_class(L, REGEX_MT, meta, methods);
    luaL_newlib(L, fns);
    lua_pushboolean(L, jit_available());
    lua_setfield(L, -2, "jit");
    return 1;
}
