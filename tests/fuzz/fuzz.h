/* fuzz.h — what the libFuzzer harnesses share (tests/fuzz/fuzz_*.c, built by `make fuzz`).
 *
 * Two kinds of target.  C parsers (json, iso8601) get a small Lua state with just their module.  Lua-level
 * parsers (webhooks, policies, DLP, PDF) get the host's own state as host/main.c builds it (every module,
 * scripts/ on package.path, the prelude), and a driver, tests/fuzz/<name>.lua, that returns
 * function(input) and raises on any wrong behaviour.  Either way a finding ends in abort(), so libFuzzer
 * keeps the input (build-fuzz/crashes/). */
#ifndef CACHOST_FUZZ_H
#define CACHOST_FUZZ_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* A finding: say what, and let libFuzzer keep the input. */
#define FUZZ_FAIL(...) do { fprintf(stderr, "fuzz: " __VA_ARGS__); fputc('\n', stderr); abort(); } while (0)

/* A state with the standard libraries and one host module opened as a global. */
static inline lua_State *fuzz_state(const char *name, lua_CFunction open)
{
    lua_State *L = luaL_newstate();
    if (!L) FUZZ_FAIL("cannot create a Lua state");
    luaL_openlibs(L);
    luaL_requiref(L, name, open, 1);
    lua_pop(L, 1);
    return L;
}

/* Runs a chunk (setup code of a harness); a failure is the harness's bug: abort. */
static inline void fuzz_dostring(lua_State *L, const char *code)
{
    if (luaL_dostring(L, code) != LUA_OK) FUZZ_FAIL("harness chunk: %s", lua_tostring(L, -1));
    lua_settop(L, 0);
}

/* ---- Lua-level targets: the host's state and a driver ---- */

void host_openlibs(lua_State *L);
void sched_init(void);

static inline int fuzz_traceback(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    if (!msg) msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    luaL_traceback(L, L, msg, 1);
    return 1;
}

/* Like main.c's pmain: libraries, host modules, package.path, the prelude; then the driver's function
 * (tests/fuzz/<driver>.lua called with `arg`) is left on the stack. */
static inline int fuzz_pmain(lua_State *L)
{
    const char *driver = lua_tostring(L, 1), *arg = lua_tostring(L, 2);
    luaL_openlibs(L);
    host_openlibs(L);
    lua_getglobal(L, "host");
    lua_newtable(L);
    lua_setfield(L, -2, "args");
    lua_pop(L, 1);
    lua_pushfstring(L, "package.path = '%s/scripts/?.lua;%s/scripts/?/init.lua;%s/tests/?.lua;' .. package.path\n"
                       "require 'prelude'", H.root, H.root, H.root);
    if (luaL_loadstring(L, lua_tostring(L, -1)) != LUA_OK) return lua_error(L);
    lua_call(L, 0, 0);
    lua_pushfstring(L, "%s/tests/fuzz/%s.lua", H.root, driver);
    if (luaL_loadfilex(L, lua_tostring(L, -1), "t") != LUA_OK) return lua_error(L);
    lua_pushstring(L, arg);
    lua_call(L, 1, 1);
    luaL_checktype(L, -1, LUA_TFUNCTION);
    return 1;
}

/* libFuzzer sees the coverage of C code only: the Lua interpreter is a system library.  So a line hook
 * counts each (previous line, line) pair of Lua code in libFuzzer's extra counters, and inputs that reach
 * new Lua code are kept like those that reach new C code. */
#define FUZZ_LUA_COUNTERS (1 << 16)
__attribute__((section("__libfuzzer_extra_counters"))) static uint8_t fuzz_lua_counters[FUZZ_LUA_COUNTERS];
static uintptr_t fuzz_lua_prev;

static inline void fuzz_line_hook(lua_State *L, lua_Debug *ar)
{
    if (!lua_getinfo(L, "S", ar)) return;
    uintptr_t here = (uintptr_t)ar->source * 31 + (uintptr_t)ar->currentline;   /* sources are interned */
    uint8_t *c = &fuzz_lua_counters[(here ^ (fuzz_lua_prev >> 1)) % FUZZ_LUA_COUNTERS];
    if (*c < 255) (*c)++;
    fuzz_lua_prev = here;
}

static int fuzz_driver_ref = LUA_NOREF;

/* Once, from LLVMFuzzerInitialize: the host's state with the driver ready. */
static inline void fuzz_host_init(const char *driver, const char *arg)
{
    const char *root = getenv("CACHOST_ROOT");
    H.root = root && *root ? root : CACHOST_ROOT;
    H.L = luaL_newstate();
    if (!H.L) FUZZ_FAIL("cannot create the Lua state");
    sched_init();
    lua_pushcfunction(H.L, fuzz_traceback);
    lua_pushcfunction(H.L, fuzz_pmain);
    lua_pushstring(H.L, driver);
    lua_pushstring(H.L, arg ? arg : "");
    if (lua_pcall(H.L, 2, 1, 1) != LUA_OK) FUZZ_FAIL("driver %s: %s", driver, lua_tostring(H.L, -1));
    fuzz_driver_ref = luaL_ref(H.L, LUA_REGISTRYINDEX);
    lua_settop(H.L, 0);
}

/* One input through the driver; an error it raises is a finding. */
static inline void fuzz_host_run(const uint8_t *data, size_t size)
{
    lua_State *L = H.L;
    lua_pushcfunction(L, fuzz_traceback);
    lua_rawgeti(L, LUA_REGISTRYINDEX, fuzz_driver_ref);
    lua_pushlstring(L, (const char *)data, size);
    fuzz_lua_prev = 0;
    lua_sethook(L, fuzz_line_hook, LUA_MASKLINE, 0);
    if (lua_pcall(L, 1, 0, 1) != LUA_OK) FUZZ_FAIL("%s", lua_tostring(L, -1));
    lua_settop(L, 0);
}

/* A Lua-level target: the whole harness is FUZZ_HOST_TARGET("driver", "arg"). */
#define FUZZ_HOST_TARGET(driver, arg)                                                      \
    int LLVMFuzzerInitialize(int *argc, char ***argv) { fuzz_host_init(driver, arg); return 0; } \
    int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { fuzz_host_run(data, size); return 0; }

#endif
