/* geoip.c — the `geoip` Lua module: IP geolocation from a MaxMind DB file (libmaxminddb), for the
 * impossible-travel policy when a provider reports an address but no coordinates.
 *
 *   geoip.open(path) -> db | nil, "geoip: <reason>"
 *   db:lookup(ip) -> {lat=, lon=, accuracy_km=, city=, country=, subdivision=} | nil (not in the database)
 *                  | nil, "bad_address" | nil, "geoip: <reason>" (a corrupt record)
 *   db:metadata() -> {database_type=, build_epoch=, ip_version=, node_count=, record_size=}
 *   db:close()    (also __gc and __close; using a closed db raises)
 *
 * The file is memory-mapped (MMDB_MODE_MMAP): lookups allocate nothing in C, so a raise while the result
 * table is built cannot leak.  Fields missing from a record are left out of the result.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <maxminddb.h>
#include <string.h>

#include "host.h"

#define GEODB_MT "cachost.geoip"

typedef struct {
    MMDB_s mmdb;
    int open;
} geodb_t;

static geodb_t *check_open(lua_State *L) {
    geodb_t *g = luaL_checkudata(L, 1, GEODB_MT);
    if (!g->open) luaL_error(L, "geoip: attempt to use a closed database");
    return g;
}

static int l_open(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    geodb_t *g = lua_newuserdatauv(L, sizeof *g, 0);
    memset(g, 0, sizeof *g);
    luaL_setmetatable(L, GEODB_MT);
    int status = MMDB_open(path, MMDB_MODE_MMAP, &g->mmdb); /* frees what it took on failure */
    if (status != MMDB_SUCCESS) {
        lua_pushnil(L);
        if (status == MMDB_FILE_OPEN_ERROR || status == MMDB_IO_ERROR)
            lua_pushfstring(L, "geoip: %s: %s (%s)", MMDB_strerror(status), path, strerror(errno));
        else
            lua_pushfstring(L, "geoip: %s: %s", MMDB_strerror(status), path);
        return 2;
    }
    g->open = 1;
    return 1;
}

/* Look up one path below the entry.  1: found (data filled), 0: absent, -1: error (status in *err). */
static int get(MMDB_entry_s *e, MMDB_entry_data_s *d, uint32_t type, int *err, const char *const *path) {
    int status = MMDB_aget_value(e, d, path);
    /* a key that is not there, or an array shorter than the index: the field is absent */
    if (status == MMDB_LOOKUP_PATH_DOES_NOT_MATCH_DATA_ERROR || status == MMDB_INVALID_LOOKUP_PATH_ERROR) return 0;
    if (status != MMDB_SUCCESS) {
        *err = status;
        return -1;
    }
    return d->has_data && d->type == type;
}

static int l_lookup(lua_State *L) {
    geodb_t *g = check_open(L);
    const char *ip = luaL_checkstring(L, 2);
    /* Strict numeric forms only: getaddrinfo would also take "127.1" or "0x7f.1". */
    unsigned char buf[sizeof(struct in6_addr)];
    if (inet_pton(AF_INET, ip, buf) != 1 && inet_pton(AF_INET6, ip, buf) != 1) {
        lua_pushnil(L);
        lua_pushliteral(L, "bad_address");
        return 2;
    }
    int gai = 0, merr = MMDB_SUCCESS;
    MMDB_lookup_result_s res = MMDB_lookup_string(&g->mmdb, ip, &gai, &merr);
    if (gai != 0) {
        lua_pushnil(L);
        lua_pushliteral(L, "bad_address");
        return 2;
    }
    if (merr != MMDB_SUCCESS) {
        lua_pushnil(L);
        lua_pushfstring(L, "geoip: %s", MMDB_strerror(merr));
        return 2;
    }
    if (!res.found_entry) {
        lua_pushnil(L);
        return 1;
    }
    static const char *const lat[] = {"location", "latitude", NULL}, *const lon[] = {"location", "longitude", NULL},
                             *const acc[] = {"location", "accuracy_radius", NULL},
                             *const city[] = {"city", "names", "en", NULL},
                             *const country[] = {"country", "iso_code", NULL},
                             *const sub[] = {"subdivisions", "0", "iso_code", NULL};
    MMDB_entry_data_s d;
    int err = MMDB_SUCCESS, r;
    lua_createtable(L, 0, 6);
    if ((r = get(&res.entry, &d, MMDB_DATA_TYPE_DOUBLE, &err, lat)) > 0) {
        lua_pushnumber(L, d.double_value);
        lua_setfield(L, -2, "lat");
    }
    if (r >= 0 && (r = get(&res.entry, &d, MMDB_DATA_TYPE_DOUBLE, &err, lon)) > 0) {
        lua_pushnumber(L, d.double_value);
        lua_setfield(L, -2, "lon");
    }
    if (r >= 0 && (r = get(&res.entry, &d, MMDB_DATA_TYPE_UINT16, &err, acc)) > 0) {
        lua_pushinteger(L, d.uint16);
        lua_setfield(L, -2, "accuracy_km");
    }
    const char *const *strs[] = {city, country, sub};
    const char *names[] = {"city", "country", "subdivision"};
    for (int i = 0; i < 3 && r >= 0; i++) {
        if ((r = get(&res.entry, &d, MMDB_DATA_TYPE_UTF8_STRING, &err, strs[i])) > 0) {
            lua_pushlstring(L, d.utf8_string, d.data_size); /* not NUL-terminated */
            lua_setfield(L, -2, names[i]);
        }
    }
    if (r < 0) {
        lua_pushnil(L);
        lua_pushfstring(L, "geoip: %s", MMDB_strerror(err));
        return 2;
    }
    return 1;
}

static int l_metadata(lua_State *L) {
    geodb_t *g = check_open(L);
    const MMDB_metadata_s *m = &g->mmdb.metadata;
    lua_createtable(L, 0, 5);
    lua_pushstring(L, m->database_type ? m->database_type : "");
    lua_setfield(L, -2, "database_type");
    lua_pushinteger(L, (lua_Integer)m->build_epoch);
    lua_setfield(L, -2, "build_epoch");
    lua_pushinteger(L, m->ip_version);
    lua_setfield(L, -2, "ip_version");
    lua_pushinteger(L, m->node_count);
    lua_setfield(L, -2, "node_count");
    lua_pushinteger(L, m->record_size);
    lua_setfield(L, -2, "record_size");
    return 1;
}

static int l_close(lua_State *L) {
    geodb_t *g = luaL_checkudata(L, 1, GEODB_MT);
    if (g->open) MMDB_close(&g->mmdb);
    g->open = 0;
    return 0;
}

static int l_tostring(lua_State *L) {
    geodb_t *g = luaL_checkudata(L, 1, GEODB_MT);
    lua_pushstring(L, g->open ? "geoip.db" : "geoip.db (closed)");
    return 1;
}

int luaopen_geoip(lua_State *L) {
    static const luaL_Reg methods[] = {
        {"lookup", l_lookup}, {"metadata", l_metadata}, {"close", l_close}, {NULL, NULL}};
    static const luaL_Reg meta[] = {{"__gc", l_close}, {"__close", l_close}, {"__tostring", l_tostring}, {NULL, NULL}};
    host_class(L, GEODB_MT, meta, methods);
    static const luaL_Reg funcs[] = {{"open", l_open}, {NULL, NULL}};
    luaL_newlib(L, funcs);
    return 1;
}
