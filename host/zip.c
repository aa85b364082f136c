/* zip.c — the `zip` Lua module: read zip archives held in memory (libzip), for the DLP extractors.
 *
 *   zip.entries(bytes) -> {{name =, size =, compressed =, encrypted = bool}, ...} | nil, err
 *   zip.read(bytes, name[, max]) -> data | nil, err
 *
 * err tokens: "zip: <libzip reason>" (not a zip, truncated, corrupt), "not_found", "encrypted",
 * "too_large" (the entry inflates past max; default 64 MiB: zip bombs stop there).
 * The archive handle lives in a userdata with __gc from the moment it is opened, so a raise (out of
 * memory while building the result) never leaks it.  The bytes must stay alive during the call only.
 *
 * gzip (RFC 1952, zlib), for what providers hand over gzipped (AWS CloudTrail's log files in S3):
 *   zip.gunzip(s[, max]) -> data | nil, err, token   every member of s in turn, as `gzip -d` reads
 *        concatenated members; token "corrupt" (not gzip, damaged, cut short: err says which) or
 *        "too_large" (the output passes max bytes, default 64 MiB: gzip bombs stop there)
 *   zip.gzip(s[, level]) -> gzip member              level 1..9 (default 6)
 * The zlib stream lives in a userdata with __gc too.
 */
#include <limits.h>
#include <string.h>
#include <zip.h>
#include <zlib.h>

#include "host.h"

#define ZIPBOX_MT "cachost.zipbox"
#define DEFAULT_MAX (64 << 20)

typedef struct {
    zip_t *za;
    zip_file_t *zf;
} zipbox_t;

static int box_gc(lua_State *L) {
    zipbox_t *b = luaL_checkudata(L, 1, ZIPBOX_MT);
    if (b->zf) zip_fclose(b->zf);
    if (b->za) zip_discard(b->za); /* read-only: discard, never write back */
    b->zf = NULL;
    b->za = NULL;
    return 0;
}

/* Open the archive in bytes (arg 1) into a new box left on the stack; on failure push nil, err -> 0. */
static zipbox_t *open_box(lua_State *L) {
    size_t len;
    const char *bytes = luaL_checklstring(L, 1, &len);
    zipbox_t *b = lua_newuserdatauv(L, sizeof *b, 0);
    b->za = NULL;
    b->zf = NULL;
    luaL_setmetatable(L, ZIPBOX_MT);
    zip_error_t err;
    zip_error_init(&err);
    zip_source_t *src = zip_source_buffer_create(bytes, len, 0, &err);
    if (src) {
        b->za = zip_open_from_source(src, ZIP_RDONLY | ZIP_CHECKCONS, &err);
        if (!b->za) zip_source_free(src); /* on success the archive owns the source */
    }
    if (!b->za) {
        lua_pushnil(L);
        lua_pushfstring(L, "zip: %s", zip_error_strerror(&err));
        zip_error_fini(&err);
        return NULL;
    }
    zip_error_fini(&err);
    return b;
}

static int l_entries(lua_State *L) {
    zipbox_t *b = open_box(L);
    if (!b) return 2;
    zip_int64_t n = zip_get_num_entries(b->za, 0);
    lua_createtable(L, n > 0 && n < 4096 ? (int)n : 0, 0);
    for (zip_int64_t i = 0; i < n; i++) {
        zip_stat_t st;
        if (zip_stat_index(b->za, (zip_uint64_t)i, 0, &st) != 0) continue;
        lua_createtable(L, 0, 4);
        lua_pushstring(L, (st.valid & ZIP_STAT_NAME) && st.name ? st.name : "");
        lua_setfield(L, -2, "name");
        lua_pushinteger(L, (st.valid & ZIP_STAT_SIZE) ? (lua_Integer)st.size : -1);
        lua_setfield(L, -2, "size");
        lua_pushinteger(L, (st.valid & ZIP_STAT_COMP_SIZE) ? (lua_Integer)st.comp_size : -1);
        lua_setfield(L, -2, "compressed");
        lua_pushboolean(L, (st.valid & ZIP_STAT_ENCRYPTION_METHOD) && st.encryption_method != ZIP_EM_NONE);
        lua_setfield(L, -2, "encrypted");
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    return 1;
}

static int l_read(lua_State *L) {
    const char *name = luaL_checkstring(L, 2);
    lua_Integer max = luaL_optinteger(L, 3, DEFAULT_MAX);
    luaL_argcheck(L, max >= 0, 3, "must be >= 0");
    zipbox_t *b = open_box(L);
    if (!b) return 2;
    zip_int64_t idx = zip_name_locate(b->za, name, 0);
    zip_stat_t st;
    if (idx < 0 || zip_stat_index(b->za, (zip_uint64_t)idx, 0, &st) != 0) {
        lua_pushnil(L);
        lua_pushliteral(L, "not_found");
        return 2;
    }
    if ((st.valid & ZIP_STAT_ENCRYPTION_METHOD) && st.encryption_method != ZIP_EM_NONE) {
        lua_pushnil(L);
        lua_pushliteral(L, "encrypted");
        return 2;
    }
    if ((st.valid & ZIP_STAT_SIZE) && st.size > (zip_uint64_t)max) {
        lua_pushnil(L);
        lua_pushliteral(L, "too_large");
        return 2;
    }
    b->zf = zip_fopen_index(b->za, (zip_uint64_t)idx, 0);
    if (!b->zf) {
        lua_pushnil(L);
        lua_pushfstring(L, "zip: %s", zip_strerror(b->za));
        return 2;
    }
    luaL_Buffer buf;
    luaL_buffinit(L, &buf);
    size_t total = 0;
    for (;;) { /* the header's size may lie: count what really inflates */
        char *p = luaL_prepbuffer(&buf);
        zip_int64_t got = zip_fread(b->zf, p, LUAL_BUFFERSIZE);
        if (got < 0) {
            lua_pushnil(L);
            lua_pushfstring(L, "zip: %s", zip_file_strerror(b->zf));
            return 2;
        }
        if (got == 0) break;
        total += (size_t)got;
        if (total > (size_t)max) {
            lua_pushnil(L);
            lua_pushliteral(L, "too_large");
            return 2;
        }
        luaL_addsize(&buf, (size_t)got);
    }
    luaL_pushresult(&buf);
    return 1;
}

/* ---- gzip ---- */
#define GZBOX_MT "cachost.gzbox"

typedef struct {
    z_stream zs;
    int inflating, deflating; /* which end call the stream needs */
} gzbox_t;

static int gz_gc(lua_State *L) {
    gzbox_t *b = luaL_checkudata(L, 1, GZBOX_MT);
    if (b->inflating) inflateEnd(&b->zs);
    if (b->deflating) deflateEnd(&b->zs);
    b->inflating = b->deflating = 0;
    return 0;
}

static gzbox_t *new_gzbox(lua_State *L) {
    gzbox_t *b = lua_newuserdatauv(L, sizeof *b, 0);
    memset(b, 0, sizeof *b);
    luaL_setmetatable(L, GZBOX_MT);
    return b;
}

static int gz_fail(lua_State *L, const char *token, const char *why) {
    lua_pushnil(L);
    lua_pushfstring(L, "%s: gzip: %s", token, why);
    lua_pushstring(L, token);
    return 3;
}

static int l_gunzip(lua_State *L) {
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    lua_Integer max = luaL_optinteger(L, 2, DEFAULT_MAX);
    luaL_argcheck(L, max >= 0, 2, "max must not be negative");
    if (n == 0) return gz_fail(L, "corrupt", "empty input");
    if (n > UINT_MAX) return gz_fail(L, "too_large", "input over 4 GiB");
    gzbox_t *b = new_gzbox(L);
    if (inflateInit2(&b->zs, 16 + MAX_WBITS) != Z_OK) return luaL_error(L, "gunzip: out of memory");
    b->inflating = 1;
    b->zs.next_in = (Bytef *)s;
    b->zs.avail_in = (uInt)n;
    luaL_Buffer buf;
    luaL_buffinit(L, &buf);
    size_t total = 0;
    for (;;) {
        char *p = luaL_prepbuffer(&buf);
        b->zs.next_out = (Bytef *)p;
        b->zs.avail_out = LUAL_BUFFERSIZE;
        int rc = inflate(&b->zs, Z_NO_FLUSH);
        size_t got = LUAL_BUFFERSIZE - b->zs.avail_out;
        total += got;
        if (total > (size_t)max) return gz_fail(L, "too_large", "the output passes its limit");
        luaL_addsize(&buf, got);
        if (rc == Z_STREAM_END) {
            if (b->zs.avail_in == 0) break;
            if (inflateReset(&b->zs) != Z_OK) return gz_fail(L, "corrupt", "cannot read the next member");
            continue; /* another member follows */
        }
        if (rc == Z_BUF_ERROR && b->zs.avail_in == 0) return gz_fail(L, "corrupt", "cut short");
        if (rc != Z_OK) return gz_fail(L, "corrupt", b->zs.msg ? b->zs.msg : "damaged");
    }
    inflateEnd(&b->zs);
    b->inflating = 0;
    luaL_pushresult(&buf);
    return 1;
}

static int l_gzip(lua_State *L) {
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    int level = (int)luaL_optinteger(L, 2, 6);
    luaL_argcheck(L, level >= 1 && level <= 9, 2, "level out of range (1..9)");
    luaL_argcheck(L, n <= UINT_MAX, 1, "input over 4 GiB");
    gzbox_t *b = new_gzbox(L);
    if (deflateInit2(&b->zs, level, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return luaL_error(L, "gzip: out of memory");
    b->deflating = 1;
    b->zs.next_in = (Bytef *)s;
    b->zs.avail_in = (uInt)n;
    luaL_Buffer buf;
    luaL_buffinit(L, &buf);
    int rc;
    do {
        char *p = luaL_prepbuffer(&buf);
        b->zs.next_out = (Bytef *)p;
        b->zs.avail_out = LUAL_BUFFERSIZE;
        rc = deflate(&b->zs, Z_FINISH);
        if (rc == Z_STREAM_ERROR) return luaL_error(L, "gzip: stream error");
        luaL_addsize(&buf, LUAL_BUFFERSIZE - b->zs.avail_out);
    } while (rc != Z_STREAM_END);
    deflateEnd(&b->zs);
    b->deflating = 0;
    luaL_pushresult(&buf);
    return 1;
}

int luaopen_zip(lua_State *L) {
    luaL_newmetatable(L, ZIPBOX_MT);
    lua_pushcfunction(L, box_gc);
    lua_setfield(L, -2, "__gc");
    lua_pop(L, 1);
    luaL_newmetatable(L, GZBOX_MT);
    lua_pushcfunction(L, gz_gc);
    lua_setfield(L, -2, "__gc");
    lua_pop(L, 1);
    static const luaL_Reg fns[] = {{"entries", l_entries}, {"read", l_read}, {"gunzip", l_gunzip}, {"gzip", l_gzip},
                                   {NULL, NULL}};
    luaL_newlib(L, fns);
    return 1;
}
