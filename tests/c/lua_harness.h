/* lua_harness.h — what the cmocka tests of Lua modules share: a state with one module opened, a prelude
 * of assertion helpers, and run(), which fails the test with the Lua error of a chunk that raises. */
#ifndef CACHOST_LUA_HARNESS_H
#define CACHOST_LUA_HARNESS_H

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

/* eq(a, b, what): raises "what: expected b, got a" */
#define LUA_HARNESS_EQ \
    "function eq(a, b, what) if a ~= b then error((what or '') .. ': expected ' .. tostring(b) .. ', got ' .. " \
    "tostring(a), 2) end end\n"

/* A fresh state with the standard libraries, `name` opened as a global, then the prelude run. */
static inline int harness_open(void **state, const char *name, lua_CFunction open, const char *prelude)
{
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    luaL_requiref(L, name, open, 1);
    lua_pop(L, 1);
    if (luaL_dostring(L, LUA_HARNESS_EQ) != LUA_OK || (prelude && luaL_dostring(L, prelude) != LUA_OK)) {
        lua_close(L);
        return -1;
    }
    *state = L;
    return 0;
}

static inline int teardown(void **state)
{
    lua_close(*state);
    return 0;
}

static inline void run(lua_State *L, const char *code)
{
    if (luaL_dostring(L, code) != LUA_OK) fail_msg("lua: %s", lua_tostring(L, -1));
    lua_settop(L, 0);
}

#endif
