/* test_iso8601.c — the iso8601 module: provider timestamps to epoch seconds and back, and what it refuses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include "lua_harness.h"

int luaopen_iso8601(lua_State *L);

static int setup(void **state) { return harness_open(state, "iso8601", luaopen_iso8601, NULL); }

static void test_parse_forms(void **state)
{
    run(*state,
        "local p = iso8601.parse\n"
        "eq(p('2024-05-01T12:00:00Z'), 1714564800, 'Z')\n"
        "eq(p('2024-05-01T12:00:00.5Z'), 1714564800.5, 'fraction')\n"
        "eq(p('2024-05-01T12:00:00.Z'), 1714564800, 'empty fraction')\n"
        "eq(p('2024-05-01 12:00:00'), 1714564800, 'space, no zone is UTC')\n"
        "eq(p('2024-05-01T14:00:00+02:00'), 1714564800, '+hh:mm')\n"
        "eq(p('2024-05-01T07:00:00-0500'), 1714564800, '-hhmm')\n"
        "eq(p('1969-12-31T23:59:59Z'), -1, 'before the epoch')\n"
        "eq(p('2000-02-29T00:00:00Z'), 951782400, 'leap day')\n"
        "assert(math.abs(p('2024-05-01T12:00:00.1234567Z') - 1714564800.1234567) < 1e-6, '7 digits')\n");
}

static void test_parse_refuses(void **state)
{
    run(*state,
        "for _, s in ipairs { '2024-13-01T00:00:00Z', '2024-05-32T00:00:00Z', '2024-05-01T24:00:00Z',\n"
        "  '2024-05-01T12:60:00Z', '2024-05-01', '2024-05-01T12:00:00Q', '2024-05-01T12:00:00+2',\n"
        "  '2024-05-01T12:00:00ZZ', '2024-05-01T12:00:00+02:00x', '2024-05-01T1a:00:00Z', '', 'x' } do\n"
        "  eq(iso8601.parse(s), nil, s)\n"
        "end\n"
        "eq(iso8601.parse(nil), nil, 'nil'); eq(iso8601.parse(5), nil, 'number'); eq(iso8601.parse({}), nil, 'table')\n"
        /* found by fuzz_iso8601: an offset that moves the time out of years 0000-9999 gave a time whose
         * format (year 10000, or -001) parse cannot read back */
        "eq(iso8601.parse('9999-12-31T23:59:60-23:59'), nil, 'past 9999')\n"
        "eq(iso8601.parse('0000-01-01T00:00:00+00:01'), nil, 'before 0000')\n"
        "eq(iso8601.parse('9999-12-31T23:59:60.5Z'), nil, 'leap second into 10000')\n"
        "local t = iso8601.parse('9999-12-31T23:59:59.999Z'); eq(iso8601.parse(iso8601.format(t)), t, 'last')\n"
        "t = iso8601.parse('0000-01-01T00:00:00Z'); eq(iso8601.parse(iso8601.format(t)), t, 'first')\n");
}

static void test_format(void **state)
{
    run(*state,
        "eq(iso8601.format(1714564800.5), '2024-05-01T12:00:00.500Z', 'ms')\n"
        "eq(iso8601.format(1714564800.9999), '2024-05-01T12:00:00.999Z', 'never rounds into the next second')\n"
        "eq(iso8601.format(0), '1970-01-01T00:00:00.000Z', 'epoch')\n"
        "eq(iso8601.parse(iso8601.format(1e9 + 0.25)), 1e9 + 0.25, 'round trip')\n"
        "assert(not pcall(iso8601.format, 0/0), 'NaN raises')\n"
        "assert(not pcall(iso8601.format, 'soon'), 'text raises')\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_parse_forms, setup, teardown),
        cmocka_unit_test_setup_teardown(test_parse_refuses, setup, teardown),
        cmocka_unit_test_setup_teardown(test_format, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
