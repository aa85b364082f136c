/* test_pdf.c — the pdf module on the fixtures of tests/fixtures/pdf (see its README): exact text, page
 * joins, encrypted / damaged / too_large tokens, the child's limits, misuse, and out-of-memory raises while
 * the result is handed over (the job is freed first: run under ASan to see it).  Outside a task, as here,
 * pdf.text waits for its child in place. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "host.h"
#include "lua_harness.h"

int luaopen_pdf(lua_State *L);

static const char *prelude =
    "function fixture(name)\n"
    "  local fh = assert(io.open('" CACHOST_ROOT "/tests/fixtures/pdf/' .. name, 'rb'))\n"
    "  local c = fh:read('a'); fh:close(); return c\n"
    "end\n"
    "CARDS = 'Quarterly vendor payments - CONFIDENTIAL\\nCorporate card: 4111 1111 1111 1111 (exp 12/29)\\n'"
    " .. 'Deploy key id AKIAIOSFODNN7EXAMPLE\\nsecret: wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY'\n";

static int setup(void **state) { return harness_open(state, "pdf", luaopen_pdf, prelude); }

static void test_text(void **state) {
    run(*state,
        "eq(pdf.text(fixture('cards.pdf')), CARDS, 'cards.pdf')\n"
        "eq(pdf.text(fixture('multipage.pdf')), 'Page one: nothing to see here.\\n'"
        "   .. 'Page two: payroll card 5555 5555 5555 4444\\nPage three: SSN 536-22-1234', 'pages joined by newlines')\n"
        "local big = pdf.text(fixture('big.pdf'))\n"
        "local rows = 0; for _ in big:gmatch('Row %d+: card 4111 1111 1111 1111') do rows = rows + 1 end\n"
        "eq(rows, 1000, 'rows of the 20 deflated pages')\n");
}

static void test_errors(void **state) {
    run(*state,
        "local t, err = pdf.text(fixture('encrypted.pdf'))\n"
        "eq(t, nil); eq(err, 'encrypted')\n"
        "for _, c in ipairs({fixture('damaged.pdf'), '', 'plain text', '%PDF-1.4\\n%%EOF\\n'}) do\n"
        "  t, err = pdf.text(c)\n"
        "  eq(t, nil, 'damaged'); assert(err:find('^damaged: .'), err)\n"
        "end\n");
}

static void test_max_bytes(void **state) {
    run(*state,
        "eq(pdf.text(fixture('cards.pdf'), #CARDS), CARDS, 'text of exactly max bytes')\n"
        "local t, err = pdf.text(fixture('cards.pdf'), #CARDS - 1)\n"
        "eq(t, nil); eq(err, 'too_large')\n"
        "t, err = pdf.text(fixture('cards.pdf'), 0)\n"
        "eq(err, 'too_large', 'max 0')\n"
        "local mp = fixture('multipage.pdf')\n"
        "local full = pdf.text(mp)\n"
        "eq(pdf.text(mp, #full), full)\n"
        "eq(select(2, pdf.text(mp, #full - 1)), 'too_large', 'the last page passes the cap')\n"
        "eq(select(2, pdf.text(fixture('big.pdf'), 100)), 'too_large', 'stops at the first page')\n");
}

static void test_limits(void **state) {
    run(*state,
        "local big = fixture('big.pdf')\n"
        "if pdf.memory_limited then\n"
        "  local t, err = pdf.text(big, nil, {memory_bytes = 0})\n"
        "  eq(t, nil, 'no room to parse')\n"
        "  assert(err == 'too_complex' or err:find('^crashed: %a+ %d+$'), err)\n"
        "end\n"
        "eq(#pdf.text(big, nil, {cpu_seconds = 5, memory_bytes = 256 << 20}), #pdf.text(big), 'room enough')\n"
        "assert(not pcall(pdf.text, big, nil, {cpu_seconds = 0}))\n"
        "assert(not pcall(pdf.text, big, nil, {memory_bytes = -1}))\n"
        "assert(not pcall(pdf.text, big, nil, 'fast'))\n");
}

static void test_misuse(void **state) {
    run(*state,
        "assert(not pcall(pdf.text))\n"
        "assert(not pcall(pdf.text, {}))\n"
        "assert(not pcall(pdf.text, fixture('cards.pdf'), -1))\n"
        "assert(not pcall(pdf.text, fixture('cards.pdf'), 'lots'))\n"
        "assert(not pcall(pdf.text, fixture('cards.pdf'), 1.5))\n");
}

/* an allocator that fails once `left` bytes have been handed out: raises inside pdf.text */
static size_t left;
static void *limited_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
    (void)ud;
    if (nsize == 0) {
        free(ptr);
        return NULL;
    }
    if (nsize > osize || !ptr) {
        size_t grow = nsize - (ptr ? osize : 0);
        if (grow > left) return NULL;
        left -= grow;
    }
    return realloc(ptr, nsize);
}

static void test_out_of_memory(void **state) {
    (void)state;
    int raised = 0, done = 0;
    /* from too little to enough for the whole text of big.pdf (~35 KB): every raise point on the way */
    for (size_t budget = 20000; budget < 400000; budget += 3000) {
        left = SIZE_MAX;
        lua_State *L = lua_newstate(limited_alloc, NULL);
        assert_non_null(L);
        luaL_openlibs(L);
        luaL_requiref(L, "pdf", luaopen_pdf, 1);
        lua_pop(L, 1);
        if (luaL_dostring(L, prelude) != LUA_OK) fail_msg("prelude: %s", lua_tostring(L, -1));
        if (luaL_dostring(L, "big = fixture('big.pdf'); collectgarbage(); collectgarbage('stop')") != LUA_OK)
            fail_msg("fixture: %s", lua_tostring(L, -1));
        left = budget;
        int rc = luaL_loadstring(L, "local t = pdf.text(big); assert(#t > 30000)");
        if (rc == LUA_OK) rc = lua_pcall(L, 0, 0, 0); /* (luaL_dostring gives 1 for any failure) */
        /* lauxlib's buffer raises a plain error with this message when it cannot grow */
        if (rc == LUA_ERRMEM || (rc == LUA_ERRRUN && strstr(lua_tostring(L, -1), "not enough memory"))) raised++;
        else if (rc == LUA_OK) done++;
        else fail_msg("unexpected %d: %s", rc, lua_tostring(L, -1));
        left = SIZE_MAX;
        lua_close(L); /* runs the box's __gc when the raise left it behind */
    }
    assert_true(raised > 0);
    assert_true(done > 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_text, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_max_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_misuse, setup, teardown),
        cmocka_unit_test(test_out_of_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
