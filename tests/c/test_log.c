/* test_log.c — the log module: redaction, level filter, logfmt quoting, JSON lines that parse back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include "host.h"

int luaopen_log(lua_State *L);
int luaopen_json(lua_State *L);

static const char *prelude =
    "function eq(a, b, what) if a ~= b then error((what or '') .. ': expected ' .. tostring(b) .. ', got ' .. "
    "tostring(a), 2) end end\n"
    "function lines() local t = {} for l in io.lines(path) do t[#t + 1] = l end return t end\n"
    "function has(s, pat) if not s:find(pat, 1, true) then error('missing ' .. pat .. ' in ' .. s, 2) end end\n"
    "function hasnt(s, pat) if s:find(pat, 1, true) then error('unexpected ' .. pat .. ' in ' .. s, 2) end end\n";

struct fixture { lua_State *L; char path[64]; };

static int setup(void **state) {
    struct fixture *fx = calloc(1, sizeof *fx);
    strcpy(fx->path, "/tmp/test_log_XXXXXX");
    int fd = mkstemp(fx->path);
    if (fd < 0) return -1;
    close(fd);
    fx->L = luaL_newstate();
    luaL_openlibs(fx->L);
    luaL_requiref(fx->L, "log", luaopen_log, 1);
    luaL_requiref(fx->L, "json", luaopen_json, 1);
    lua_pop(fx->L, 2);
    lua_pushstring(fx->L, fx->path);
    lua_setglobal(fx->L, "path");
    if (luaL_dostring(fx->L, prelude) != LUA_OK) return -1;
    if (luaL_dostring(fx->L, "assert(log.sink(path))") != LUA_OK) return -1;
    *state = fx;
    return 0;
}

static int teardown(void **state) {
    struct fixture *fx = *state;
    log_shutdown();
    log_set_level("info");
    log_set_json(0);
    lua_close(fx->L);
    unlink(fx->path);
    free(fx);
    return 0;
}

static void run(lua_State *L, const char *code) {
    if (luaL_dostring(L, code) != LUA_OK) fail_msg("lua: %s", lua_tostring(L, -1));
    lua_settop(L, 0);
}

static void test_redaction(void **state) {
    struct fixture *fx = *state;
    lua_State *L = fx->L;
    run(L,
        "log.redact('hunter2-token')\n"
        "log.redact('ab\"cd')\n"           /* escaping would change its bytes */
        "log.redact('abc')\n"              /* too short: ignored */
        "log.info('using hunter2-token now', {auth = 'Bearer hunter2-token', ['hunter2-token'] = 'as key',"
        "         q = 'x ab\"cd y', short = 'abc'})\n"
        "log.json(true)\n"
        "log.warn('json hunter2-token', {auth = 'Bearer hunter2-token', q = 'ab\"cd'})\n"
        "log.json(false)\n");
    log_msg(LOG_ERROR, "c side hunter2-token", "url=\"https://x/?t=%s\" n=%d", "hunter2-token", 3);
    log_set_json(1);
    log_msg(LOG_ERROR, "c json", "tok=%s", "hunter2-token");
    run(L,
        "local ls = lines()\n"
        "eq(#ls, 4, 'line count')\n"
        "for _, l in ipairs(ls) do hasnt(l, 'hunter2'); hasnt(l, 'ab\"cd'); hasnt(l, 'ab\\\\\"cd') end\n"
        "has(ls[1], 'msg=\"using ******** now\"')\n"
        "has(ls[1], 'auth=\"Bearer ********\"')\n"
        "has(ls[1], '********=\"as key\"')\n"
        "has(ls[1], 'short=abc')\n"
        "local j = json.decode(ls[2])\n"
        "eq(j.msg, 'json ********'); eq(j.auth, 'Bearer ********'); eq(j.q, '********')\n"
        "has(ls[3], 'url=\"https://x/?t=********\"')\n"
        "eq(json.decode(ls[4]).tok, '********')\n");
}

static void test_log_redact_c(void **state) {
    (void)state;
    size_t n = 0;
    char *r = log_redact("none here", 9, &n);
    assert_string_equal(r, "none here");
    assert_int_equal(n, 9);
    free(r);
    lua_State *L = ((struct fixture *)*state)->L;
    /* a secret that contains another is masked whole (longest first), repeats all masked */
    run(L, "log.redact('pass'); log.redact('password123')");
    const char *in = "password123 pass passpassword123";
    r = log_redact(in, strlen(in), &n);
    assert_string_equal(r, "******** ******** ****************");
    assert_int_equal(n, strlen(r));
    free(r);
    r = log_redact("", 0, NULL);
    assert_string_equal(r, "");
    free(r);
}

static void test_levels(void **state) {
    lua_State *L = ((struct fixture *)*state)->L;
    assert_int_equal(log_set_level("nope"), -1);
    run(L,
        "eq(log.level(), 'info')\n"
        "log.debug('d1'); log.info('i1'); log.warn('w1'); log.error('e1')\n"
        "eq(log.level('warn'), 'warn'); eq(log.level(), 'warn')\n"
        "log.debug('d2'); log.info('i2'); log.warn('w2'); log.error('e2')\n"
        "log.level('debug')\n"
        "log.debug('d3')\n"
        "assert(not pcall(log.level, 'verbose'))\n"
        "eq(log.level(), 'debug')\n");
    assert_int_equal(log_set_level("error"), 0);
    log_msg(LOG_WARN, "w4", NULL);
    log_msg(LOG_ERROR, "e4", NULL);
    run(L,
        "local got = {}\n"
        "for _, l in ipairs(lines()) do got[#got + 1] = l:match('level=(%a+) msg=(%w+)') .. ':' .. l:match('msg=(%w+)') end\n"
        "eq(table.concat(got, ','), 'info:i1,warn:w1,error:e1,warn:w2,error:e2,debug:d3,error:e4')\n");
}

static void test_logfmt(void **state) {
    lua_State *L = ((struct fixture *)*state)->L;
    run(L,
        "log.info('hello', {zeta = 1, alpha = 'plain', mid = 'two words', eq = 'a=b', empty = '', nl = 'a\\nb',"
        "  q = 'say \"hi\"', f = 1.5, yes = true, [7] = 'numkey', level = 'shadow'})\n"
        "local l = lines()[1]\n"
        "assert(l:match('^time=%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%dZ level=info msg=hello '), l)\n"
        "has(l, ' 7=numkey alpha=plain empty=\"\" eq=\"a=b\" f=1.5 _level=shadow mid=\"two words\" nl=\"a\\\\nb\""
        " q=\"say \\\\\"hi\\\\\"\" yes=true zeta=1')\n"
        "log.info('two words')\n"
        "has(lines()[2], 'msg=\"two words\"')\n"
        "assert(not pcall(log.info, 'x', 'notatable'))\n");
}

static void test_json_lines(void **state) {
    lua_State *L = ((struct fixture *)*state)->L;
    run(L,
        "eq(log.json(true), true)\n"
        "log.error('quote \" backslash \\\\ nl \\n ctl \\1', {n = 42, f = 1.5, b = false, s = 'x y', bad = 'a\\xffb',"
        "  inf = math.huge, u = 'caf\\xc3\\xa9', msg = 'shadow'})\n");
    log_msg(LOG_WARN, "from c", "status=%d ok=%s url=\"%s\" bare", 200, "true", "http://h/p q");
    run(L,
        "local ls = lines()\n"
        "eq(#ls, 2)\n"
        "local j = json.decode(ls[1])\n"
        "assert(j.time:match('^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%dZ$'), j.time)\n"
        "eq(j.level, 'error'); eq(j.msg, 'quote \" backslash \\\\ nl \\n ctl \\1')\n"
        "eq(j.n, 42); eq(j.f, 1.5); eq(j.b, false); eq(j.s, 'x y'); eq(j.bad, 'a\\u{fffd}b')\n"
        "eq(j.inf, 'inf'); eq(j.u, 'caf\\xc3\\xa9'); eq(j._msg, 'shadow')\n"
        "assert(ls[1]:find('\"b\":false,\"bad\"', 1, true), 'sorted keys')\n"
        "local c = json.decode(ls[2])\n"
        "eq(c.level, 'warn'); eq(c.msg, 'from c'); eq(c.status, 200); eq(c.ok, true)\n"
        "eq(c.url, 'http://h/p q'); eq(c._, 'bare')\n");
}

static void test_sink_errors(void **state) {
    lua_State *L = ((struct fixture *)*state)->L;
    run(L,
        "local ok, err = log.sink('/nonexistent-dir/x.log')\n"
        "eq(ok, nil); assert(err:match('^open: '), err)\n"
        "log.info('still to the old sink')\n"
        "eq(#lines(), 1)\n"
        "assert(log.sink(nil))\n");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_redaction, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_redact_c, setup, teardown),
        cmocka_unit_test_setup_teardown(test_levels, setup, teardown),
        cmocka_unit_test_setup_teardown(test_logfmt, setup, teardown),
        cmocka_unit_test_setup_teardown(test_json_lines, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sink_errors, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
