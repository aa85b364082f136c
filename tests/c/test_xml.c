/* test_xml.c — the xml module: documents to tables, and what it refuses (DTDs and entities, limits,
 * malformed input) with one "bad_xml: ..." line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include "lua_harness.h"

int luaopen_xml(lua_State *L);

/* refused(s, what, pattern[, opts]): decode fails with the bad_xml token and a message matching pattern */
static const char *prelude =
    "function refused(s, pattern, opts)\n"
    "  local v, err, tok = xml.decode(s, opts)\n"
    "  eq(v, nil, pattern); eq(tok, 'bad_xml', pattern)\n"
    "  assert(err:match('^bad_xml: ') and not err:find('\\n'), err)\n"
    "  assert(err:find(pattern), 'expected ' .. pattern .. ', got ' .. err)\n"
    "end\n";

static int setup(void **state) { return harness_open(state, "xml", luaopen_xml, prelude); }

static void test_shape(void **state)
{
    run(*state,
        "local r = assert(xml.decode('<?xml version=\"1.0\"?>\\n<R xmlns=\"urn:x\" a=\"1\">'\n"
        "  .. ' <A>x &amp; y</A><B k=\"v&lt;\"/><A><![CDATA[<raw>]]></A>&#65;<!-- c --><?pi z?></R>'))\n"
        "eq(r.name, 'R', 'name'); eq(r.attrs.xmlns, 'urn:x', 'xmlns is an attr'); eq(r.attrs.a, '1', 'attr')\n"
        "eq(#r, 3, 'three children'); eq(r[1].name, 'A'); eq(r[2].name, 'B'); eq(r[3].name, 'A')\n"
        "eq(r[1].text, 'x & y', 'entity'); eq(r[2].attrs.k, 'v<', 'attr entity'); eq(r[2].text, '', 'empty')\n"
        "eq(r[3].text, '<raw>', 'cdata'); eq(r.text, ' A', 'own text only, char ref')\n"
        "eq(next(r[1].attrs), nil, 'no attrs is an empty table')\n"
        "local p = assert(xml.decode('<a:x xmlns:a=\"u\"><a:y>\\u{e9}</a:y></a:x>'))\n"
        "eq(p.name, 'a:x', 'prefix kept'); eq(p[1].text, '\\u{e9}', 'utf-8')\n"
        "local l = assert(xml.decode('<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><a>\\xe9</a>'))\n"
        "eq(l.text, '\\u{e9}', 'latin-1 to utf-8')\n"
        "local t = assert(xml.decode('<a>one<b>two</b>three</a>'))\n"
        "eq(t.text, 'onethree', 'text around a child'); eq(t[1].text, 'two')\n");
}

static void test_refuses(void **state)
{
    run(*state,
        "refused('', 'no element found')\n"
        "refused('<a>', 'line 1')\n"
        "refused('<a></b>', 'mismatched tag')\n"
        "refused('<a/><b/>', 'junk after document element')\n"
        "refused('<a>&nope;</a>', 'undefined entity')\n"
        "refused('<a>\\xff</a>', 'not well%-formed')\n"
        /* billion laughs, external entities, a bare DOCTYPE: all refused before any expansion */
        "local lol = '<?xml version=\"1.0\"?><!DOCTYPE l [<!ENTITY a \"aaaaaaaaaa\">'\n"
        "for i = 1, 9 do lol = lol .. ('<!ENTITY %s \"%s\">'):format(string.char(97 + i), ('&' .. string.char(96 + i) .. ';'):rep(10)) end\n"
        "refused(lol .. ']><l>&j;</l>', 'DOCTYPE not allowed')\n"
        "refused('<!DOCTYPE a SYSTEM \"file:///etc/passwd\"><a/>', 'DOCTYPE not allowed')\n"
        "refused('<!DOCTYPE a [<!ENTITY x SYSTEM \"file:///etc/passwd\">]><a>&x;</a>', 'DOCTYPE not allowed')\n"
        "refused('<!DOCTYPE a><a/>', 'DOCTYPE')\n");
}

static void test_limits(void **state)
{
    run(*state,
        "local deep = ('<a>'):rep(129) .. ('</a>'):rep(129)\n"
        "refused(deep, 'nesting deeper than 128')\n"
        "assert(xml.decode(('<a>'):rep(128) .. ('</a>'):rep(128)), 'depth 128 is fine')\n"
        "refused('<a><b/></a>', 'nesting deeper than 1', { max_depth = 1 })\n"
        "refused('<a>' .. ('x'):rep(100) .. '</a>', 'over the limit of 50', { max_size = 50 })\n"
        "refused('<a><b/><b/></a>', 'more than 2 elements', { max_nodes = 2 })\n"
        "assert(xml.decode('<a><b/></a>', { max_nodes = 2, max_depth = 2, max_size = 11 }), 'at the limits')\n"
        /* misuse raises */
        "assert(not pcall(xml.decode, nil), 'nil raises')\n"
        "assert(not pcall(xml.decode, '<a/>', 5), 'non-table opts raise')\n"
        "assert(not pcall(xml.decode, '<a/>', { max_depth = 0 }), 'zero raises')\n"
        "assert(not pcall(xml.decode, '<a/>', { max_size = 'x' }), 'text raises')\n"
        "assert(not pcall(xml.decode, '<a/>', { max_nodes = 1.5 }), 'float raises')\n"
        /* the parser is freed on every path: many failures and successes in a row stay bounded */
        "for i = 1, 2000 do xml.decode('<a><b>' .. i .. '</b>'); xml.decode('<a>' .. i .. '</a>') end\n"
        "collectgarbage(); collectgarbage()\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_shape, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuses, setup, teardown),
        cmocka_unit_test_setup_teardown(test_limits, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
