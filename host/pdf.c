/* pdf.c — the `pdf` Lua module: the text of a PDF held in memory (poppler-glib), for the DLP extractors.
 *
 *   pdf.text(bytes[, max_bytes[, {cpu_seconds =, memory_bytes =}]]) -> text | nil, err
 *   pdf.memory_limited: false in a build whose address space cannot be capped (AddressSanitizer)
 *
 * Pages are joined with "\n".  err tokens: "encrypted" (a user password is needed), "too_large" (the text
 * passes max_bytes, default 64 MiB), "unavailable" (libpoppler-glib cannot be loaded; a third value says
 * why), "damaged: <poppler message>", "too_complex" (the CPU limit), "crashed: signal N" or "crashed:
 * exit N" (e.g. out of memory under its limit), "timeout".
 *
 * Poppler parses untrusted documents, and the daemon holds every tenant's tokens: a crash, a hang or a
 * memory bomb in it must cost that file's scan, nothing more.  So the parsing runs in a child process
 * (fork) with CPU and address-space limits and no descriptor but the pipe it writes the text to.  Inside a
 * task the parent waits on that pipe through the event loop (other tasks go on); outside one it blocks.
 *
 * poppler-glib drags in glib, gobject, cairo, freetype, lcms, nss... (some forty libraries): linked, they
 * would cost every start, `cachost version` included.  Like libcurl and libpq, it is loaded (dl.h) the
 * first time pdf.text runs (in the parent, so every child inherits it).
 */
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <poll.h>
#include <poppler.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dl.h"
#include "host.h"

#define DEFAULT_MAX (64 << 20)
#define CPU_SECONDS 30                 /* of parsing per document (default) */
#define MEMORY_BYTES (1024L << 20)     /* the child may map this much beyond what it inherits (default) */
#define WALL_SECONDS 120.0             /* a child blocked on something else is killed after this */

/* how the child ends (its exit status); the text or the message is on the pipe */
enum { CHILD_TEXT = 0, CHILD_ENCRYPTED = 10, CHILD_TOO_LARGE = 11, CHILD_DAMAGED = 12 };

#define PDF_DL_FUNCTIONS(X)                                                                  \
    X(GBytes *, g_bytes_new_static, (gconstpointer, gsize))                                  \
    X(GQuark, poppler_error_quark, (void))                                                   \
    X(PopplerDocument *, poppler_document_new_from_bytes, (GBytes *, const char *, GError **)) \
    X(int, poppler_document_get_n_pages, (PopplerDocument *))                                \
    X(PopplerPage *, poppler_document_get_page, (PopplerDocument *, int))                    \
    X(char *, poppler_page_get_text, (PopplerPage *))

/* dl_ prefixed: glib may define some of these names as macros */
#define PDF_DL_POINTER(ret, name, args) static DL_POINTER(ret, name, args)
PDF_DL_FUNCTIONS(PDF_DL_POINTER)

/* Loads poppler-glib once; returns NULL, or a message saying why it could not be loaded.  The g_*
 * functions come from glib/gobject, its dependencies. */
static const char *pdf_dl_load(void)
{
    static const struct dl_symbol symbols[] = {PDF_DL_FUNCTIONS(DL_SYMBOL)};
    static struct dl_library poppler = {.soname = "libpoppler-glib.so.8", .install = "apt-get install libpoppler-glib8",
                                        .version = "poppler 0.82 or newer"};
    return dl_load(&poppler, symbols, DL_COUNT(symbols));
}

/* ---- the child: plain C, no Lua; everything it holds is freed by its exit ---- */

static void write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) _exit(CHILD_DAMAGED);   /* the parent went away */
        p += w;
        n -= (size_t)w;
    }
}

struct limits { lua_Integer cpu, memory; };

static void confine(struct limits lim)
{
    for (int s = 1; s < NSIG; s++) signal(s, SIG_DFL);   /* not the parent's handlers (libevent's pipe) */
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    struct rlimit cpu = {(rlim_t)lim.cpu, (rlim_t)lim.cpu + 1};  /* SIGXCPU, then SIGKILL */
    setrlimit(RLIMIT_CPU, &cpu);
#ifndef __SANITIZE_ADDRESS__   /* ASan's shadow memory is terabytes of address space */
    long pages = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld", &pages) != 1) pages = 0;
        fclose(f);
    }
    if (pages > 0) {
        rlim_t as = (rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE) + (rlim_t)lim.memory;
        struct rlimit mem = {as, as};
        setrlimit(RLIMIT_AS, &mem);
    }
#endif
}

static void child(const char *bytes, size_t len, size_t max, struct limits lim, int out) __attribute__((noreturn));
static void child(const char *bytes, size_t len, size_t max, struct limits lim, int out)
{
    if (out != 3) {
        dup2(out, 3);
        out = 3;
    }
    closefrom(4);   /* the store, sockets, the vault: nothing of the parent's is reachable */
    int null = open("/dev/null", O_WRONLY);   /* poppler and glib complain on stderr: not in our log */
    if (null >= 0) dup2(null, 2);
    confine(lim);
    GError *gerr = NULL;
    PopplerDocument *doc = dl_poppler_document_new_from_bytes(dl_g_bytes_new_static(bytes, len), NULL, &gerr);
    if (!doc) {
        if (gerr && gerr->domain == dl_poppler_error_quark() && gerr->code == POPPLER_ERROR_ENCRYPTED)
            _exit(CHILD_ENCRYPTED);
        const char *msg = gerr && gerr->message ? gerr->message : "unreadable PDF";
        write_all(out, msg, strlen(msg));
        _exit(CHILD_DAMAGED);
    }
    size_t total = 0;
    int n = dl_poppler_document_get_n_pages(doc);
    for (int i = 0; i < n; i++) {
        PopplerPage *page = dl_poppler_document_get_page(doc, i);
        const char *text = page ? dl_poppler_page_get_text(page) : NULL;   /* a page it cannot parse: empty */
        size_t tl = text ? strlen(text) : 0;
        if (total + tl + (i > 0) > max) _exit(CHILD_TOO_LARGE);
        if (i > 0) write_all(out, "\n", 1);
        write_all(out, text ? text : "", tl);
        total += tl + (i > 0);
    }
    _exit(CHILD_TEXT);
}

/* ---- the parent ---- */

typedef struct {
    pid_t pid;
    int fd;                 /* the pipe's read end, non-blocking */
    struct event *ev;
    struct task *task;
    char *buf;
    size_t len, cap, max;
    int overflow;           /* the child wrote more than max (it checks too: belt and braces) */
    int read_rc;            /* job_read's at the end: 1 end of file, -1 error */
} job_t;

static void job_free(job_t *j)
{
    if (j->ev) event_free(j->ev);
    if (j->fd >= 0) close(j->fd);
    if (j->pid > 0) {
        kill(j->pid, SIGKILL);
        while (waitpid(j->pid, NULL, 0) < 0 && errno == EINTR) {}
    }
    free(j->buf);
    free(j);
}

/* Reads what is there: 1 at end of file, 0 for more to come, -1 on error. */
static int job_read(job_t *j)
{
    for (;;) {
        char chunk[65536];
        ssize_t n = read(j->fd, chunk, sizeof chunk);
        if (n == 0) return 1;
        if (n < 0) return errno == EINTR ? 0 : errno == EAGAIN ? 0 : -1;
        if (j->len + (size_t)n > j->max + 1) {   /* keep reading to EOF, keep nothing more */
            j->overflow = 1;
            continue;
        }
        if (j->len + (size_t)n > j->cap) {
            size_t cap = j->cap ? j->cap : 65536;
            while (cap < j->len + (size_t)n) cap *= 2;
            char *b = realloc(j->buf, cap);
            if (!b) return -1;
            j->buf = b;
            j->cap = cap;
        }
        memcpy(j->buf + j->len, chunk, (size_t)n);
        j->len += (size_t)n;
    }
}

/* Protected, with the job: the child has ended (its pipe is at EOF or broken) -> results on L. */
static int push_result(lua_State *L)
{
    job_t *j = lua_touserdata(L, 1);
    int status = 0;
    while (waitpid(j->pid, &status, 0) < 0 && errno == EINTR) {}
    j->pid = 0;
    lua_pushnil(L);
    if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        if (sig == SIGXCPU || sig == SIGKILL) lua_pushliteral(L, "too_complex");
        else lua_pushfstring(L, "crashed: signal %d", sig);
    } else if (j->read_rc < 0) {
        lua_pushliteral(L, "damaged: could not read the extracted text");
    } else if (WEXITSTATUS(status) == CHILD_TEXT) {
        if (j->overflow || j->len > j->max) {
            lua_pushliteral(L, "too_large");
        } else {
            lua_pop(L, 1);
            lua_pushlstring(L, j->buf ? j->buf : "", j->len);
            return 1;
        }
    } else if (WEXITSTATUS(status) == CHILD_ENCRYPTED) {
        lua_pushliteral(L, "encrypted");
    } else if (WEXITSTATUS(status) == CHILD_TOO_LARGE) {
        lua_pushliteral(L, "too_large");
    } else if (WEXITSTATUS(status) == CHILD_DAMAGED && j->len > 0) {
        lua_pushliteral(L, "damaged: ");
        lua_pushlstring(L, j->buf, j->len);
        lua_concat(L, 2);
    } else {
        lua_pushfstring(L, "crashed: exit %d", WEXITSTATUS(status));
    }
    return 2;
}

/* The pipe has data or reached its end: read; at the end, hand the result to the waiting task. */
static void on_readable(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    job_t *j = arg;
    j->read_rc = job_read(j);
    if (j->read_rc == 0) return;
    task_deliver(j->task, push_result, j);
    job_free(j);
}

/* Cancelled, or WALL_SECONDS passed: kill the child.  Must not wake. */
static void job_cancel(void *op) { job_free(op); }

/* Outside a task: wait on the pipe here, up to WALL_SECONDS. */
static int wait_here(lua_State *L, job_t *j)
{
    struct pollfd p = {.fd = j->fd, .events = POLLIN};
    for (int waited = 0; j->read_rc == 0;) {
        int r = poll(&p, 1, 1000);
        if (r < 0 && errno != EINTR) j->read_rc = -1;
        else if (r > 0) j->read_rc = job_read(j);
        else if (r == 0 && ++waited >= (int)WALL_SECONDS) {
            job_free(j);
            lua_pushnil(L);
            lua_pushliteral(L, "timeout");
            return 2;
        }
    }
    lua_pushcfunction(L, push_result);
    lua_pushlightuserdata(L, j);
    int st = lua_pcall(L, 1, LUA_MULTRET, 0);
    job_free(j);
    if (st != LUA_OK) return lua_error(L);   /* out of memory, raised after the job is freed */
    return lua_gettop(L) - 2;
}

static int l_text(lua_State *L)
{
    size_t len;
    const char *bytes = luaL_checklstring(L, 1, &len);
    lua_Integer max = luaL_optinteger(L, 2, DEFAULT_MAX);
    luaL_argcheck(L, max >= 0, 2, "must be >= 0");
    struct limits lim = {CPU_SECONDS, MEMORY_BYTES};
    if (!lua_isnoneornil(L, 3)) {
        luaL_checktype(L, 3, LUA_TTABLE);
        lua_getfield(L, 3, "cpu_seconds");
        lim.cpu = luaL_optinteger(L, -1, CPU_SECONDS);
        lua_getfield(L, 3, "memory_bytes");
        lim.memory = luaL_optinteger(L, -1, MEMORY_BYTES);
        luaL_argcheck(L, lim.cpu >= 1 && lim.memory >= 0, 3, "cpu_seconds >= 1, memory_bytes >= 0");
    }
    lua_settop(L, 2);
    const char *why = pdf_dl_load();
    if (why) {
        lua_pushnil(L);
        lua_pushliteral(L, "unavailable");
        lua_pushstring(L, why);
        return 3;
    }
    struct task *t = H.current && H.base ? task_current(L, "pdf.text") : NULL;   /* else wait here */
    job_t *j = calloc(1, sizeof *j);
    int fds[2] = {-1, -1};
    if (!j || pipe2(fds, O_CLOEXEC) != 0 || fcntl(fds[0], F_SETFL, O_NONBLOCK) != 0) {
        if (fds[0] >= 0) close(fds[0]), close(fds[1]);
        free(j);
        lua_pushnil(L);
        lua_pushfstring(L, "damaged: cannot start the extraction (%s)", strerror(errno));
        return 2;
    }
    j->fd = fds[0];
    j->max = (size_t)max;
    fflush(NULL);   /* nothing buffered twice */
    j->pid = fork();
    if (j->pid == 0) {
        close(fds[0]);
        child(bytes, len, (size_t)max, lim, fds[1]);   /* the child's copy of the Lua string; never returns */
    }
    close(fds[1]);
    if (j->pid < 0) {
        j->pid = 0;
        job_free(j);
        lua_pushnil(L);
        lua_pushfstring(L, "damaged: cannot start the extraction (%s)", strerror(errno));
        return 2;
    }
    if (!t) return wait_here(L, j);
    j->task = t;
    j->ev = event_new(H.base, j->fd, EV_READ | EV_PERSIST, on_readable, j);
    if (!j->ev || event_add(j->ev, NULL) != 0) {
        job_free(j);
        return luaL_error(L, "pdf.text: cannot watch the extraction");
    }
    return task_wait(L, WALL_SECONDS, job_cancel, j, 0, NULL);
}

int luaopen_pdf(lua_State *L)
{
    static const luaL_Reg fns[] = {{"text", l_text}, {NULL, NULL}};
    luaL_newlib(L, fns);
#ifdef __SANITIZE_ADDRESS__
    lua_pushboolean(L, 0);
#else
    lua_pushboolean(L, 1);
#endif
    lua_setfield(L, -2, "memory_limited");
    return 1;
}
