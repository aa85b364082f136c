/* modules.c — every Lua module the host provides, like Lua's linit.c.  Each lives in host/<name>.c. */
#include "host.h"

int luaopen_host(lua_State *L);
int luaopen_sched(lua_State *L);
int luaopen_json(lua_State *L);
int luaopen_crypto(lua_State *L);
int luaopen_log(lua_State *L);
int luaopen_http(lua_State *L);
int luaopen_server(lua_State *L);
int luaopen_sqlite(lua_State *L);
int luaopen_repl(lua_State *L);
int luaopen_vm(lua_State *L);
int luaopen_zip(lua_State *L);
int luaopen_iso8601(lua_State *L);
int luaopen_geoip(lua_State *L);
int luaopen_pdf(lua_State *L);
int luaopen_regex(lua_State *L);
int luaopen_lpattern(lua_State *L);
int luaopen_net(lua_State *L);
int luaopen_xml(lua_State *L);
int luaopen_zstd(lua_State *L);
int luaopen_pg(lua_State *L);
void http_shutdown(void);
void net_shutdown(void);
void server_shutdown(void);
void sched_shutdown(void);

static const luaL_Reg modules[] = {
    {"host", luaopen_host}, {"sched", luaopen_sched}, {"json", luaopen_json}, {"crypto", luaopen_crypto},
    {"log", luaopen_log}, {"http", luaopen_http}, {"server", luaopen_server}, {"sqlite", luaopen_sqlite},
    {"repl", luaopen_repl}, {"vm", luaopen_vm}, {"zip", luaopen_zip}, {"iso8601", luaopen_iso8601},
    {"pdf", luaopen_pdf}, {"geoip", luaopen_geoip}, {"regex", luaopen_regex}, {"lpattern", luaopen_lpattern},
    {"net", luaopen_net}, {"xml", luaopen_xml}, {"zstd", luaopen_zstd}, {"pg", luaopen_pg},
    {NULL, NULL}};

void host_class(lua_State *L, const char *name, const luaL_Reg *meta, const luaL_Reg *methods)
{
    luaL_newmetatable(L, name);
    luaL_setfuncs(L, meta, 0);
    lua_newtable(L);
    luaL_setfuncs(L, methods, 0);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
}

/* Open each module as a global and in package.loaded. */
void host_openlibs(lua_State *L)
{
    for (const luaL_Reg *m = modules; m->name; m++) {
        luaL_requiref(L, m->name, m->func, 1);
        lua_pop(L, 1);
    }
}

/* Close in dependency order: I/O owners first, then the state (running __gc), then the loop. */
void host_shutdown(void)
{
    server_shutdown();
    http_shutdown();
    if (H.L) lua_close(H.L);
    H.L = NULL;
    net_shutdown();                  /* after the state: its connections cancel their name lookups first */
    sched_shutdown();
    zstd_shutdown();
    log_shutdown();
}
