/* repl.c — Lua module `repl`: line input for `cachost repl` on the one event loop.
 *
 *   repl.open{history = path, complete = fn(word, before) -> {candidates}} -> tty (bool)
 *   ⏸ repl.readline(prompt) -> line | nil, "eof" | nil, "interrupted" (Ctrl-C at the prompt) | nil, "stopped"
 *   repl.add_history(line)           one history entry (a whole multi-line chunk)
 *   repl.set_entry(task | nil)       the task Ctrl-C interrupts
 *   repl.traceback(msg) -> string    xpcall message handler; also disarms the interrupt hook
 *   repl.abort()                     a pending readline returns nil, "stopped" (graceful stop)
 *   repl.close()                     saves history, restores the terminal and SIGINT (also on __gc)
 *   repl.exit(code)                  leave the loop now even if background tasks remain
 *
 * On a terminal, readline's callback interface is fed by a libevent read event on stdin, so the loop
 * keeps serving tasks, HTTP and webhooks while the user types.  Otherwise lines are read with an evbuffer
 * (a blocking read when stdin cannot be polled: a regular file, /dev/null).
 *
 * Ctrl-C: a busy entry never returns to the loop, so the SIGINT handler itself arms a count hook on the
 * running task (lua.c's lua_sethook trick; lua_sethook is safe in a signal handler) and then chains to
 * libevent's handler; at the next loop turn host_sigint_hook cancels a waiting entry or clears the prompt. */
#include "host.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <readline/history.h>
#include <readline/readline.h>

#define HISTORY_MAX 1000

static struct {
    int open, tty, rl_active, complete_ref, entry_ref, have_old;
    struct task *waiter;            /* task blocked in repl.readline */
    struct task *owner;             /* the REPL's own task: never interrupted */
    struct task *entry;             /* the running entry (anchored by entry_ref) */
    struct event *ev;               /* read event on stdin while a readline waits */
    struct event *winch;            /* terminal resized */
    struct evbuffer *in;            /* non-terminal input */
    int eof;
    char *history;
    struct sigaction old_int;
    volatile sig_atomic_t hooked;   /* the signal handler already interrupted running Lua */
    volatile sig_atomic_t interrupted;   /* Ctrl-C reached the current entry */
} R = {.complete_ref = LUA_NOREF, .entry_ref = LUA_NOREF};

/* ---- interrupting ---- */

static void interrupt_hook(lua_State *L, lua_Debug *ar)
{
    /* the position of the interrupted code (luaL_where would name its caller); the hook stays armed so a
     * pcall in the entry cannot swallow the error — repl.traceback disarms it */
    lua_getinfo(L, "Sl", ar);
    if (ar->currentline > 0) lua_pushfstring(L, "%s:%d: interrupted", ar->short_src, ar->currentline);
    else lua_pushliteral(L, "interrupted");
    lua_error(L);
}

static void arm(lua_State *co)
{
    R.interrupted = 1;
    lua_sethook(co, interrupt_hook, LUA_MASKCOUNT, 1);
}

static void on_sigint(int sig, siginfo_t *info, void *uctx)
{
    struct task *cur = H.current;
    if (cur && cur != R.owner) {    /* Lua is running (an entry or a task it spawned): stop it */
        lua_State *co = task_stack(cur);
        if (co) { arm(co); R.hooked = 1; }
    }
    if (R.old_int.sa_flags & SA_SIGINFO) {
        if (R.old_int.sa_sigaction) R.old_int.sa_sigaction(sig, info, uctx);
    } else if (R.old_int.sa_handler != SIG_DFL && R.old_int.sa_handler != SIG_IGN) {
        R.old_int.sa_handler(sig);
    }
}

static void wake_reader(const char *why);

/* Called by the loop (top level, no task running) on SIGINT. */
static void loop_sigint(void)
{
    if (R.hooked) { R.hooked = 0; return; }   /* already handled inside the running Lua */
    if (R.entry) {
        lua_State *L = H.L, *co = task_stack(R.entry);
        if (co) arm(co);                       /* a waiting entry raises as soon as it resumes */
        task_push(L, R.entry);                 /* then wake it: task:cancel() */
        if (lua_isuserdata(L, -1) && luaL_getmetafield(L, -1, "__index") != LUA_TNIL) {
            lua_pushvalue(L, -2);
            lua_pushliteral(L, "cancel");
            if (lua_pcall(L, 2, 1, 0) == LUA_OK && lua_isfunction(L, -1)) {
                lua_pushvalue(L, -2);
                if (lua_pcall(L, 1, 0, 0) != LUA_OK) lua_pop(L, 1);
            } else {
                lua_pop(L, 1);
            }
        }
        lua_pop(L, 1);
        return;
    }
    if (R.waiter) {                            /* at the prompt: drop the line (and a pending chunk) */
        if (R.tty) {
            rl_point = rl_end;
            rl_redisplay();
        }
        wake_reader(R.tty ? "interrupted" : "eof");
    }
}

/* ---- reading ---- */

static void stop_reading(void)
{
    if (R.ev) event_del(R.ev);
    if (R.rl_active) {
        rl_callback_handler_remove();          /* restores the terminal */
        R.rl_active = 0;
    }
}

/* Wake the waiting reader with nil, why after abandoning the line being edited. */
static void wake_reader(const char *why)
{
    struct task *t = R.waiter;
    if (!t) return;
    if (R.rl_active) {
        rl_free_line_state();
        rl_callback_sigcleanup();
        rl_replace_line("", 0);
        rl_point = rl_end = 0;
        if (R.tty) { fputc('\n', stdout); fflush(stdout); }
    }
    stop_reading();
    R.waiter = NULL;
    lua_State *co = task_stack(t);
    lua_pushnil(co);
    lua_pushstring(co, why);
    task_wake(t, 2);
}

static void rl_line(char *line)
{
    struct task *t = R.waiter;
    stop_reading();
    R.waiter = NULL;
    if (!t) { free(line); return; }
    lua_State *co = task_stack(t);
    if (line) {
        lua_pushstring(co, line);
        free(line);
        task_wake(t, 1);
    } else {                                   /* Ctrl-D */
        fputc('\n', stdout);
        fflush(stdout);
        lua_pushnil(co);
        lua_pushliteral(co, "eof");
        task_wake(t, 2);
    }
}

/* Push the next complete line of non-terminal input (or nil at the end); 0 if more input is needed. */
static int take_line(lua_State *L)
{
    size_t n;
    char *line = evbuffer_readln(R.in, &n, EVBUFFER_EOL_LF);
    if (!line && R.eof && evbuffer_get_length(R.in) > 0) {   /* a last line without newline */
        n = evbuffer_get_length(R.in);
        line = malloc(n + 1);
        if (!line) return luaL_error(L, "out of memory");
        evbuffer_remove(R.in, line, n);
        line[n] = 0;
    }
    if (line) {
        if (n > 0 && line[n - 1] == '\r') n--;
        lua_pushlstring(L, line, n);
        free(line);
        return 1;
    }
    if (R.eof) { lua_pushnil(L); lua_pushliteral(L, "eof"); return 2; }
    return 0;
}

static void fill(void)
{
    int r = evbuffer_read(R.in, STDIN_FILENO, 65536);
    if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) R.eof = 1;
}

static void on_stdin(evutil_socket_t fd, short what, void *arg)
{
    if (R.tty) {
        if (R.rl_active) rl_callback_read_char();
        return;
    }
    struct task *t = R.waiter;
    fill();
    if (!t) return;
    int n = take_line(task_stack(t));
    if (n) {
        event_del(R.ev);
        R.waiter = NULL;
        task_wake(t, n);
    }
}

static void reader_cancel(void *op)
{
    (void)op;
    if (R.rl_active && R.tty) { fputc('\n', stdout); fflush(stdout); }
    stop_reading();
    R.waiter = NULL;
}

static int l_readline(lua_State *L)
{
    const char *prompt = luaL_optstring(L, 1, "> ");
    if (!R.open) return luaL_error(L, "repl.readline: call repl.open first");
    if (R.waiter) return luaL_error(L, "repl.readline: already reading");
    struct task *t = task_current(L, "repl.readline");
    fflush(stdout);
    if (!R.tty) {
        int n;
        while (!(n = take_line(L))) {          /* a buffered line needs no wait */
            if (event_add(R.ev, NULL) == 0) {
                R.waiter = t;
                lua_settop(L, 0);
                return task_wait(L, 0, reader_cancel, NULL, 0, NULL);
            }
            fill();                            /* stdin cannot be polled: read it directly */
        }
        return n;
    }
    if (event_add(R.ev, NULL) != 0) { lua_pushnil(L); lua_pushliteral(L, "eof"); return 2; }
    R.waiter = t;
    R.rl_active = 1;
    rl_callback_handler_install(prompt, rl_line);   /* copies the prompt, shows it */
    lua_settop(L, 0);
    return task_wait(L, 0, reader_cancel, NULL, 0, NULL);
}

static void on_winch(evutil_socket_t sig, short what, void *arg)
{
    if (R.rl_active) rl_resize_terminal();
}

/* ---- completion: the Lua completer lists candidates; C hands them to readline ---- */

static char **attempt_completion(const char *text, int start, int end)
{
    rl_attempted_completion_over = 1;          /* never fall back to file names */
    rl_completion_append_character = '\0';     /* readline resets it before every attempt */
    if (R.complete_ref == LUA_NOREF) return NULL;
    lua_State *L = H.L;
    int top = lua_gettop(L);
    lua_rawgeti(L, LUA_REGISTRYINDEX, R.complete_ref);
    lua_pushstring(L, text);
    lua_pushlstring(L, rl_line_buffer, (size_t)start);
    if (lua_pcall(L, 2, 1, 0) != LUA_OK || !lua_istable(L, -1)) { lua_settop(L, top); return NULL; }
    size_t n = lua_rawlen(L, -1);
    char **m = n ? calloc(n + 2, sizeof *m) : NULL;
    size_t k = 1, common = 0;
    for (size_t i = 1; m && i <= n; i++) {
        lua_rawgeti(L, -1, (lua_Integer)i);
        const char *s = lua_tostring(L, -1);
        if (s && (m[k] = strdup(s))) {
            if (k == 1) common = strlen(s);
            else { size_t j = 0; while (j < common && m[1][j] == s[j]) j++; common = j; }
            k++;
        }
        lua_pop(L, 1);
    }
    lua_settop(L, top);
    if (!m || k == 1) { free(m); return NULL; }
    if (k == 2) { m[0] = m[1]; m[1] = NULL; return m; }   /* one match: readline's convention */
    m[0] = strndup(m[1], common);
    if (!m[0]) { for (size_t i = 1; i < k; i++) free(m[i]); free(m); return NULL; }
    return m;
}

/* ---- open / close ---- */

static void cleanup(void)
{
    if (!R.open) return;
    stop_reading();
    R.waiter = NULL;
    if (R.ev) event_free(R.ev);
    R.ev = NULL;
    if (R.winch) event_free(R.winch);
    R.winch = NULL;
    if (R.in) evbuffer_free(R.in);
    R.in = NULL;
    if (R.have_old) sigaction(SIGINT, &R.old_int, NULL);
    R.have_old = 0;
    if (host_sigint_hook == loop_sigint) host_sigint_hook = NULL;
    if (R.tty) {
        if (R.history) write_history(R.history);
        clear_history();
        rl_attempted_completion_function = NULL;
    }
    free(R.history);
    R.history = NULL;
    if (H.L) {
        luaL_unref(H.L, LUA_REGISTRYINDEX, R.complete_ref);
        luaL_unref(H.L, LUA_REGISTRYINDEX, R.entry_ref);
    }
    R.complete_ref = R.entry_ref = LUA_NOREF;
    R.entry = R.owner = NULL;
    R.open = 0;
}

static int l_open(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    if (R.open) return luaL_error(L, "repl.open: already open");
    R.owner = task_current(L, "repl.open");
    R.tty = isatty(STDIN_FILENO);
    if (lua_getfield(L, 1, "tty") != LUA_TNIL) R.tty = R.tty && lua_toboolean(L, -1);   /* tty=false forces lines */
    lua_pop(L, 1);
    R.ev = event_new(H.base, STDIN_FILENO, EV_READ | EV_PERSIST, on_stdin, NULL);
    if (!R.ev) return luaL_error(L, "repl.open: cannot watch stdin");
    if (!R.tty && !(R.in = evbuffer_new())) { event_free(R.ev); R.ev = NULL; return luaL_error(L, "out of memory"); }
    R.eof = 0;
    if (R.tty) {
        const char *hist = lua_getfield(L, 1, "history") == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
        if (hist && !(R.history = strdup(hist))) { cleanup(); return luaL_error(L, "out of memory"); }
        lua_pop(L, 1);
        if (lua_getfield(L, 1, "complete") == LUA_TFUNCTION) R.complete_ref = luaL_ref(L, LUA_REGISTRYINDEX);
        else lua_pop(L, 1);
        rl_readline_name = "cachost";
        rl_instream = stdin;
        rl_outstream = stdout;
        rl_catch_signals = 0;                  /* SIGINT stays with the loop (and on_sigint) */
        rl_catch_sigwinch = 0;                 /* so does SIGWINCH: readline only watches it while reading */
        if ((R.winch = evsignal_new(H.base, SIGWINCH, on_winch, NULL))) evsignal_add(R.winch, NULL);
        rl_attempted_completion_function = attempt_completion;
        rl_completer_word_break_characters = " \t\n\"\\'><=;+-*/%^~#&|,{}()[]";
        using_history();
        stifle_history(HISTORY_MAX);
        if (R.history) read_history(R.history);   /* a missing file is fine */
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_sigint;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    R.have_old = sigaction(SIGINT, &sa, &R.old_int) == 0;
    host_sigint_hook = loop_sigint;
    R.open = 1;
    lua_pushboolean(L, R.tty);
    return 1;
}

static int l_close(lua_State *L) { cleanup(); return 0; }

static int l_add_history(lua_State *L)
{
    const char *s = luaL_checkstring(L, 1);
    if (!R.open || !R.tty || !*s) return 0;
    HIST_ENTRY *last = history_length > 0 ? history_get(history_base + history_length - 1) : NULL;
    if (!last || strcmp(last->line, s)) add_history(s);
    return 0;
}

/* repl.set_entry(task | nil) -> whether Ctrl-C interrupted the previous entry.  (R.hooked is left alone:
 * the loop's SIGINT callback still has to see it once.) */
static int l_set_entry(lua_State *L)
{
    int was = R.interrupted;
    if (!lua_isnoneornil(L, 1)) luaL_checkudata(L, 1, "cachost.task");
    luaL_unref(L, LUA_REGISTRYINDEX, R.entry_ref);
    R.entry_ref = LUA_NOREF;
    R.entry = NULL;
    R.interrupted = 0;
    if (!lua_isnoneornil(L, 1)) {
        R.entry = lua_touserdata(L, 1);
        lua_settop(L, 1);
        R.entry_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    }
    lua_pushboolean(L, was);
    return 1;
}

/* Message handler: disarm the interrupt hook (a C function runs no counted instructions), add the
 * traceback. */
static int l_traceback(lua_State *L)
{
    lua_sethook(L, NULL, 0, 0);
    const char *msg = lua_tostring(L, 1);
    if (!msg) {
        if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) msg = lua_tostring(L, -1);
        else msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
    luaL_traceback(L, L, msg, 1);
    return 1;
}

static int l_abort(lua_State *L)
{
    wake_reader("stopped");
    return 0;
}

/* A forced exit for when tasks the user started would keep the loop alive (main.c honours stopping 2). */
static int l_exit(lua_State *L)
{
    H.exit_code = (int)luaL_optinteger(L, 1, 0);
    H.stopping = 2;
    event_base_loopbreak(H.base);
    return 0;
}

static int l_gc(lua_State *L) { cleanup(); return 0; }

int luaopen_repl(lua_State *L)
{
    static const luaL_Reg f[] = {
        {"open", l_open}, {"readline", l_readline}, {"add_history", l_add_history},
        {"set_entry", l_set_entry}, {"traceback", l_traceback}, {"abort", l_abort},
        {"close", l_close}, {"exit", l_exit}, {NULL, NULL}};
    luaL_newlib(L, f);
    /* a sentinel whose __gc restores the terminal when the state closes on any path */
    lua_newuserdatauv(L, 1, 0);
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, l_gc);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    lua_setfield(L, LUA_REGISTRYINDEX, "cachost.repl.sentinel");
    return 1;
}
