/* test_regex.c — the regex module (PCRE2): find positions and captures, init like string.find, gmatch and
 * empty matches, flags, syntax errors and misuse, match limits, and freeing (run under ASan by make asan). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include "lua_harness.h"

int luaopen_regex(lua_State *L);

static int setup(void **state) { return harness_open(state, "regex", luaopen_regex, NULL); }

static void test_find(void **state)
{
    run(*state,
        "local re = assert(regex.compile('(\\\\d+)-(x)?'))\n"
        "local s, e, a, b = re:find('ab 12- 34-x')\n"
        "eq(s, 4, 's'); eq(e, 6, 'e'); eq(a, '12', 'cap 1'); eq(b, false, 'unset cap is false')\n"
        "s, e, a, b = re:find('ab 12- 34-x', 6)\n"
        "eq(s, 8, 'init'); eq(e, 11, 'init e'); eq(a, '34', 'init cap'); eq(b, 'x', 'cap 2')\n"
        "eq(select('#', re:find('ab 12- 34-x', 6)), 4, 'two captures')\n"
        "eq(re:find('ab 12- 34-x', -4), 8, 'negative init counts from the end')\n"
        "eq(re:find('ab 12- 34-x', -100), 4, 'before the start is 1')\n"
        "eq(re:find('ab 12- 34-x', 0), 4, 'zero is 1')\n"
        "eq(re:find('nothing here'), nil, 'no match')\n"
        "local empty = assert(regex.compile('x*'))\n"
        "eq(empty:find('ab', 3), 3, 'init #s + 1 may match empty')\n"
        "eq(select(2, empty:find('ab', 3)), 2, 'empty match e = s - 1')\n"
        "eq(empty:find('ab', 4), nil, 'init past #s + 1')\n"
        "eq(assert(regex.compile('a\\\\0b')):find('xa\\0b'), 2, 'NUL in pattern and subject')\n"
        "eq(assert(regex.compile('^b')):find('ab', 2), nil, '^ is the start of the subject')\n"
        "eq(assert(regex.compile('\\\\Gb')):find('ab', 2), 2, '\\\\G anchors at init')\n"
        "eq(assert(regex.compile('(?<![0-9])[0-9]{3}')):find('1234 567', 2), 6, 'lookbehind sees before init')\n");
}

static void test_flags(void **state)
{
    run(*state,
        "eq(assert(regex.compile('abc')):find('xABC'), nil, 'case')\n"
        "eq(assert(regex.compile('abc', 'i')):find('xABC'), 2, 'i')\n"
        "eq(assert(regex.compile('^b', 'm')):find('a\\nb'), 3, 'm')\n"
        "eq(assert(regex.compile('a.b', 's')):find('a\\nb'), 1, 's')\n"
        "eq(assert(regex.compile('a.b')):find('a\\nb'), nil, 'no s')\n"
        "eq(assert(regex.compile('a b # comment', 'x')):find('ab'), 1, 'x')\n"
        "eq(select(2, assert(regex.compile('.', 'u')):find('\\xc3\\xa9')), 2, 'u: one character, two bytes')\n"
        "eq(select(2, assert(regex.compile('.')):find('\\xc3\\xa9')), 1, 'bytes by default')\n"
        "local ok, err = pcall(regex.compile, 'a', 'q')\n"
        "assert(not ok and err:find('unknown flag'), 'unknown flag raises: ' .. tostring(err))\n"
        "eq(type(regex.jit), 'boolean', 'regex.jit')\n");
}

static void test_errors(void **state)
{
    run(*state,
        "local re, err = regex.compile('(a')\n"
        "eq(re, nil, 'syntax'); assert(err:find('^syntax: .* at 2$'), err)\n"
        "re, err = regex.compile('a{2,1}')\n"
        "assert(not re and err:find('^syntax: '), tostring(err))\n"
        "assert(not pcall(regex.compile), 'no pattern raises')\n"
        "assert(not pcall(regex.compile, {}), 'table pattern raises')\n"
        "local ok = pcall(function() local r = assert(regex.compile('a')); return r.find(42, 'a') end)\n"
        "assert(not ok, 'find on a non-regex raises')\n"
        "assert(not pcall(function() return assert(regex.compile('a')):find(nil) end), 'nil subject raises')\n"
        /* catastrophic backtracking hits the match limit: nil, "too_complex", not a hang */
        "local bad = assert(regex.compile('(a+)+$'))\n"
        "local s, e = bad:find(('a'):rep(40) .. 'b')\n"
        "eq(s, nil, 'limit s'); eq(e, 'too_complex', 'limit token')\n"
        /* the limits leave ordinary nested matches alone */
        "local deep = assert(regex.compile('(?:(a)|b)*+c'))\n"
        "eq(deep:find(('a'):rep(100) .. 'c'), 1, 'a legit nested match')\n"
        "assert(tostring(bad):find('^regex'), 'tostring')\n");
}

static void test_gmatch(void **state)
{
    run(*state,
        "local out = {}\n"
        "for s, e, d in assert(regex.compile('([0-9]+)')):gmatch('a1 22 333') do out[#out + 1] = s .. ':' .. e .. ':' .. d end\n"
        "eq(table.concat(out, ' '), '2:2:1 4:5:22 7:9:333', 'gmatch')\n"
        "out = {}\n"
        "for s, e in assert(regex.compile('b*')):gmatch('abc') do out[#out + 1] = s .. ':' .. e end\n"
        "eq(table.concat(out, ' '), '1:0 2:2 3:2 4:3', 'empty matches advance (Perl semantics)')\n"
        "out = {}\n"
        "for s in assert(regex.compile('a')):gmatch('aaaa', 3) do out[#out + 1] = s end\n"
        "eq(table.concat(out, ' '), '3 4', 'gmatch init')\n"
        "local n = 0\n"
        "for _ in assert(regex.compile('a')):gmatch('aaa', 9) do n = n + 1 end\n"
        "eq(n, 0, 'gmatch past the end')\n"
        "local it = assert(regex.compile('(a+)+$')):gmatch(('a'):rep(40) .. 'b')\n"
        "local ok, err = pcall(it)\n"
        "assert(not ok and err:find('too_complex'), 'gmatch raises on a match error: ' .. tostring(err))\n");
}

/* many patterns and matches with captures, dropped and collected: ASan/LSan would see a leaked block */
static void test_collect(void **state)
{
    run(*state,
        "for i = 1, 2000 do\n"
        "  local re = assert(regex.compile('(x)(y)?' .. i))\n"
        "  re:find('xy' .. i)\n"
        "  for _ in re:gmatch('x' .. i .. 'x' .. i) do end\n"
        "  regex.compile('(' .. i)\n"
        "end\n"
        "collectgarbage(); collectgarbage()\n"
        "local re = assert(regex.compile('a'))\n"
        "local gc = getmetatable(re).__gc\n"
        "gc(re); gc(re)\n"
        "assert(not pcall(re.find, re, 'a'), 'a freed regex raises')\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_find, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flags, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gmatch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_collect, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
