/* hostlib.c — Lua module `host`: facts about this process and small OS services the CLI needs
 * (getopt_long, terminals, environment).  Trusted code only: sandboxes never see it. */
#include "host.h"

#include <arpa/inet.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#define MAX_OPTS 64

/* host.getopt(argv, spec) -> opts, rest | nil, err.  spec = { {"name", arg=bool, short="n", many=bool}, ... } */
static int l_getopt(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_checktype(L, 2, LUA_TTABLE);
    int argc = (int)lua_rawlen(L, 1) + 1, nopt = (int)lua_rawlen(L, 2);
    luaL_argcheck(L, nopt < MAX_OPTS, 2, "too many options");
    struct option longopts[MAX_OPTS + 1];
    char shortopts[3 * MAX_OPTS + 3] = "-:";   /* '-': operands come back in order (c == 1); ':': missing values reported */
    size_t sp = 2;
    const char **argv = lua_newuserdatauv(L, sizeof(char *) * (size_t)(argc + 1), 0);   /* index 3 */
    argv[0] = "cachost";
    for (int i = 1; i < argc; i++) {
        lua_rawgeti(L, 1, i);
        argv[i] = luaL_checkstring(L, -1);   /* the string stays anchored in argv table 1 */
        lua_pop(L, 1);
    }
    argv[argc] = NULL;
    for (int i = 0; i < nopt; i++) {
        lua_rawgeti(L, 2, i + 1);
        lua_rawgeti(L, -1, 1);
        longopts[i].name = luaL_checkstring(L, -1);   /* anchored in spec table */
        lua_pop(L, 1);
        longopts[i].has_arg = lua_getfield(L, -1, "arg") != LUA_TNIL && lua_toboolean(L, -1) ? required_argument : no_argument;
        lua_pop(L, 1);
        longopts[i].flag = NULL;
        longopts[i].val = 256 + i;
        if (lua_getfield(L, -1, "short") == LUA_TSTRING) {
            char c = lua_tostring(L, -1)[0];
            shortopts[sp++] = c;
            if (longopts[i].has_arg) shortopts[sp++] = ':';
        }
        lua_pop(L, 2);
    }
    shortopts[sp] = 0;
    memset(&longopts[nopt], 0, sizeof longopts[nopt]);

    lua_newtable(L);   /* 4: opts */
    lua_newtable(L);   /* 5: rest */
    int nrest = 0, c, idx;
    char err[160] = "";
    opterr = 0;
    optind = 0;        /* glibc: full re-initialisation */
    while ((c = getopt_long(argc, (char *const *)argv, shortopts, longopts, &idx)) != -1) {
        int oi = -1;
        if (c == 1) { lua_pushstring(L, optarg); lua_rawseti(L, 5, ++nrest); continue; }
        if (c == '?') {
            if (optopt) snprintf(err, sizeof err, "unknown option '-%c'", optopt);
            else snprintf(err, sizeof err, "unknown option '%s'", argv[optind - 1]);
            break;
        }
        if (c == ':') {
            snprintf(err, sizeof err, "option '%s' needs a value", argv[optind - 1]);
            break;
        }
        if (c >= 256) oi = c - 256;
        else for (int i = 0; i < nopt; i++) {
            lua_rawgeti(L, 2, i + 1);
            int match = lua_getfield(L, -1, "short") == LUA_TSTRING && lua_tostring(L, -1)[0] == c;
            lua_pop(L, 2);
            if (match) { oi = i; break; }
        }
        if (oi < 0) continue;
        lua_rawgeti(L, 2, oi + 1);
        int many = lua_getfield(L, -1, "many") != LUA_TNIL && lua_toboolean(L, -1);
        lua_pop(L, 2);
        const char *name = longopts[oi].name;
        if (longopts[oi].has_arg) lua_pushstring(L, optarg); else lua_pushboolean(L, 1);
        if (many) {
            if (lua_getfield(L, 4, name) != LUA_TTABLE) { lua_pop(L, 1); lua_newtable(L); lua_pushvalue(L, -1); lua_setfield(L, 4, name); }
            lua_insert(L, -2);
            lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
            lua_pop(L, 1);
        } else {
            lua_setfield(L, 4, name);
        }
    }
    if (err[0]) { lua_pushnil(L); lua_pushstring(L, err); return 2; }
    for (int i = optind; i < argc; i++) { lua_pushstring(L, argv[i]); lua_rawseti(L, 5, ++nrest); }
    return 2;
}

static int l_isatty(lua_State *L) { lua_pushboolean(L, isatty((int)luaL_checkinteger(L, 1))); return 1; }

static int l_getenv(lua_State *L)
{
    const char *v = getenv(luaL_checkstring(L, 1));
    if (v) lua_pushstring(L, v); else lua_pushnil(L);
    return 1;
}

/* host.readpass(prompt) -> line | nil, err: read a secret from the terminal without echo. */
static int l_readpass(lua_State *L)
{
    const char *prompt = luaL_optstring(L, 1, "");
    FILE *tty = fopen("/dev/tty", "r+");
    if (!tty) { lua_pushnil(L); lua_pushliteral(L, "no terminal"); return 2; }
    struct termios old, quiet;
    int fd = fileno(tty), restore = tcgetattr(fd, &old) == 0;
    if (restore) { quiet = old; quiet.c_lflag &= ~(tcflag_t)ECHO; tcsetattr(fd, TCSAFLUSH, &quiet); }
    fputs(prompt, tty);
    fflush(tty);
    char buf[4096];
    char *got = fgets(buf, sizeof buf, tty);
    if (restore) tcsetattr(fd, TCSAFLUSH, &old);
    fputc('\n', tty);
    fclose(tty);
    if (!got) { lua_pushnil(L); lua_pushliteral(L, "no input"); return 2; }
    buf[strcspn(buf, "\r\n")] = 0;
    lua_pushstring(L, buf);
    explicit_bzero(buf, sizeof buf);
    return 1;
}

static int fail(lua_State *L, const char *what)
{
    lua_pushnil(L);
    lua_pushfstring(L, "%s: %s", what, strerror(errno));
    return 2;
}

/* host.mkdir(path[, mode=0700]) -> true | nil, err (an existing directory is fine) */
static int l_mkdir(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    mode_t mode = (mode_t)luaL_optinteger(L, 2, 0700);
    if (mkdir(path, mode) != 0 && errno != EEXIST) return fail(L, path);
    lua_pushboolean(L, 1);
    return 1;
}

/* host.stat(path) -> {type=, mode=, size=, uid=, mtime=} | nil, err (does not follow a final link) */
static int l_stat(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    struct stat st;
    if (lstat(path, &st) != 0) return fail(L, path);
    lua_createtable(L, 0, 5);
    lua_pushstring(L, S_ISDIR(st.st_mode) ? "directory" : S_ISREG(st.st_mode) ? "file" : S_ISLNK(st.st_mode) ? "link" : "other");
    lua_setfield(L, -2, "type");
    lua_pushinteger(L, st.st_mode & 07777);
    lua_setfield(L, -2, "mode");
    lua_pushinteger(L, (lua_Integer)st.st_size);
    lua_setfield(L, -2, "size");
    lua_pushinteger(L, (lua_Integer)st.st_uid);
    lua_setfield(L, -2, "uid");
    lua_pushinteger(L, (lua_Integer)st.st_mtime);
    lua_setfield(L, -2, "mtime");
    return 1;
}

/* host.write_new(path, data[, mode=0600]) -> true | nil, err: create a file that must not exist yet
 * (O_EXCL, no link followed), with its mode set from the start — for key files. */
static int l_write_new(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    size_t len;
    const char *data = luaL_checklstring(L, 2, &len);
    mode_t mode = (mode_t)luaL_optinteger(L, 3, 0600);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    if (fd < 0) return fail(L, path);
    size_t off = 0;
    while (off < len) {
        ssize_t n = write(fd, data + off, len - off);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) { int e = errno; close(fd); unlink(path); errno = e; return fail(L, path); }
        off += (size_t)n;
    }
    if (fsync(fd) != 0 || close(fd) != 0) return fail(L, path);
    lua_pushboolean(L, 1);
    return 1;
}

/* host.listdir(path) -> { names... } (sorted, without . and ..) | nil, err */
static int l_listdir(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    struct dirent **names;
    int n = scandir(path, &names, NULL, alphasort);
    if (n < 0) return fail(L, path);
    lua_createtable(L, n, 0);
    int k = 0;
    for (int i = 0; i < n; i++) {
        if (strcmp(names[i]->d_name, ".") && strcmp(names[i]->d_name, "..")) {
            lua_pushstring(L, names[i]->d_name);   /* may raise on OOM: names leak then, acceptable */
            lua_rawseti(L, -2, ++k);
        }
        free(names[i]);
    }
    free(names);
    return 1;
}

static int l_pid(lua_State *L) { lua_pushinteger(L, getpid()); return 1; }

/* host.lock(path) -> lock | nil, "busy", holder_pid | nil, err: an exclusive flock on path (created
 * 0600, no link followed), without waiting.  The file then holds our pid, so whoever finds it busy can
 * say who holds it.  The kernel releases it when the process ends, however it ends; lock:unlock() (or
 * garbage collection, or a to-be-closed variable) releases it sooner.  Never use it on a SQLite
 * database: closing a descriptor of one drops SQLite's own POSIX locks. */
#define LOCK_MT "host.lock"

static int lock_release(lua_State *L)
{
    int *fd = luaL_checkudata(L, 1, LOCK_MT);
    if (*fd >= 0) { close(*fd); *fd = -1; }   /* closing releases the flock */
    return 0;
}

static int l_lock(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    int *ud = lua_newuserdatauv(L, sizeof *ud, 0);
    *ud = -1;
    if (luaL_newmetatable(L, LOCK_MT)) {
        static const luaL_Reg m[] = {{"unlock", lock_release}, {NULL, NULL}};
        lua_pushcfunction(L, lock_release);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, lock_release);
        lua_setfield(L, -2, "__close");
        luaL_newlib(L, m);
        lua_setfield(L, -2, "__index");
    }
    lua_setmetatable(L, -2);
    int fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) return fail(L, path);
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        char buf[32];
        ssize_t n = e == EWOULDBLOCK ? pread(fd, buf, sizeof buf - 1, 0) : -1;
        close(fd);
        if (e != EWOULDBLOCK) { errno = e; return fail(L, path); }
        buf[n > 0 ? n : 0] = 0;
        lua_pushnil(L);
        lua_pushliteral(L, "busy");
        lua_pushinteger(L, strtol(buf, NULL, 10));
        return 3;
    }
    *ud = fd;
    char pid[32];
    int len = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)len, 0) != len) {
        lua_pushnil(L);
        lua_pushfstring(L, "%s: %s", path, strerror(errno));
        close(fd);
        *ud = -1;
        return 2;
    }
    return 1;
}

/* Text address -> 16 bytes (IPv4 as ::ffff:a.b.c.d, so both families compare alike); 0 if malformed. */
static int ip_parse(const char *s, unsigned char out[16])
{
    struct in_addr v4;
    if (inet_pton(AF_INET, s, &v4) == 1) {
        memset(out, 0, 10);
        out[10] = out[11] = 0xff;
        memcpy(out + 12, &v4, 4);
        return 4;
    }
    return inet_pton(AF_INET6, s, out) == 1 ? 6 : 0;
}

/* host.ip_in(ip, cidr) -> boolean | nil, "bad_cidr".  "a.b.c.d/n", "v6::/n" or a single address; an
 * ip that is not an address (events carry anything) is simply not in it. */
static int l_ip_in(lua_State *L)
{
    const char *ip = lua_type(L, 1) == LUA_TSTRING ? lua_tostring(L, 1) : "";
    const char *cidr = luaL_checkstring(L, 2);
    char net[INET6_ADDRSTRLEN + 1];
    const char *slash = strchr(cidr, '/');
    size_t nl = slash ? (size_t)(slash - cidr) : strlen(cidr);
    unsigned char a[16], n[16];
    int fam = 0;
    if (nl < sizeof net) {
        memcpy(net, cidr, nl);
        net[nl] = 0;
        fam = ip_parse(net, n);
    }
    long bits = fam == 4 ? 32 : 128;
    if (fam && slash) {
        char *end;
        long b = strtol(slash + 1, &end, 10);
        bits = (*end || end == slash + 1 || b < 0 || b > bits) ? -1 : b;
    }
    if (!fam || bits < 0) {
        lua_pushnil(L);
        lua_pushliteral(L, "bad_cidr");
        return 2;
    }
    if (fam == 4) bits += 96;
    int in = ip_parse(ip, a) != 0;
    for (long i = 0; in && i < bits; i += 8) {
        unsigned char mask = bits - i >= 8 ? 0xff : (unsigned char)(0xff << (8 - (bits - i)));
        in = ((a[i / 8] ^ n[i / 8]) & mask) == 0;
    }
    lua_pushboolean(L, in);
    return 1;
}

int luaopen_host(lua_State *L)
{
    static const luaL_Reg f[] = {
        {"getopt", l_getopt}, {"isatty", l_isatty}, {"getenv", l_getenv}, {"readpass", l_readpass},
        {"pid", l_pid}, {"lock", l_lock}, {"mkdir", l_mkdir}, {"stat", l_stat}, {"write_new", l_write_new}, {"listdir", l_listdir},
        {"ip_in", l_ip_in}, {NULL, NULL}};
    luaL_newlib(L, f);
    lua_pushliteral(L, CACHOST_VERSION);
    lua_setfield(L, -2, "version");
    lua_pushstring(L, H.root);
    lua_setfield(L, -2, "root");
    return 1;
}
