/* xml.c — Lua module `xml`: XML documents (the replies of APIs that speak XML) to Lua tables, over libexpat.
 *
 *   xml.decode(text[, {max_depth=, max_size=, max_nodes=}]) -> root | nil, "bad_xml: <detail>", "bad_xml"
 *
 * Every element becomes one table:
 *   { name = "Tag", attrs = { attr = "value", ... }, text = "its own character data", child1, child2, ... }
 * name and attribute names are as written (a prefix stays "p:Tag"; xmlns declarations are ordinary attrs);
 * text is the concatenation of the element's direct character data (CDATA included, entities and character
 * references resolved, whitespace kept as is), "" when there is none; child elements are the array part in
 * document order.  Comments and processing instructions are dropped.
 *
 * What it refuses (nil, "bad_xml: ...", "bad_xml"): malformed documents (expat's message with line and
 * column), any DOCTYPE (so no entity declarations, no external entities or DTDs, no "billion laughs": the
 * APIs this reads never send one), documents over max_size bytes (default 32 MiB), nesting deeper than
 * max_depth (default 128) and more than max_nodes elements (default 2,000,000: bounds the memory a
 * small-tagged document costs).  A wrong argument raises.
 *
 * The parser lives in a userdata with a __gc, so a Lua error raised inside a callback (out of memory) while
 * building the tables frees it and the text buffer. */
#include "host.h"

#include <expat.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PARSER_MT "cachost.xml.parser"
#define DEFAULT_MAX_DEPTH 128
#define DEFAULT_MAX_SIZE (32 * 1024 * 1024)
#define DEFAULT_MAX_NODES 2000000

typedef struct {
    XML_Parser p;
    lua_State *L;
    char *text;          /* the character data of every open element, outermost first */
    size_t len, cap;
    size_t *start;       /* start[d]: where the text of the open element at depth d begins in text */
    int depth, max_depth;
    long nodes, max_nodes;
    int base;            /* stack index below the first open element */
    char err[160];       /* our own reason to stop, when we stopped the parser */
} Parse;

static void parse_free(Parse *ps)
{
    if (ps->p) XML_ParserFree(ps->p);
    free(ps->text);
    free(ps->start);
    ps->p = NULL;
    ps->text = NULL;
    ps->start = NULL;
}

static int parse_gc(lua_State *L)
{
    parse_free(luaL_checkudata(L, 1, PARSER_MT));
    return 0;
}

/* Stop the parse with a reason of ours (it wins over expat's "parsing aborted"). */
static void stop(Parse *ps, const char *why)
{
    if (!ps->err[0]) snprintf(ps->err, sizeof ps->err, "%s", why);
    XML_StopParser(ps->p, XML_FALSE);
}

static void XMLCALL on_start(void *ud, const XML_Char *name, const XML_Char **atts)
{
    Parse *ps = ud;
    lua_State *L = ps->L;
    if (ps->err[0]) return;
    if (ps->depth >= ps->max_depth) {
        char why[80];
        snprintf(why, sizeof why, "nesting deeper than %d", ps->max_depth);
        stop(ps, why);
        return;
    }
    if (++ps->nodes > ps->max_nodes) {
        char why[80];
        snprintf(why, sizeof why, "more than %ld elements", ps->max_nodes);
        stop(ps, why);
        return;
    }
    luaL_checkstack(L, 4, "xml: too deep");
    lua_createtable(L, 0, 3);
    lua_pushstring(L, name);
    lua_setfield(L, -2, "name");
    lua_newtable(L);
    for (int i = 0; atts[i]; i += 2) {
        lua_pushstring(L, atts[i + 1]);
        lua_setfield(L, -2, atts[i]);
    }
    lua_setfield(L, -2, "attrs");
    ps->start[ps->depth++] = ps->len;
}

static void XMLCALL on_end(void *ud, const XML_Char *name)
{
    Parse *ps = ud;
    lua_State *L = ps->L;
    if (ps->err[0]) return;
    size_t from = ps->start[--ps->depth];
    lua_pushlstring(L, ps->text ? ps->text + from : "", ps->len - from);
    lua_setfield(L, -2, "text");
    ps->len = from;                         /* the parent's text continues where it was */
    if (ps->depth > 0) lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);   /* into the parent */
}

static void XMLCALL on_text(void *ud, const XML_Char *s, int n)
{
    Parse *ps = ud;
    if (ps->err[0] || ps->depth == 0 || n <= 0) return;
    if (ps->len + (size_t)n > ps->cap) {
        size_t cap = ps->cap ? ps->cap : 256;
        while (cap < ps->len + (size_t)n) cap *= 2;
        char *t = realloc(ps->text, cap);
        if (!t) {
            stop(ps, "out of memory");
            return;
        }
        ps->text = t;
        ps->cap = cap;
    }
    memcpy(ps->text + ps->len, s, (size_t)n);
    ps->len += (size_t)n;
}

static void XMLCALL on_doctype(void *ud, const XML_Char *name, const XML_Char *sysid, const XML_Char *pubid,
                               int has_internal_subset)
{
    stop(ud, "DOCTYPE not allowed");
}

static void XMLCALL on_entity(void *ud, const XML_Char *name, int is_param, const XML_Char *value, int len,
                              const XML_Char *base, const XML_Char *sysid, const XML_Char *pubid,
                              const XML_Char *notation)
{
    stop(ud, "entity declarations not allowed");
}

static long opt_int(lua_State *L, int t, const char *key, long dflt, long max)
{
    lua_getfield(L, t, key);
    long v = dflt;
    if (!lua_isnil(L, -1)) {
        if (!lua_isinteger(L, -1)) luaL_error(L, "xml.decode: %s must be an integer", key);
        lua_Integer i = lua_tointeger(L, -1);
        if (i < 1 || i > max) luaL_error(L, "xml.decode: %s must be between 1 and %d", key, (int)max);
        v = (long)i;
    }
    lua_pop(L, 1);
    return v;
}

static int fail(lua_State *L, const char *detail)
{
    lua_pushnil(L);
    lua_pushfstring(L, "bad_xml: %s", detail);
    lua_pushliteral(L, "bad_xml");
    return 3;
}

/* xml.decode(text[, opts]) */
static int l_decode(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    long max_depth = DEFAULT_MAX_DEPTH, max_size = DEFAULT_MAX_SIZE, max_nodes = DEFAULT_MAX_NODES;
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        max_depth = opt_int(L, 2, "max_depth", max_depth, 10000);
        max_size = opt_int(L, 2, "max_size", max_size, INT_MAX);
        max_nodes = opt_int(L, 2, "max_nodes", max_nodes, INT_MAX);
    }
    lua_settop(L, 2);
    if (n > (size_t)max_size) {
        char why[96];
        snprintf(why, sizeof why, "document of %zu bytes is over the limit of %ld", n, max_size);
        return fail(L, why);
    }

    Parse *ps = lua_newuserdatauv(L, sizeof *ps, 0);
    memset(ps, 0, sizeof *ps);
    luaL_setmetatable(L, PARSER_MT);
    ps->L = L;
    ps->max_depth = (int)max_depth;
    ps->max_nodes = max_nodes;
    ps->start = malloc(sizeof *ps->start * (size_t)max_depth);
    ps->p = XML_ParserCreate(NULL);
    if (!ps->p || !ps->start) return luaL_error(L, "xml.decode: out of memory");
    XML_SetUserData(ps->p, ps);
    XML_SetElementHandler(ps->p, on_start, on_end);
    XML_SetCharacterDataHandler(ps->p, on_text);
    XML_SetStartDoctypeDeclHandler(ps->p, on_doctype);
    XML_SetEntityDeclHandler(ps->p, on_entity);
    XML_SetParamEntityParsing(ps->p, XML_PARAM_ENTITY_PARSING_NEVER);
    ps->base = lua_gettop(L);

    enum XML_Status st = XML_Parse(ps->p, s, (int)n, XML_TRUE);
    if (st != XML_STATUS_OK || ps->err[0]) {
        char why[256];
        if (ps->err[0])
            snprintf(why, sizeof why, "%s (line %lu)", ps->err, (unsigned long)XML_GetCurrentLineNumber(ps->p));
        else
            snprintf(why, sizeof why, "%s at line %lu, column %lu", XML_ErrorString(XML_GetErrorCode(ps->p)),
                     (unsigned long)XML_GetCurrentLineNumber(ps->p),
                     (unsigned long)XML_GetCurrentColumnNumber(ps->p) + 1);
        parse_free(ps);   /* now rather than at the next collection (the __gc finds nothing left) */
        lua_settop(L, ps->base - 1);
        return fail(L, why);
    }
    parse_free(ps);
    /* a complete document leaves exactly its root above the parser (expat refuses one without) */
    if (lua_gettop(L) != ps->base + 1) {
        lua_settop(L, ps->base - 1);
        return fail(L, "no root element");
    }
    return 1;
}

int luaopen_xml(lua_State *L)
{
    static const luaL_Reg fns[] = {{"decode", l_decode}, {NULL, NULL}};
    if (luaL_newmetatable(L, PARSER_MT)) {
        lua_pushcfunction(L, parse_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
    luaL_newlib(L, fns);
    return 1;
}
