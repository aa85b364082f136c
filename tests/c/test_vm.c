/* test_vm.c — the vm module: memory and instruction caps (also against pcall), deep copy, the sandbox. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "host.h"
#include "lua_harness.h"

int luaopen_vm(lua_State *L);

static const char *prelude =
    "function fails(token, ok, err) eq(ok, nil, token); "
    "  assert(type(err) == 'string' and err:find(token, 1, true) == 1, token .. ' <- ' .. tostring(err)) "
    "  return err end\n";

static int setup(void **state) { return harness_open(state, "vm", luaopen_vm, prelude); }



static void test_memory_bomb(void **state) {
    run(*state,
        "local v = assert(vm.new{memory = 8 * 1024 * 1024, name = 'bomb'})\n"
        "assert(v:load('function bomb() local t = {} while true do t[#t+1] = (\"x\"):rep(1000) end end', 'bomb.lua'))\n"
        "local ok, err = v:call('bomb')\n"
        "eq(ok, nil); eq(err, 'memory: policy bomb exceeded its 8 MB cap')\n"
        "assert(v:memory() <= 8 * 1024 * 1024, 'over the cap')\n"
        /* one huge allocation, and a bomb whose error a pcall inside the policy tries to swallow */
        "fails('memory: ', v:load('local s = (\"x\"):rep(100 * 1024 * 1024)'))\n"
        "fails('memory: ', v:load('local ok = pcall(bomb) survived = true'))\n"
        "fails('memory: ', v:load('xpcall(bomb, function(e) return e end) survived = true'))\n"
        "eq(v:globals()[2], nil, 'survived is not defined')\n"
        /* still usable, and the garbage of the killed calls was given back */
        "assert(v:load('function add(a, b) return a + b end'))\n"
        "local ok2, r = v:call('add', 40, 2); eq(ok2, true); eq(r, 42)\n"
        "assert(v:memory() < 1024 * 1024, 'memory after kill: ' .. v:memory())\n");
}

static void test_instruction_bomb(void **state) {
    run(*state,
        "local v = assert(vm.new{instructions = 100000, name = 'spin'})\n"
        "fails('budget: policy spin exceeded 100000 instructions', v:load('while true do end'))\n"
        /* pcall inside the policy cannot swallow the trip */
        "assert(v:load('function spin() while true do pcall(function() while true do end end) end end'))\n"
        "fails('budget: ', v:call('spin'))\n"
        "fails('budget: ', v:load('for i = 1, 10 do xpcall(function() while true do end end, function() while true do end end) end "
        "done = true'))\n"
        /* the budget is per call: a call under it succeeds after a kill */
        "assert(v:load('function count(n) local s = 0 for i = 1, n do s = s + i end return s end'))\n"
        "local ok, s = v:call('count', 1000); eq(ok, true); eq(s, 500500)\n"
        "fails('budget: ', v:call('count', 10000000))\n"
        "local ok2, s2 = v:call('count', 100); eq(s2, 5050)\n");
}

static void test_deep_copy(void **state) {
    run(*state,
        "local v = assert(vm.new{})\n"
        "assert(v:load('function id(...) return ... end function mk() return {n = 1, f = 1.0, big = 1 << 60, "
        "s = \"a\\\\0b\", list = {1, 2, {3, {4}}}, [7] = true, [1.5] = \"x\"} end'))\n"
        "local src = {i = 3, f = 3.0, neg = -0.5, s = 'x\\0y', b = false, nested = {{{'deep'}}}, [10] = 'ten'}\n"
        "local ok, c, n, b, s = v:call('id', src, nil, true, 'str')\n"
        "eq(ok, true); assert(c ~= src)\n"
        "eq(math.type(c.i), 'integer'); eq(math.type(c.f), 'float'); eq(c.neg, -0.5); eq(c.s, 'x\\0y')\n"
        "eq(c.b, false); eq(c.nested[1][1][1], 'deep'); eq(c[10], 'ten'); eq(n, nil); eq(b, true); eq(s, 'str')\n"
        "local ok2, t = v:call('mk')\n"
        "eq(math.type(t.n), 'integer'); eq(math.type(t.f), 'float'); eq(t.big, 1 << 60); eq(t.s, 'a\\0b')\n"
        "eq(t.list[3][2][1], 4); eq(t[7], true); eq(t[1.5], 'x')\n"
        /* cycles and shared tables are reproduced, not looped over */
        "local cyc = {name = 'c'}; cyc.self = cyc; local shared = {}; cyc.a, cyc.b = shared, shared\n"
        "local ok3, back = v:call('id', cyc); eq(ok3, true); eq(back.self, back); eq(back.a, back.b); assert(back ~= cyc)\n"
        "assert(v:load('function loop() local t = {} t[1] = t return t end'))\n"
        "local ok4, l = v:call('loop'); eq(l[1], l)\n"
        /* depth limit, functions and userdata refused with a clear error, the vm still usable */
        "local deep = {} local cur = deep for i = 1, 200 do cur.x = {} cur = cur.x end\n"
        "fails('error: argument 1: nested deeper than', v:call('id', deep))\n"
        "fails('error: argument 2: cannot copy a function value', v:call('id', 1, print))\n"
        "fails('error: argument 1: cannot copy a userdata value', v:call('id', io.stdout))\n"
        "assert(v:load('function fn() return 1, {f = function() end} end'))\n"
        "fails('error: result 2: cannot copy a function value', v:call('fn'))\n"
        /* null is json.null (light userdata NULL) on both sides */
        "local ok5, nl = v:call('id', vm.null); eq(nl, vm.null)\n"
        "assert(v:load('function isnull(x) return x == null end'))\n"
        "local _, yes = v:call('isnull', vm.null); eq(yes, true)\n"
        /* set installs copied data */
        "local limits = {max = 5}; assert(v:set('LIMITS', limits)); limits.max = 6\n"
        "assert(v:load('function max() return LIMITS.max end')); local _, m = v:call('max'); eq(m, 5)\n"
        "fails('error: value 1: cannot copy a function', v:set('F', print))\n"
        "local names = {} for _, k in ipairs(v:globals()) do names[k] = true end\n"
        "assert(names.id and names.mk and names.LIMITS and names.max and not names.F and not names.string)\n");
}

static void test_sandbox(void **state) {
    run(*state,
        "local v = assert(vm.new{name = 'sb'})\n"
        "for _, g in ipairs{'io', 'os', 'package', 'debug', 'coroutine', 'require', 'dofile', 'loadfile', "
        "'collectgarbage', 'print'} do\n"
        "  fails(\"error: p.lua:1: undefined global '\" .. g .. \"'\", v:load('return ' .. g, 'p.lua'))\n"
        "end\n"
        "fails(\"error: p.lua:1: undefined global 'nope'\", v:load('x = 1 + nope', 'p.lua'))\n"
        "fails('error: ', v:load(string.dump(function() end)))\n"
        "fails('error: ', v:load('return load(...)'))\n"
        "assert(v:load('function ld(s) return load(s) end'))\n"
        "local ok, f, err = v:call('ld', string.dump(function() end)); eq(f, nil); assert(err:find('binary'), err)\n"
        "fails('error: ', v:load('string.rep = nil'))\n"
        "fails('error: ', v:load('math.pi = 3'))\n"
        "fails('error: ', v:load('local mt = {__gc = true} setmetatable({}, mt)'))\n"
        "assert(v:load('n = 0 for k in pairs(string) do n = n + 1 end assert(n > 10) assert(string.dump == nil)'))\n"
        "assert(v:load('assert((\"abc\"):upper() == \"ABC\") assert(getmetatable(\"\") == false)'))\n"
        "assert(v:load('print = 1'))  -- shadowing a name is the policy's own business\n"
        "fails('error: (error object is a table value)', v:load('error({})'))\n"
        "fails('error: bad.lua:1:', v:load('syntax error here', 'bad.lua'))\n"
        "fails(\"error: no function 'missing' in policy sb\", v:call('missing'))\n"
        /* closed handle raises; __gc after close does nothing */
        "v:close(); local okc, e = pcall(v.load, v, 'x = 1'); eq(okc, false)\n"
        "assert(e:find('closed vm'), e); assert(tostring(v):find('closed'))\n"
        "do local w <close> = assert(vm.new{}) end\n"
        "assert(not pcall(vm.new, {memory = 10})); assert(not pcall(vm.new, {instructions = -1}))\n");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_memory_bomb, setup, teardown),
        cmocka_unit_test_setup_teardown(test_instruction_bomb, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deep_copy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sandbox, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
