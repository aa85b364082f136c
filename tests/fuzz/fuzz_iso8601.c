/* fuzz_iso8601.c — host/iso8601.c's parser on any bytes.
 * Properties: the result is nil or a finite number; a parsed time formats and parses back to itself
 * (to the millisecond format keeps). */
#include <math.h>

#include "fuzz.h"

int luaopen_iso8601(lua_State *L);

static lua_State *L;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    L = fuzz_state("iso8601", luaopen_iso8601);
    fuzz_dostring(L, "function check(s)\n"
                     "  local t = iso8601.parse(s)\n"
                     "  if t == nil then return end\n"
                     "  assert(math.type(t) == 'float' and t == t and math.abs(t) < 1e14, 'bad time ' .. tostring(t))\n"
                     "  local f = iso8601.format(t)\n"
                     "  local back = iso8601.parse(f)\n"
                     "  assert(back and math.abs(back - t) <= 0.0015, ('%q -> %s -> %s'):format(s, f, tostring(back)))\n"
                     "end\n");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lua_getglobal(L, "check");
    lua_pushlstring(L, (const char *)data, size);
    if (lua_pcall(L, 1, 0, 0) != LUA_OK) FUZZ_FAIL("iso8601: %s", lua_tostring(L, -1));
    lua_settop(L, 0);
    return 0;
}
