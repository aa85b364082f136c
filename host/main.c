/* main.c — the `cachost` command: global options, then the Lua CLI (scripts/cli.lua) run as a task. */
#include "host.h"

#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void host_openlibs(lua_State *L);
void sched_init(void);
void sched_shutdown(void);
int task_outcome(lua_State *L, struct task *t);
void host_shutdown(void);

static const char usage[] =
    "usage: cachost [--home DIR] [--log-level LEVEL] [--log-format logfmt|json] [--trace-http FILE] [--debug]\n"
    "               COMMAND [ARGS]\n"
    "Run 'cachost help' for the commands.\n";

static int exists(const char *dir, const char *file)
{
    char p[PATH_MAX];
    struct stat st;
    if ((size_t)snprintf(p, sizeof p, "%s/%s", dir, file) >= sizeof p) return 0;
    return stat(p, &st) == 0;
}

/* Where scripts/ is, found from the binary so that an installed tree is relocatable: PREFIX/bin/cachost
 * reads PREFIX/share/cachost (make install), a build tree reads its source tree; else the compiled-in
 * root. */
static const char *find_root(void)
{
    static char buf[PATH_MAX];
    const char *env = getenv("CACHOST_ROOT");
    if (env && *env) return env;
    ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (n > 0) {
        buf[n] = 0;
        for (int up = 0; up < 2; up++) {
            char *slash = strrchr(buf, '/');
            if (!slash) break;
            *slash = 0;
            if (exists(buf, "scripts/cli.lua")) return buf;
            if (up == 1 && exists(buf, "share/cachost/scripts/cli.lua")
                && strlen(buf) + sizeof "/share/cachost" <= sizeof buf) {
                strcat(buf, "/share/cachost");
                return buf;
            }
        }
    }
    return CACHOST_ROOT;
}

/* Message handler for protected calls from C: the error with a traceback. */
static int traceback(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    if (!msg) msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    luaL_traceback(L, L, msg, 1);
    return 1;
}

/* Runs inside lua_pcall: everything that may raise happens here (lua.c's pmain). */
static int pmain(lua_State *L)
{
    int argc = (int)lua_tointeger(L, 1);
    char **argv = lua_touserdata(L, 2);
    luaL_openlibs(L);
    host_openlibs(L);
    lua_getglobal(L, "host");
    lua_newtable(L);
    for (int i = 0; i < argc; i++) { lua_pushstring(L, argv[i]); lua_rawseti(L, -2, i + 1); }
    lua_setfield(L, -2, "args");
    lua_pop(L, 1);

    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/scripts/cli.lua", H.root);
    lua_pushcfunction(L, traceback);
    if (luaL_loadfilex(L, path, "t") != LUA_OK) return lua_error(L);
    lua_call(L, 0, 1);                        /* cli.lua returns its main function */
    luaL_checktype(L, -1, LUA_TFUNCTION);
    struct task *t = task_spawn(L, 0, "main");
    task_push(L, t);                          /* keeps its outcome reachable after it ends */
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, "quiet");             /* its failure is reported below, once */
    if (sched_run() < 0) return luaL_error(L, "event loop failed");
    if (H.stopping == 2) return 0;            /* forced stop: exit code already set */
    int n = task_outcome(L, t);               /* ok, results... | false, err */
    if (!lua_toboolean(L, -n)) {
        fprintf(stderr, "cachost: %s\n", lua_tostring(L, -n + 1));
        H.exit_code = 1;
    } else {
        H.exit_code = n > 1 && lua_isinteger(L, -n + 1) ? (int)lua_tointeger(L, -n + 1) : 0;
    }
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"home", required_argument, 0, 'H'}, {"log-level", required_argument, 0, 'l'},
        {"log-format", required_argument, 0, 'f'}, {"trace-http", required_argument, 0, 't'},
        {"help", no_argument, 0, 'h'}, {"version", no_argument, 0, 'V'}, {"debug", no_argument, 0, 'd'},
        {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "+hV", opts, NULL)) != -1) {
        switch (c) {
        case 'H': setenv("CACHOST_HOME", optarg, 1); break;
        case 'l':
            if (log_set_level(optarg) < 0) { fprintf(stderr, "cachost: unknown log level '%s' (debug, info, warn, error)\n", optarg); return 2; }
            break;
        case 'f':
            if (strcmp(optarg, "json") && strcmp(optarg, "logfmt")) { fprintf(stderr, "cachost: unknown log format '%s' (logfmt, json)\n", optarg); return 2; }
            log_set_json(!strcmp(optarg, "json"));
            break;
        case 't': setenv("CACHOST_TRACE_HTTP", optarg, 1); break;
        case 'd': setenv("CACHOST_DEBUG", "1", 1); break;   /* errors with their Lua trace */
        case 'h': argv[--optind] = "help"; goto run;
        case 'V': puts("cachost " CACHOST_VERSION); return 0;
        default: fputs(usage, stderr); return 2;
        }
    }
    if (optind >= argc) { fputs(usage, stderr); return 2; }
    if (!strcmp(argv[optind], "version") && optind + 1 == argc) { puts("cachost " CACHOST_VERSION); return 0; }   /* fast path */
run:
    H.root = find_root();
    H.L = luaL_newstate();
    if (!H.L) { fputs("cachost: cannot create the Lua state\n", stderr); return 1; }
    sched_init();
    lua_pushcfunction(H.L, pmain);
    lua_pushinteger(H.L, argc - optind);
    lua_pushlightuserdata(H.L, argv + optind);
    if (lua_pcall(H.L, 2, 0, 0) != LUA_OK) {
        fprintf(stderr, "cachost: %s\n", lua_tostring(H.L, -1));
        H.exit_code = 1;
    }
    int code = H.exit_code;
    host_shutdown();
    return code;
}
