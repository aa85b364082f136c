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

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_arrays, setup, teardown),
        cmocka_unit_test_setup_teardown(test_numbers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_depth, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unencodable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pretty, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
