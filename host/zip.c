/* zip.c — the `zip` Lua module: read zip archives held in memory (libzip), for the DLP extractors.
 *
 *   zip.entries(bytes) -> {{name =, size =, compressed =, encrypted = bool}, ...} | nil, err
 *   zip.read(bytes, name[, max]) -> data | nil, err
 *
 * err tokens: "zip: <libzip reason>" (not a zip, truncated, corrupt), "not_found", "encrypted",
 * "too_large" (the entry inflates past max; default 64 MiB: zip bombs stop there).
 * The archive handle lives in a userdata with __gc from the moment it is opened, so a raise (out of
 * memory while building the result) never leaks it.  The bytes must stay alive during the call only.
 */
#include <string.h>
#include <zip.h>

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

int luaopen_zip(lua_State *L) {
    luaL_newmetatable(L, ZIPBOX_MT);
    lua_pushcfunction(L, box_gc);
    lua_setfield(L, -2, "__gc");
    lua_pop(L, 1);
    static const luaL_Reg fns[] = {{"entries", l_entries}, {"read", l_read}, {NULL, NULL}};
    luaL_newlib(L, fns);
    return 1;
}
