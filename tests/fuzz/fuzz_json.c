/* fuzz_json.c — host/json.c's decoder on any bytes, with and without {sources = true} and {fields = ...}.
 * Properties: a failure is nil and one "json: ..." line; a decoded value encodes (or refuses with a known
 * reason), and decode . encode is a fixed point; pretty output decodes to the same value; the source text
 * kept for an item decodes to that item.  With fields: the same outcome and error, each item built is the
 * whole item cut to the declared members (a path through an array: each object in it cut alike), with the
 * same source, and reading an undeclared member raises. */
#include "fuzz.h"

int luaopen_json(lua_State *L);

static lua_State *L;

static const char *checker =
    "local function one_line_error(err)\n"
    "  assert(type(err) == 'string' and err:match('^json: .') and not err:find('\\n'), 'bad error: ' .. tostring(err))\n"
    "end\n"
    "local function refusal(err)\n"
    "  one_line_error(err)\n"
    "  assert(err:match('^json: too deep') or err == 'json: cannot encode NaN or infinity', 'encode refused: ' .. err)\n"
    "end\n"
    "local function sources_agree(t, depth)\n"
    "  if type(t) ~= 'table' or depth > 600 then return end\n"
    "  local src = json.source(t)\n"
    "  if src then\n"
    "    local back, err = json.decode(src)\n"
    "    assert(back ~= nil, 'source does not decode: ' .. tostring(err))\n"
    "    local a, b = json.encode(back), json.encode(t)\n"
    "    assert(a == b, 'source differs from its item')\n"
    "  end\n"
    "  for _, v in pairs(t) do sources_agree(v, depth + 1) end\n"
    "end\n"
    /* fields: names the dictionary (json.dict) offers, a path two deep (through arrays too), and the tree
     * they declare */
    "local FIELDS = { 'id', 'a', 'b.c', 'b.d.e', 'value' }\n"
    "local TREE = { id = true, a = true, value = true, b = { c = true, d = { e = true } } }\n"
    "local function cut(full, tree)\n"
    "  if type(full) ~= 'table' or tree == true then return full end\n"
    "  local out = {}\n"
    "  if json.is_array(full) then\n"
    "    for i = 1, #full do out[i] = cut(full[i], tree) end\n"
    "    return json.array(out)\n"
    "  end\n"
    "  for k, sub in pairs(tree) do out[k] = cut(full[k], sub) end\n"
    "  return out\n"
    "end\n"
    "local function partial(t) local mt = getmetatable(t); return mt and mt.__name == 'json.partial' end\n"
    /* walks the value decoded with fields beside the whole one: each partial item is the whole item cut */
    "local function fields_agree(whole, part, depth)\n"
    "  if type(part) ~= 'table' or depth > 600 then return end\n"
    "  if partial(part) then\n"
    "    assert(json.encode(cut(whole, TREE)) == json.encode(part), 'fields: not the item cut to its fields')\n"
    "    assert(json.source(part) == json.source(whole), 'fields: source differs')\n"
    "    for k in pairs(whole) do\n"
    "      if type(k) == 'string' and TREE[k] == nil then\n"
    "        local ok, e = pcall(function() return part[k] end)\n"
    "        assert(not ok and tostring(e):find('json: undeclared field', 1, true), 'fields: undeclared member read')\n"
    "      end\n"
    "    end\n"
    "    return\n"
    "  end\n"
    "  for k, v in pairs(part) do fields_agree(whole[k], v, depth + 1) end\n"
    "end\n"
    "function check(s)\n"
    "  local v, err = json.decode(s)\n"
    "  local w, werr = json.decode(s, { sources = true })\n"
    "  local f, ferr = json.decode(s, { sources = true, fields = FIELDS })\n"
    "  assert((v == nil) == (w == nil), 'sources changes the outcome')\n"
    "  assert((v == nil) == (f == nil), 'fields changes the outcome')\n"
    "  if v == nil then one_line_error(err); assert(err == werr); assert(err == ferr, 'fields changes the error'); return end\n"
    "  fields_agree(w, f, 0)\n"
    "  local e, eerr = json.encode(v)\n"
    "  if not e then refusal(eerr); return end\n"
    "  assert(json.encode(w) == e, 'sources changes the value')\n"
    "  local back, berr = json.decode(e)\n"
    "  assert(back ~= nil, berr)\n"
    "  assert(json.encode(back) == e, 'decode . encode is not a fixed point')\n"
    "  local p = assert(json.pretty(v))\n"
    "  assert(json.encode((json.decode(p))) == e, 'pretty differs')\n"
    "  sources_agree(w, 0)\n"
    "end\n";

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    L = fuzz_state("json", luaopen_json);
    fuzz_dostring(L, checker);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lua_getglobal(L, "check");
    lua_pushlstring(L, (const char *)data, size);
    if (lua_pcall(L, 1, 0, 0) != LUA_OK) FUZZ_FAIL("json: %s", lua_tostring(L, -1));
    lua_settop(L, 0);
    return 0;
}
