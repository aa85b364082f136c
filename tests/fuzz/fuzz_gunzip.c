/* fuzz_gunzip.c — host/zip.c's gunzip on any bytes, with the default limit and a tight one.
 * Properties: a failure is nil, one "<token>: gzip: ..." line and the token corrupt or too_large; a success is
 * a string within the limit; the tight limit accepts only what the default gives, byte for byte, and refuses
 * it as too_large only when it is longer; gzip of the output reads back to it. */
#include "fuzz.h"

int luaopen_zip(lua_State *L);

static lua_State *L;

static const char *checker =
    "local function refused(v, err, tok)\n"
    "  assert(v == nil and (tok == 'corrupt' or tok == 'too_large'), 'failure shape: ' .. tostring(tok))\n"
    "  assert(type(err) == 'string' and err:sub(1, #tok + 8) == tok .. ': gzip: ' and not err:find('\\n'), 'bad error: ' .. tostring(err))\n"
    "end\n"
    "function check(s)\n"
    "  local v, err, tok = zip.gunzip(s)\n"
    "  if v == nil then refused(v, err, tok) else\n"
    "    assert(type(v) == 'string' and #v <= 64 * 1024 * 1024, 'output')\n"
    "    if #v < 65536 then assert(zip.gunzip(zip.gzip(v, 1)) == v, 'round trip') end\n"
    "  end\n"
    "  local w, werr, wtok = zip.gunzip(s, 100)\n"
    "  if w == nil then\n"
    "    refused(w, werr, wtok)\n"
    "    if wtok == 'too_large' then assert(v == nil or #v > 100, 'too_large under the limit') end\n"
    "    if wtok == 'corrupt' and v ~= nil then error('the tight limit finds corrupt what the default reads') end\n"
    "  else\n"
    "    assert(w == v, 'the tight limit reads something else')\n"
    "  end\n"
    "end\n";

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    L = fuzz_state("zip", luaopen_zip);
    fuzz_dostring(L, checker);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lua_getglobal(L, "check");
    lua_pushlstring(L, (const char *)data, size);
    if (lua_pcall(L, 1, 0, 0) != LUA_OK) FUZZ_FAIL("gunzip: %s", lua_tostring(L, -1));
    lua_settop(L, 0);
    return 0;
}
