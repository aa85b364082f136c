/* fuzz_xml.c — host/xml.c's decoder on any bytes, with the default and with tight limits.
 * Properties: a failure is nil, one "bad_xml: ..." line and the bad_xml token; a success is a tree in which
 * every element has a string name, a table of string attrs, a string text and only elements in its array
 * part, no deeper than the depth limit and with no more elements than the node limit; tight limits never
 * accept what the defaults refuse. */
#include "fuzz.h"

int luaopen_xml(lua_State *L);

static lua_State *L;

static const char *checker =
    "local function refused(v, err, tok)\n"
    "  assert(v == nil and tok == 'bad_xml', 'failure shape')\n"
    "  assert(type(err) == 'string' and err:match('^bad_xml: .') and not err:find('\\n'), 'bad error: ' .. tostring(err))\n"
    "end\n"
    "local function walk(el, depth, max_depth, count)\n"
    "  assert(depth <= max_depth, 'deeper than the limit')\n"
    "  assert(type(el.name) == 'string' and #el.name > 0, 'name')\n"
    "  assert(type(el.text) == 'string', 'text')\n"
    "  assert(type(el.attrs) == 'table', 'attrs')\n"
    "  for k, v in pairs(el.attrs) do assert(type(k) == 'string' and type(v) == 'string', 'attr') end\n"
    "  count[1] = count[1] + 1\n"
    "  for k, v in pairs(el) do\n"
    "    if math.type(k) == 'integer' then walk(v, depth + 1, max_depth, count)\n"
    "    else assert(k == 'name' or k == 'text' or k == 'attrs', 'stray key ' .. tostring(k)) end\n"
    "  end\n"
    "end\n"
    "function check(s)\n"
    "  local v, err, tok = xml.decode(s)\n"
    "  if v == nil then refused(v, err, tok) else local c = {0}; walk(v, 1, 128, c) end\n"
    "  local w, werr, wtok = xml.decode(s, { max_depth = 3, max_nodes = 8, max_size = 4096 })\n"
    "  if w == nil then refused(w, werr, wtok) else\n"
    "    assert(v ~= nil, 'tight limits accept what the defaults refuse')\n"
    "    local c = {0}; walk(w, 1, 3, c); assert(c[1] <= 8, 'more nodes than the limit')\n"
    "  end\n"
    "end\n";

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    L = fuzz_state("xml", luaopen_xml);
    fuzz_dostring(L, checker);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lua_getglobal(L, "check");
    lua_pushlstring(L, (const char *)data, size);
    if (lua_pcall(L, 1, 0, 0) != LUA_OK) FUZZ_FAIL("xml: %s", lua_tostring(L, -1));
    lua_settop(L, 0);
    return 0;
}
