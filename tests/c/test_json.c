/* test_json.c — the json module: round trips, null, [] vs {}, array marks, numbers, malformed input, depth. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "host.h"
#include "lua_harness.h"

int luaopen_json(lua_State *L);

static const char *prelude =
    "function fails(s, what) local v, err = json.decode(s); eq(v, nil, what or s); "
    "  assert(type(err) == 'string' and err:match('^json: .'), err) return err end\n";

static int setup(void **state) { return harness_open(state, "json", luaopen_json, prelude); }



static void test_round_trip(void **state) {
    run(*state,
        "local src = '{\"a\":1,\"b\":[true,false,null,\"x\"],\"c\":{\"d\":\"\\\\u00e9\\\\n\\\\\"/\"},\"e\":[],\"f\":{}}'\n"
        "local v = assert(json.decode(src))\n"
        "eq(v.a, 1); eq(v.b[1], true); eq(v.b[2], false); eq(v.b[3], json.null); eq(v.b[4], 'x'); eq(#v.b, 4)\n"
        "eq(v.c.d, '\\xc3\\xa9\\n\"/')\n"
        /* keys sorted, '/' not escaped, [] and {} kept */
        "eq(json.encode(v), '{\"a\":1,\"b\":[true,false,null,\"x\"],\"c\":{\"d\":\"\\xc3\\xa9\\\\n\\\\\"/\"},"
        "\"e\":[],\"f\":{}}')\n"
        "eq(json.encode('a/b'), '\"a/b\"')\n"
        "eq(json.encode('tab\\tctl\\1'), '\"tab\\\\tctl\\\\u0001\"')\n"
        /* top-level scalars */
        "eq(json.decode('\"s\"'), 's'); eq(json.decode('12'), 12); eq(json.decode(' true '), true)\n"
        "eq(json.decode('null'), json.null)\n"
        "eq(json.encode(nil), 'null'); eq(json.encode(json.null), 'null'); eq(json.encode(false), 'false')\n"
        "eq(json.encode({1, 2, 3}), '[1,2,3]'); eq(json.encode({}), '{}')\n"
        "eq(json.encode({[1] = 'a', [3] = 'c'}), '[\"a\",null,\"c\"]')\n"
        "eq(json.encode({[2] = 'x', y = 1}), '{\"2\":\"x\",\"y\":1}')\n"
        "local big = {} for i = 1, 1000 do big[i] = {id = i, name = 'n' .. i} end\n"
        "local back = json.decode(json.encode(big)); eq(#back, 1000); eq(back[1000].name, 'n1000')\n"
        "eq(json.encode(json.decode('\"\\\\u0000x\"')), '\"\\\\u0000x\"')\n");
}

static void test_arrays(void **state) {
    run(*state,
        "local e = json.array({})\n"
        "eq(json.encode(e), '[]'); eq(json.encode({items = json.array()}), '{\"items\":[]}')\n"
        "assert(json.is_array(e)); assert(not json.is_array({})); assert(not json.is_array('x'))\n"
        "local v = json.decode('{\"a\":[],\"b\":{},\"c\":[[],[[]]]}')\n"
        "assert(json.is_array(v.a)); assert(not json.is_array(v.b)); assert(json.is_array(v.c[2][1]))\n"
        "eq(json.encode(v), '{\"a\":[],\"b\":{},\"c\":[[],[[]]]}')\n"
        /* a mark survives the table being emptied and refilled */
        "local arr = json.decode('[1,2]'); arr[1], arr[2] = nil, nil\n"
        "eq(json.encode(arr), '[]')\n"
        "eq(getmetatable(arr), json.array_mt)\n"
        "assert(not pcall(json.array, 'x'))\n"
        /* an excessively sparse table is refused, not silently padded */
        "local s, err = json.encode({[1000] = 1}); eq(s, nil); eq(err, 'json: excessively sparse array')\n"
        "s, err = json.encode({[true] = 1}); eq(s, nil); assert(err:match('^json: table key'), err)\n");
}

static void test_numbers(void **state) {
    run(*state,
        "local v = json.decode('[1, -7, 2.0, 3e0, 0.1, 1e400, 9007199254740993, 12345678901234567890, -0, 1.5e-3]')\n"
        "eq(math.type(v[1]), 'integer'); eq(v[1], 1); eq(v[2], -7); eq(math.type(v[2]), 'integer')\n"
        "eq(math.type(v[3]), 'float'); eq(math.type(v[4]), 'float'); eq(v[5], 0.1)\n"
        "eq(v[6], math.huge)\n"
        "eq(v[7], 9007199254740993); eq(math.type(v[7]), 'integer')\n"
        "eq(math.type(v[8]), 'float')\n"
        "eq(v[10], 1.5e-3)\n"
        "eq(json.encode(1), '1'); eq(json.encode(2.0), '2.0'); eq(json.encode(0.1), '0.1')\n"
        "eq(json.encode(1/3), '0.3333333333333333'); eq(json.decode(json.encode(1/3)), 1/3)\n"
        "eq(json.encode(0.1 + 0.2), '0.30000000000000004')\n"
        "eq(json.encode(math.maxinteger), '9223372036854775807'); eq(json.encode(123456789012345), '123456789012345')\n"
        "eq(json.encode(1e300), '1e+300'); eq(json.decode(json.encode(1e300)), 1e300)\n"
        "eq(json.encode({id = 42}), '{\"id\":42}')\n"
        "local s, err = json.encode(0/0); eq(s, nil); eq(err, 'json: cannot encode NaN or infinity')\n"
        "s, err = json.encode({x = math.huge}); eq(s, nil); eq(err, 'json: cannot encode NaN or infinity')\n");
}

static void test_malformed(void **state) {
    run(*state,
        "for _, bad in ipairs{'', '   ', '{', '[1,2', '{\"a\":1', '{\"a\" 1}', '[1,]', '{\"a\":1,}', '[1] x', '[1][2]',"
        "   '{a:1}', \"'x'\", 'nul', 'tru', '01', '1.', '.5', '+1', '0x10', 'NaN', 'Infinity', '\"abc',"
        "   '\"\\\\x41\"', '\"a\\nb\"', '[1] // c', '/* c */ 1', '\"\\xff\"', '\"\\xc3\"'} do\n"
        "  fails(bad)\n"
        "end\n"
        "local err = fails('[1,2] garbage'); assert(err:find('trailing garbage', 1, true), err)\n"
        "assert(not err:find('\\n'), 'one line')\n"
        "assert(not pcall(json.decode, nil)); assert(not pcall(json.decode, {}))\n"
        /* documented YAJL leniency: a lone \\ud800 escape becomes '?', UTF-8-encoded surrogates pass */
        "eq(json.decode('\"\\\\ud800\"'), '?')\n"
        "eq(json.decode('\"\\\\ud83d\\\\ude00\"'), '\\u{1f600}')\n");
}

static void test_depth(void **state) {
    run(*state,
        /* deep input is an error, not a crash */
        "local deep = string.rep('[', 100000) .. string.rep(']', 100000)\n"
        "local v, err = json.decode(deep); eq(v, nil); eq(err, 'json: too deep')\n"
        "v, err = json.decode(string.rep('{\"a\":', 600) .. '1' .. string.rep('}', 600)); eq(err, 'json: too deep')\n"
        "local ok = json.decode(string.rep('[', 500) .. string.rep(']', 500)); assert(ok)\n"
        /* encode: cycles and over-deep tables end with an error */
        "local t = {}; t.self = t\n"
        "local s; s, err = json.encode(t); eq(s, nil); assert(err:match('^json: too deep'), err)\n"
        "local n = {}; local cur = n; for i = 1, 200 do cur.x = {}; cur = cur.x end\n"
        "s, err = json.encode(n); eq(s, nil); assert(err:match('^json: too deep'), err)\n"
        "local m = {}; cur = m; for i = 1, 100 do cur[1] = {}; cur = cur[1] end\n"
        "assert(json.encode(m))\n");
}

static void test_unencodable(void **state) {
    run(*state,
        "local s, err = json.encode(print); eq(s, nil); eq(err, 'json: cannot encode function')\n"
        "s, err = json.encode({a = {b = print}}); eq(s, nil); eq(err, 'json: cannot encode function')\n"
        "s, err = json.encode(coroutine.create(print)); eq(err, 'json: cannot encode thread')\n"
        "s, err = json.encode(io.stdout); eq(err, 'json: cannot encode userdata')\n"
        "s, err = json.encode('\\xff'); eq(s, nil); eq(err, 'json: invalid UTF-8 in string')\n"
        "s, err = json.encode({['\\xff'] = 1}); eq(s, nil); eq(err, 'json: invalid UTF-8 in string')\n"
        "assert(not pcall(json.encode))\n");
}

static void test_pretty(void **state) {
    run(*state,
        "eq(json.pretty({b = 1, a = {x = json.array(), y = {1, 'two'}}}),"
        "   '{\\n  \"a\": {\\n    \"x\": [],\\n    \"y\": [\\n      1,\\n      \"two\"\\n    ]\\n  },\\n  \"b\": 1\\n}')\n"
        "eq(json.decode(json.pretty({k = {1, 2}})).k[2], 2)\n"
        "eq(json.pretty({}), '{}'); eq(json.pretty({a = {}, b = '[\\n\\n]'}), '{\\n  \"a\": {},\\n  \"b\": \"[\\\\n\\\\n]\"\\n}')\n"
        "local s, err = json.pretty(print); eq(s, nil); eq(err, 'json: cannot encode function')\n");
}


/* fields: a listing's items built with only their declared members, the whole text still parsed */
#define PAGE \
    "local page = '{\"n\":1,\"value\":[{\"id\":\"a\",\"when\":\"t1\",\"actor\":{\"id\":7,\"tags\":[1,{\"x\":2}]}," \
    "\"client\":{\"ip\":\"1.2.3.4\",\"ua\":{\"raw\":\"r\"},\"geo\":{\"city\":\"P\",\"pt\":{\"lat\":1.5}}}," \
    "\"target\":[{\"id\":\"t1\",\"type\":\"User\"},{\"id\":\"t2\",\"detail\":{\"k\":1,\"j\":2}},3,[{\"id\":\"n\",\"z\":1}],null]," \
    "\"debug\":{\"deep\":[[{\"a\":[1]}]]}} , {\"id\":\"b\",\"client\":null},{\"id\":\"c\",\"client\":[{\"ip\":1}]}," \
    "{\"id\":\"d\"}, 5, [1,{\"debug\":1}]],\"more\":[{\"debug\":2}]}'\n" \
    "local F = {'id', 'when', 'actor', 'client.ip', 'client.geo.pt', 'client.ua.raw', 'target.id', 'target.detail.k'}\n"

static void test_fields(void **state) {
    run(*state, PAGE
        "local d = assert(json.decode(page, {sources = true, fields = F, origin = 'the fields of the listing /x'}))\n"
        "local a = d.value[1]\n"
        /* declared: whole values, arrays and objects inside them untouched */
        "eq(a.id, 'a'); eq(a.when, 't1'); eq(a.actor.id, 7); eq(a.actor.tags[2].x, 2); assert(json.is_array(a.actor.tags))\n"
        "eq(getmetatable(a.actor), nil)\n"
        /* a nested path: only that member of the object */
        "eq(a.client.ip, '1.2.3.4'); eq(a.client.geo.pt.lat, 1.5); eq(a.client.ua.raw, 'r')\n"
        /* declared but absent: nil */
        "eq(d.value[4].when, nil); eq(d.value[4].client, nil); eq(d.value[4].actor, nil)\n"
        /* a path through an array: each object in it (and in arrays inside it) cut alike; other values as they are */
        "local t = a.target; assert(json.is_array(t)); eq(#t, 5); eq(t[1].id, 't1'); eq(t[2].id, 't2'); eq(t[2].detail.k, 1)\n"
        "eq(t[3], 3); assert(json.is_array(t[4])); eq(t[4][1].id, 'n'); eq(t[5], json.null)\n"
        "eq(getmetatable(t[1]).__name, 'json.partial'); eq(getmetatable(t[4][1]), getmetatable(t[1]))\n"
        "eq(json.encode(t), '[{\"id\":\"t1\"},{\"detail\":{\"k\":1},\"id\":\"t2\"},3,[{\"id\":\"n\"}],null]')\n"
        "eq(d.value[3].client[1].ip, 1)\n"
        /* a declared path whose value is not an object or an array: as it is */
        "eq(d.value[2].client, json.null)\n"
        /* undeclared: raised, naming the member (its path) and where it was declared */
        "for _, f in ipairs { function() return a.debug end, function() return a.client.ua.other end,"
        "                     function() return a.client.geo.city end, function() return a.client.name end,"
        "                     function() return t[1].type end, function() return t[2].detail.j end,"
        "                     function() return t[4][1].z end, function() return d.value[3].client[1].name end } do\n"
        "  local ok, err = pcall(f); eq(ok, false)\n"
        "  assert(err:find(\"json: undeclared field '\", 1, true) and err:find('add it to the fields of the listing /x', 1, true), err)\n"
        "end\n"
        "local ok, err = pcall(function() return a.client.geo.city end)\n"
        "assert(err:find(\"'client.geo.city'\", 1, true) and err:find('^%[string'), err)\n"
        "ok, err = pcall(function() return t[2].detail.j end); assert(err:find(\"'target.detail.j'\", 1, true), err)\n"
        "eq(a[1], nil)   -- not a member name\n"
        /* pairs goes over what was built; encode too */
        "local keys = {}; for k in pairs(a) do keys[#keys + 1] = k end; table.sort(keys)\n"
        "eq(table.concat(keys, ','), 'actor,client,id,target,when')\n"
        "eq(json.encode(a.client), '{\"geo\":{\"pt\":{\"lat\":1.5}},\"ip\":\"1.2.3.4\",\"ua\":{\"raw\":\"r\"}}')\n"
        /* only the first array's items; what is outside it is whole */
        "eq(d.n, 1); eq(d.more[1].debug, 2); eq(d.value[5], 5); eq(d.value[6][2].debug, 1)\n"
        /* the sources are the same, byte for byte */
        "local w = assert(json.decode(page, {sources = true}))\n"
        "for i = 1, 4 do eq(json.source(d.value[i]), json.source(w.value[i])) end\n"
        "eq(json.source(d.value[1]), page:match('(%{\"id\":\"a\".-%}) ,'))\n"
        /* without sources, fields alone */
        "local v = assert(json.decode(page, {fields = {'id'}})); eq(v.value[2].id, 'b'); eq(json.source(v.value[2]), nil)\n"
        "assert(not pcall(function() return v.value[2].client end))\n"
        /* a name and a path inside it: the whole member */
        "for _, f in ipairs { {'client', 'client.ip'}, {'client.ip', 'client'}, {'target.id', 'target'} } do\n"
        "  local x = assert(json.decode(page, {fields = f})); local v1 = x.value[1]\n"
        "  if f[1] == 'target.id' then eq(v1.target[1].type, 'User'); eq(getmetatable(v1.target[1]), nil)\n"
        "  else eq(v1.client.ua.raw, 'r') end\n"
        "end\n"
        /* without fields nothing changes; an empty list builds no member */
        "eq(json.encode(assert(json.decode(page))), json.encode(w))\n"
        "local e = assert(json.decode(page, {fields = {}})); eq(next(e.value[1]), nil)\n");
}

static void test_fields_misuse_and_errors(void **state) {
    run(*state, PAGE
        /* a declaration that is not a list of names or dotted paths raises */
        "for _, bad in ipairs { {''}, {'a.'}, {'.a'}, {'a..b'}, {1}, {{}} } do\n"
        "  assert(not pcall(json.decode, '[]', {fields = bad}))\n"
        "end\n"
        "assert(not pcall(json.decode, '[]', {fields = 'id'}))\n"
        /* malformed text: the same error with and without fields, inside a member not built too */
        "for _, bad in ipairs { page:sub(1, -2), page:gsub('\"deep\"', 'deep'), page:gsub('%[%[', '[[,'),"
        "                      '[{\"id\":1,\"x\":[1,]}]', '[{\"x\":\"\\xff\"}]', '[{\"x\":{\"y\" 1}}]' } do\n"
        "  local v, err = json.decode(bad); local w, werr = json.decode(bad, {sources = true, fields = F})\n"
        "  eq(v, nil); eq(w, nil); assert(werr and werr == err, tostring(werr) .. ' vs ' .. tostring(err))\n"
        "end\n"
        /* the depth limit is the same inside members that are not built, and inside declared ones */
        "for _, m in ipairs { 'skipped', 'id' } do\n"
        "  local deep = '[{\"' .. m .. '\":' .. string.rep('[', 600) .. string.rep(']', 600) .. '}]'\n"
        "  local v, err = json.decode(deep, {fields = {'id'}}); eq(v, nil); eq(err, 'json: too deep')\n"
        "  local ok = '[{\"' .. m .. '\":' .. string.rep('{\"a\":', 500) .. '1' .. string.rep('}', 500) .. '}]'\n"
        "  assert(json.decode(ok, {fields = {'id'}})); assert(json.decode(ok))\n"
        "end\n"
        "local huge = '[{\"skipped\":' .. string.rep('[', 100000) .. string.rep(']', 100000) .. '}]'\n"
        "local v, err = json.decode(huge, {fields = {'id'}}); eq(v, nil); eq(err, 'json: too deep')\n");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_arrays, setup, teardown),
        cmocka_unit_test_setup_teardown(test_numbers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_depth, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unencodable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pretty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fields_misuse_and_errors, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
