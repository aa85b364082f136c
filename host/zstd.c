/* zstd.c — Lua module `zstd`: Zstandard compression (libzstd), with dictionaries, so that many small
 * records of one kind (an app's events) compress well one by one.
 *
 *   zstd.compress(s[, dict][, level]) -> frame          level 1..19 (default 3); the frame records its size
 *                                                        and the id of the dictionary it needs
 *   zstd.decompress(frame[, dict][, max]) -> s | nil, err, token
 *        max: the largest output accepted (default 64 MiB).  token: corrupt (not a zstd frame, damaged),
 *        dictionary (the frame needs a dictionary that was not given, or another one), too_large
 *   zstd.train(samples[, size]) -> dictionary bytes | nil, err, "train"   samples: a list of strings;
 *        size: the dictionary's largest size in bytes (default 64 KiB).  zstd needs enough samples (about
 *        100 times the dictionary's size in total is good); too few -> nil, err, "train"
 *   zstd.dictionary(bytes[, level]) -> dict             a prepared dictionary (userdata: reusable, cheap)
 *   zstd.dict_id(s) -> id | nil                         the dictionary a frame needs (0: none), or the id of
 *                                                        dictionary bytes; nil when s is neither
 *   zstd.is_frame(s) -> boolean                         s starts with zstd's frame magic number
 *
 * A wrong argument raises; damaged input returns nil, err, token.  zstd_decompress_buf is the same
 * decompression for other C modules (sqlite.c's unzstd() SQL function). */
#include "host.h"

#define ZSTD_STATIC_LINKING_ONLY
#include <zdict.h>
#include <zstd.h>
#include <stdlib.h>
#include <string.h>

#define DICT_MT "cachost.zstd.dict"
#define DEFAULT_MAX (64u * 1024 * 1024)
#define DEFAULT_DICT_SIZE (64 * 1024)

typedef struct {
    ZSTD_CDict *c;
    ZSTD_DDict *d;
    unsigned id;
    int level;
} zdict_t;

static ZSTD_CCtx *cctx;   /* one of each for the process: compress/decompress never yield */
static ZSTD_DCtx *dctx;
static char outbuf[64 * 1024];   /* compress's output when it fits */

static zdict_t *opt_dict(lua_State *L, int i) {
    return lua_isnoneornil(L, i) ? NULL : luaL_checkudata(L, i, DICT_MT);
}

static int l_compress(lua_State *L) {
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    zdict_t *dict = opt_dict(L, 2);
    int level = (int)luaL_optinteger(L, 3, dict ? dict->level : 3);
    luaL_argcheck(L, level >= 1 && level <= ZSTD_maxCLevel(), 3, "level out of range");
    if (!cctx && !(cctx = ZSTD_createCCtx())) return luaL_error(L, "zstd: out of memory");
    /* a small value (a row's JSON) into a buffer kept for the process (like cctx): a Lua buffer of its size
     * is a new userdata box each time, copied again into the string (~0.3 us a row) */
    size_t cap = ZSTD_compressBound(n);
    luaL_Buffer b;
    char *out = cap <= sizeof outbuf ? outbuf : luaL_buffinitsize(L, &b, cap);
    size_t r = dict ? ZSTD_compress_usingCDict(cctx, out, cap, s, n, dict->c)
                    : ZSTD_compressCCtx(cctx, out, cap, s, n, level);
    if (ZSTD_isError(r)) return luaL_error(L, "zstd: %s", ZSTD_getErrorName(r));
    if (out == outbuf) lua_pushlstring(L, out, r);
    else luaL_pushresultsize(&b, r);
    return 1;
}

/* Checks a frame before decompressing it: NULL and its content size in *size, else the message and *token. */
static const char *frame_check(const void *src, size_t n, const void *ddict, size_t max, size_t *size,
                               const char **token) {
    *token = "corrupt";
    unsigned long long sz = ZSTD_getFrameContentSize(src, n);
    if (sz == ZSTD_CONTENTSIZE_ERROR) return "not a zstd frame";
    if (sz == ZSTD_CONTENTSIZE_UNKNOWN) return "zstd frame without its size";
    if (sz > max) { *token = "too_large"; return "zstd frame larger than the limit"; }
    unsigned need = ZSTD_getDictID_fromFrame(src, n);
    if (need && (!ddict || ZSTD_getDictID_fromDDict(ddict) != need)) {
        *token = "dictionary";
        return "zstd frame needs a dictionary it was not given";
    }
    *size = (size_t)sz;
    return NULL;
}

static const char *frame_into(const void *src, size_t n, const void *ddict, char *dst, size_t size) {
    if (!dctx && !(dctx = ZSTD_createDCtx())) return "out of memory";
    size_t r = ddict ? ZSTD_decompress_usingDDict(dctx, dst, size, src, n, ddict)
                     : ZSTD_decompressDCtx(dctx, dst, size, src, n);
    if (ZSTD_isError(r)) return ZSTD_getErrorName(r);
    return r == size ? NULL : "zstd frame shorter than its size";
}

/* Decompresses src into a malloc'd buffer (*out, *outlen; free it).  NULL on success, else the message and
 * *token. */
const char *zstd_decompress_buf(const void *src, size_t n, const void *ddict, size_t max, char **out,
                                size_t *outlen, const char **token) {
    size_t size;
    *out = NULL;
    const char *err = frame_check(src, n, ddict, max, &size, token);
    if (err) return err;
    char *buf = malloc(size ? size : 1);
    if (!buf) return "out of memory";
    if ((err = frame_into(src, n, ddict, buf, size))) {
        free(buf);
        return err;
    }
    *out = buf;
    *outlen = size;
    return NULL;
}

void *zstd_ddict_new(const void *dict, size_t n) { return ZDICT_getDictID(dict, n) ? ZSTD_createDDict(dict, n) : NULL; }
void zstd_ddict_free(void *ddict) { ZSTD_freeDDict(ddict); }
unsigned zstd_ddict_id(const void *ddict) { return ZSTD_getDictID_fromDDict(ddict); }
/* -1: not a zstd frame; else the id of the dictionary it needs (0: none) */
long zstd_frame_dict(const void *src, size_t n) {
    if (n < 4 || ZSTD_getFrameContentSize(src, n) == ZSTD_CONTENTSIZE_ERROR) return -1;
    return (long)ZSTD_getDictID_fromFrame(src, n);
}

static int l_decompress(lua_State *L) {
    size_t n, size;
    const char *s = luaL_checklstring(L, 1, &n);
    zdict_t *dict = opt_dict(L, 2);
    lua_Integer max = luaL_optinteger(L, 3, DEFAULT_MAX);
    luaL_argcheck(L, max >= 0, 3, "max must be >= 0");
    const char *token;
    const char *err = frame_check(s, n, dict ? dict->d : NULL, (size_t)max, &size, &token);
    luaL_Buffer b;
    if (!err) {
        char *out = luaL_buffinitsize(L, &b, size);   /* a Lua buffer: freed on any error */
        if (!(err = frame_into(s, n, dict ? dict->d : NULL, out, size))) {
            luaL_pushresultsize(&b, size);
            return 1;
        }
    }
    lua_pushnil(L);
    lua_pushfstring(L, "%s: %s", token, err);
    lua_pushstring(L, token);
    return 3;
}

static int l_train(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_Integer cap = luaL_optinteger(L, 2, DEFAULT_DICT_SIZE);
    luaL_argcheck(L, cap >= 256 && cap <= 16 * 1024 * 1024, 2, "size must be 256 B .. 16 MiB");
    lua_Integer count = (lua_Integer)lua_rawlen(L, 1);
    luaL_argcheck(L, count > 0 && count < (1 << 24), 1, "need 1 .. 16M samples");
    size_t total = 0;
    for (lua_Integer i = 1; i <= count; i++) {
        lua_rawgeti(L, 1, i);
        if (lua_type(L, -1) != LUA_TSTRING) return luaL_argerror(L, 1, "samples must be strings");
        total += lua_rawlen(L, -1);
        lua_pop(L, 1);
    }
    /* both buffers are Lua userdata, so an error anywhere frees them */
    size_t *sizes = lua_newuserdatauv(L, sizeof(size_t) * (size_t)count, 0);
    char *all = lua_newuserdatauv(L, total ? total : 1, 0);
    char *dict = lua_newuserdatauv(L, (size_t)cap, 0);
    size_t at = 0;
    for (lua_Integer i = 1; i <= count; i++) {
        size_t len;
        lua_rawgeti(L, 1, i);
        const char *s = lua_tolstring(L, -1, &len);
        memcpy(all + at, s, len);
        at += len;
        sizes[i - 1] = len;
        lua_pop(L, 1);
    }
    size_t r = ZDICT_trainFromBuffer(dict, (size_t)cap, all, sizes, (unsigned)count);
    if (ZDICT_isError(r)) {
        lua_pushnil(L);
        lua_pushfstring(L, "train: %s (%d samples, %d bytes)", ZDICT_getErrorName(r), (int)count, (int)total);
        lua_pushliteral(L, "train");
        return 3;
    }
    lua_pushlstring(L, dict, r);
    return 1;
}

static int dict_gc(lua_State *L) {
    zdict_t *d = luaL_checkudata(L, 1, DICT_MT);
    ZSTD_freeCDict(d->c);
    ZSTD_freeDDict(d->d);
    d->c = NULL;
    d->d = NULL;
    return 0;
}

static int dict_tostring(lua_State *L) {
    zdict_t *d = luaL_checkudata(L, 1, DICT_MT);
    lua_pushfstring(L, "zstd.dict (id %d)", (int)d->id);
    return 1;
}

static int l_dictionary(lua_State *L) {
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    int level = (int)luaL_optinteger(L, 2, 3);
    luaL_argcheck(L, level >= 1 && level <= ZSTD_maxCLevel(), 2, "level out of range");
    unsigned id = ZDICT_getDictID(s, n);
    if (!id) {
        lua_pushnil(L);
        lua_pushliteral(L, "dictionary: not a zstd dictionary");
        lua_pushliteral(L, "dictionary");
        return 3;
    }
    zdict_t *d = lua_newuserdatauv(L, sizeof *d, 0);
    memset(d, 0, sizeof *d);
    luaL_setmetatable(L, DICT_MT);
    d->id = id;
    d->level = level;
    d->c = ZSTD_createCDict(s, n, level);
    d->d = ZSTD_createDDict(s, n);
    if (!d->c || !d->d) {
        lua_pushnil(L);
        lua_pushliteral(L, "dictionary: not a usable zstd dictionary");
        lua_pushliteral(L, "dictionary");
        return 3;
    }
    return 1;
}

static int l_is_frame(lua_State *L) {
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    lua_pushboolean(L, n >= 4 && (unsigned char)s[0] == 0x28 && (unsigned char)s[1] == 0xB5 &&
                       (unsigned char)s[2] == 0x2F && (unsigned char)s[3] == 0xFD);
    return 1;
}

static int l_dict_id(lua_State *L) {
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    if (ZSTD_getFrameContentSize(s, n) != ZSTD_CONTENTSIZE_ERROR) {
        lua_pushinteger(L, ZSTD_getDictID_fromFrame(s, n));
        return 1;
    }
    unsigned id = ZDICT_getDictID(s, n);
    if (id) lua_pushinteger(L, id);
    else lua_pushnil(L);
    return 1;
}

static const luaL_Reg funcs[] = {{"compress", l_compress}, {"decompress", l_decompress}, {"train", l_train},
                                 {"dictionary", l_dictionary}, {"dict_id", l_dict_id}, {"is_frame", l_is_frame},
                                 {NULL, NULL}};

void zstd_shutdown(void) {
    ZSTD_freeCCtx(cctx);
    ZSTD_freeDCtx(dctx);
    cctx = NULL;
    dctx = NULL;
}

int luaopen_zstd(lua_State *L) {
    luaL_newmetatable(L, DICT_MT);
    lua_pushcfunction(L, dict_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, dict_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pop(L, 1);
    luaL_newlib(L, funcs);
    return 1;
}
