/* sched.c — the event loop and its tasks (Lua module `sched`).
 *
 * One libevent base owns every source of events.  Each task is a Lua coroutine.  A blocking primitive
 * yields a private marker (task_wait); the callback that completes its I/O only pushes the results and
 * queues the task (task_wake); the loop resumes ready tasks from one place, drain_ready(), at top level.
 * That single resume point is what keeps C callbacks from ever running Lua half-way through another call.
 */
#include "host.h"

#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct host H;
void (*host_sigint_hook)(void);

enum { T_READY, T_RUNNING, T_WAITING, T_SUSPENDED, T_DONE, T_FAILED, T_CANCELLED };
static const char *const state_names[] = {"ready", "running", "waiting", "waiting", "done", "failed", "cancelled"};

struct join;

struct task {
    lua_State *co;            /* the task's own coroutine */
    int co_ref, self_ref;     /* registry anchors while the task is alive */
    int result_ref;           /* table {n=, ...} of results, or the error message */
    int state, id, nwake, started, cancel_requested, quiet;
    long budget;              /* instructions left; 0 = no budget */
    struct event *timer;      /* timeout of the current wait */
    task_cancel_fn cancel;    /* releases the operation being waited on */
    void *op;
    lua_KFunction k;          /* continuation of the current wait, and its context */
    lua_KContext kctx;
    struct task *next_ready;
    struct join *joiners;     /* tasks waiting for this one to end */
    char name[64];
};

struct join { struct task *waiter, *target; struct join *next, **pprev; };

static char MARKER;           /* yielded by task_wait: "this task waits for the loop" */
static struct task *ready_head, *ready_tail;
static int draining;   /* inside drain_ready */
static struct event *ready_ev, *sig_ev[4];
static int alive, next_id;

#define TASK_MT "cachost.task"
#define BUDGET_STEP 1000

/* ---- the ready queue ---- */

static void make_ready(struct task *t)
{
    t->state = T_READY;
    t->next_ready = NULL;
    if (ready_tail) ready_tail->next_ready = t; else ready_head = t;
    ready_tail = t;
    if (!draining) event_active(ready_ev, 0, 0);   /* else drain_ready sees it */
}

static void clear_wait(struct task *t)
{
    if (t->timer) evtimer_del(t->timer);
    t->cancel = NULL;
    t->op = NULL;
}

void task_wake(struct task *t, int n)
{
    if (t->state != T_WAITING && t->state != T_SUSPENDED) {   /* a late waker: drop its values */
        lua_pop(t->co, n);
        return;
    }
    clear_wait(t);
    t->nwake = n;
    make_ready(t);
}

lua_State *task_stack(struct task *t) { return t->co; }

void task_deliver(struct task *t, lua_CFunction push, void *arg)
{
    lua_State *L = H.L;
    int top = lua_gettop(L), n;
    lua_pushcfunction(L, push);
    lua_pushlightuserdata(L, arg);
    if (lua_pcall(L, 1, LUA_MULTRET, 0) == LUA_OK) {
        n = lua_gettop(L) - top;
    } else {
        lua_settop(L, top);
        lua_pushnil(L);
        lua_pushliteral(L, "error: out of memory");
        n = 2;
    }
    if (lua_checkstack(t->co, n)) {
        lua_xmove(L, t->co, n);
        task_wake(t, n);
    } else {
        lua_settop(L, top);
        task_wake(t, 0);
    }
}

/* ---- finishing ---- */

static void unlink_join(struct join *j)
{
    if (j->pprev) {
        *j->pprev = j->next;
        if (j->next) j->next->pprev = j->pprev;
        j->pprev = NULL;
    }
}

static void push_outcome(struct task *t, lua_State *to)
{
    if (t->state == T_DONE) {
        lua_State *L = H.L;
        lua_rawgeti(L, LUA_REGISTRYINDEX, t->result_ref);
        int tbl = lua_gettop(L), n = (int)lua_rawlen(L, tbl);
        luaL_checkstack(to, n + 1, "too many results");
        lua_pushboolean(to, 1);
        for (int i = 1; i <= n; i++) { lua_rawgeti(L, tbl, i); lua_xmove(L, to, 1); }
        lua_remove(L, tbl);
    } else {
        lua_pushboolean(to, 0);
        if (t->state == T_CANCELLED) lua_pushliteral(to, "cancelled");
        else { lua_rawgeti(H.L, LUA_REGISTRYINDEX, t->result_ref); lua_xmove(H.L, to, 1); }
    }
}

static int outcome_size(struct task *t)
{
    if (t->state != T_DONE) return 2;
    lua_rawgeti(H.L, LUA_REGISTRYINDEX, t->result_ref);
    int n = (int)lua_rawlen(H.L, -1);
    lua_pop(H.L, 1);
    return n + 1;
}

/* The coroutine ended (state DONE/FAILED/CANCELLED) with nres values (or the error) on its stack. */
static void finish(struct task *t, int state, int nres)
{
    lua_State *L = H.L;
    t->state = state;
    if (state == T_DONE) {
        lua_createtable(L, nres, 0);
        for (int i = nres; i >= 1; i--) { lua_xmove(t->co, L, 1); lua_rawseti(L, -2, i); }
        t->result_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    } else if (state == T_FAILED) {
        const char *msg = lua_tostring(t->co, -1);
        if (!msg) msg = luaL_typename(t->co, -1);
        luaL_traceback(L, t->co, msg, 0);
        t->result_ref = luaL_ref(L, LUA_REGISTRYINDEX);
        if (!t->joiners && !t->quiet) {
            lua_rawgeti(L, LUA_REGISTRYINDEX, t->result_ref);
            log_msg(LOG_ERROR, lua_tostring(L, -1), "task=%s", t->name);
            lua_pop(L, 1);
        }
    }
    if (t->timer) { event_free(t->timer); t->timer = NULL; }
    while (t->joiners) {
        struct join *j = t->joiners;
        struct task *waiter = j->waiter;
        unlink_join(j);
        free(j);
        push_outcome(t, waiter->co);
        task_wake(waiter, outcome_size(t));
    }
    luaL_unref(L, LUA_REGISTRYINDEX, t->co_ref);
    t->co_ref = LUA_NOREF;
    t->co = NULL;
    luaL_unref(L, LUA_REGISTRYINDEX, t->self_ref);   /* now collectable once Lua drops it */
    t->self_ref = LUA_NOREF;
    alive--;
}

/* ---- budgets: a count hook, then a hook on every line so pcall cannot swallow the kill ---- */

static void budget_hook(lua_State *L, lua_Debug *ar)
{
    struct task *t = H.current;
    if (!t || t->budget <= 0) return;
    if (ar->event == LUA_HOOKCOUNT) t->budget -= BUDGET_STEP;
    if (t->budget <= BUDGET_STEP) {
        t->budget = 1;   /* stays exhausted */
        lua_sethook(L, budget_hook, LUA_MASKCOUNT | LUA_MASKLINE, 1);
        luaL_error(L, "instruction budget exceeded in task %s", t->name);
    }
}

/* ---- resuming: the one place where tasks run ---- */

static void resume(struct task *t)
{
    int nres, status;
    if (!t->started && t->cancel_requested) {
        lua_settop(t->co, 0);
        finish(t, T_CANCELLED, 0);
        return;
    }
    t->started = 1;
    t->state = T_RUNNING;
    H.current = t;
    if (t->budget > 0) lua_sethook(t->co, budget_hook, LUA_MASKCOUNT, BUDGET_STEP);
    int nargs = t->nwake;
    t->nwake = 0;
    status = lua_resume(t->co, H.L, nargs, &nres);
    H.current = NULL;
    if (status == LUA_YIELD) {
        if (nres == 1 && lua_touserdata(t->co, -1) == &MARKER) {
            lua_pop(t->co, 1);        /* task_wait set the state (WAITING or READY) */
        } else {                      /* a plain coroutine.yield() at task level: let others run */
            lua_pop(t->co, nres);
            make_ready(t);
        }
    } else if (status == LUA_OK) {
        finish(t, T_DONE, nres);
    } else {
        finish(t, t->cancel_requested ? T_CANCELLED : T_FAILED, 0);
    }
}

/* Resume what is ready, round after round (tasks readied meanwhile make the next round), for up to
 * DRAIN_SECONDS; what is still ready then waits for a zero timeout, which libevent runs only after it
 * has polled timers and I/O (an event activated during its active pass would run in that same pass), so
 * a task yielding in a loop starves nothing and a yield costs no system call. */
#define DRAIN_SECONDS 0.002
static void drain_ready(evutil_socket_t fd, short what, void *arg)
{
    static const struct timeval zero = {0, 0};
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    draining = 1;
    do {
        struct task *t = ready_head;
        ready_head = ready_tail = NULL;
        while (t) {
            struct task *next = t->next_ready;
            t->next_ready = NULL;
            if (t->state == T_READY) resume(t);
            t = next;
        }
        clock_gettime(CLOCK_MONOTONIC, &now);
    } while (ready_head && (double)(now.tv_sec - start.tv_sec) + (now.tv_nsec - start.tv_nsec) / 1e9 < DRAIN_SECONDS);
    draining = 0;
    if (ready_head) event_add(ready_ev, &zero);
}

/* ---- waiting ---- */

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct task *t = arg;
    if (t->state != T_WAITING && t->state != T_SUSPENDED) return;
    if (t->cancel) t->cancel(t->op);
    lua_pushnil(t->co);
    lua_pushliteral(t->co, "timeout");
    task_wake(t, 2);
}

struct task *task_current(lua_State *L, const char *what)
{
    struct task *t = H.current;
    if (!t) luaL_error(L, "%s: must be called inside a task (see sched.spawn)", what);
    if (t->cancel_requested) luaL_error(L, "cancelled");
    if (!lua_isyieldable(L))
        luaL_error(L, "%s: cannot wait here (inside a C call such as table.sort, gsub or a metamethod)", what);
    return t;
}

static int return_all(lua_State *L, int status, lua_KContext base) { return lua_gettop(L) - (int)base; }

/* Every wait resumes here first: a cancelled task raises "cancelled" at its wait point. */
static int park_k(lua_State *L, int status, lua_KContext ctx)
{
    struct task *t = (struct task *)ctx;
    if (t->cancel_requested) return luaL_error(L, "cancelled");
    return t->k(L, status, t->kctx);
}

static int task_park(lua_State *L, int state, double timeout, task_cancel_fn cancel, void *op,
                     lua_KContext ctx, lua_KFunction k)
{
    struct task *t = H.current;
    t->state = state;
    t->cancel = cancel;
    t->op = op;
    if (timeout > 0) {
        if (!t->timer) t->timer = evtimer_new(H.base, on_timeout, t);
        struct timeval tv = {(time_t)timeout, (suseconds_t)((timeout - (double)(time_t)timeout) * 1e6)};
        evtimer_add(t->timer, &tv);
    }
    if (!k) { k = return_all; ctx = lua_gettop(L); }
    t->k = k;
    t->kctx = ctx;
    lua_pushlightuserdata(L, &MARKER);
    return lua_yieldk(L, 1, (lua_KContext)t, park_k);
}

int task_wait(lua_State *L, double timeout, task_cancel_fn cancel, void *op, lua_KContext ctx, lua_KFunction k)
{
    return task_park(L, T_WAITING, timeout, cancel, op, ctx, k);
}

/* ---- spawning ---- */

static struct task *check_task(lua_State *L, int i) { return luaL_checkudata(L, i, TASK_MT); }

struct task *task_spawn(lua_State *L, int nargs, const char *name)
{
    struct task *t = lua_newuserdatauv(L, sizeof *t, 0);
    memset(t, 0, sizeof *t);
    t->co_ref = t->self_ref = t->result_ref = LUA_NOREF;
    luaL_setmetatable(L, TASK_MT);
    t->id = ++next_id;
    if (name) snprintf(t->name, sizeof t->name, "%s", name);
    else snprintf(t->name, sizeof t->name, "task-%d", t->id);
    if (H.current) t->budget = H.current->budget;      /* children inherit what is left */
    t->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    t->co = lua_newthread(L);
    t->co_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_xmove(L, t->co, nargs + 1);                     /* fn and its args */
    t->nwake = nargs;
    alive++;
    make_ready(t);
    return t;
}

/* Push the task's handle (only while it is alive: an ended task is anchored by whoever holds it). */
void task_push(lua_State *L, struct task *t) { lua_rawgeti(L, LUA_REGISTRYINDEX, t->self_ref); }

/* ---- Lua API ---- */

static int l_spawn(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TFUNCTION);
    task_push(L, task_spawn(L, lua_gettop(L) - 1, NULL));
    return 1;
}

static int sleep_k(lua_State *L, int status, lua_KContext ctx) { return 0; }

static int l_sleep(lua_State *L)
{
    double s = luaL_optnumber(L, 1, 0);
    struct task *t = task_current(L, "sched.sleep");
    if (s <= 0) {                      /* just let the other ready tasks run */
        make_ready(t);
        return task_park(L, T_READY, 0, NULL, NULL, 0, sleep_k);
    }
    return task_park(L, T_WAITING, s, NULL, NULL, 0, sleep_k);
}

static int l_suspend(lua_State *L)
{
    double timeout = luaL_optnumber(L, 1, 0);
    task_current(L, "sched.suspend");
    lua_settop(L, 0);
    return task_park(L, T_SUSPENDED, timeout, NULL, NULL, 0, NULL);
}

static int l_wake(lua_State *L)
{
    struct task *t = check_task(L, 1);
    int n = lua_gettop(L) - 1;
    if (t->state != T_SUSPENDED) { lua_pushboolean(L, 0); return 1; }
    lua_xmove(L, t->co, n);
    task_wake(t, n);
    lua_pushboolean(L, 1);
    return 1;
}

static void join_cancel(void *op)
{
    unlink_join(op);
    free(op);
}

static int join_k(lua_State *L, int status, lua_KContext ctx) { return lua_gettop(L) - 1; }

static int l_join(lua_State *L)
{
    struct task *t = check_task(L, 1);
    double timeout = luaL_optnumber(L, 2, 0);
    if (t->state >= T_DONE) {
        push_outcome(t, L);
        return outcome_size(t);
    }
    struct task *me = task_current(L, "task:join");
    if (me == t) return luaL_error(L, "task:join: a task cannot join itself");
    struct join *j = malloc(sizeof *j);
    if (!j) return luaL_error(L, "out of memory");
    j->waiter = me;
    j->target = t;
    j->next = t->joiners;
    if (j->next) j->next->pprev = &j->next;
    j->pprev = &t->joiners;
    t->joiners = j;
    lua_settop(L, 1);
    return task_wait(L, timeout, join_cancel, j, 0, join_k);
}

static int l_cancel(lua_State *L)
{
    struct task *t = check_task(L, 1);
    if (t->state >= T_DONE) return 0;
    t->cancel_requested = 1;
    if (t == H.current) return luaL_error(L, "cancelled");
    if (t->state == T_WAITING || t->state == T_SUSPENDED) {
        if (t->cancel) t->cancel(t->op);
        lua_pushnil(t->co);
        lua_pushliteral(t->co, "cancelled");
        task_wake(t, 2);
    }
    return 0;
}

static int l_status(lua_State *L)
{
    lua_pushstring(L, state_names[check_task(L, 1)->state]);
    return 1;
}

static int l_task_index(lua_State *L)
{
    struct task *t = check_task(L, 1);
    const char *k = luaL_checkstring(L, 2);
    if (!strcmp(k, "id")) lua_pushinteger(L, t->id);
    else if (!strcmp(k, "name")) lua_pushstring(L, t->name);
    else { lua_getmetatable(L, 1); lua_getfield(L, -1, "methods"); lua_getfield(L, -1, k); }
    return 1;
}

static int l_task_newindex(lua_State *L)
{
    struct task *t = check_task(L, 1);
    const char *k = luaL_checkstring(L, 2);
    if (!strcmp(k, "name")) snprintf(t->name, sizeof t->name, "%s", luaL_checkstring(L, 3));
    else if (!strcmp(k, "quiet")) t->quiet = lua_toboolean(L, 3);   /* its failure is reported by its owner */
    else return luaL_error(L, "task: cannot set field '%s'", k);
    return 0;
}

static int l_task_tostring(lua_State *L)
{
    struct task *t = check_task(L, 1);
    lua_pushfstring(L, "task %d (%s, %s)", t->id, t->name, state_names[t->state]);
    return 1;
}

static int l_task_gc(lua_State *L)
{
    struct task *t = check_task(L, 1);
    if (t->timer) event_free(t->timer);                  /* a task still alive at exit */
    t->timer = NULL;
    luaL_unref(L, LUA_REGISTRYINDEX, t->result_ref);
    t->result_ref = LUA_NOREF;
    return 0;
}

static int l_current(lua_State *L)
{
    if (!H.current) lua_pushnil(L);
    else lua_rawgeti(L, LUA_REGISTRYINDEX, H.current->self_ref);
    return 1;
}

/* Instruction budget of the running task (inherited by the tasks it spawns). */
static int l_budget(lua_State *L)
{
    struct task *t = task_current(L, "sched.budget");
    lua_Integer n = luaL_checkinteger(L, 1);
    luaL_argcheck(L, n > 0, 1, "budget must be positive");
    t->budget = (long)n + BUDGET_STEP;
    lua_sethook(L, budget_hook, LUA_MASKCOUNT, BUDGET_STEP);
    return 0;
}

static double clock_s(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}
static int l_now(lua_State *L) { lua_pushnumber(L, clock_s(CLOCK_MONOTONIC)); return 1; }
static int l_time(lua_State *L) { lua_pushnumber(L, clock_s(CLOCK_REALTIME)); return 1; }
static int l_stopping(lua_State *L) { lua_pushboolean(L, H.stopping); return 1; }
static int l_alive(lua_State *L) { lua_pushinteger(L, alive); return 1; }

/* ---- signals: stop gracefully, reload; Lua decides what that means (scripts/prelude.lua) ---- */

static void call_hook(const char *name)
{
    lua_State *L = H.L;
    if (lua_getfield(L, LUA_REGISTRYINDEX, name) == LUA_TFUNCTION) task_spawn(L, 0, name);
    else lua_pop(L, 1);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    if (sig == SIGHUP) { call_hook("cachost.on_reload"); return; }
    if (sig == SIGINT && host_sigint_hook) { host_sigint_hook(); return; }
    if (H.stopping) return;            /* a second one never gets here: on_raw_signal ended the process */
    H.stopping = 1;
    log_msg(LOG_INFO, "stopping (again to force)", "signal=%d", (int)sig);
    call_hook("cachost.on_stop");
}

/* The first SIGINT/SIGTERM asks for a graceful stop (on_signal, from the loop).  The second ends the
 * process at once, whatever it is doing: a task stuck inside C (a backtracking pattern, an SQLite
 * query, a blocking system call) never returns to the loop nor runs a Lua hook, so nothing short of
 * _exit in the handler itself is sure to work.  Only async-signal-safe calls here: one line to stderr,
 * then _exit(128 + sig).  SQLite's WAL makes this as safe as a kill -9, and a governance action sent
 * meanwhile has its row (pending), reconciled at the next run.  The REPL owns Ctrl-C: with its hook set,
 * SIGINT is not counted.  The handler otherwise chains to libevent's, which queues the signal for
 * on_signal. */
static struct sigaction chained[2];
static volatile sig_atomic_t signals_seen;

static void on_raw_signal(int sig, siginfo_t *info, void *uctx)
{
    struct sigaction *old = &chained[sig == SIGTERM];
    H.signals++;
    if ((sig == SIGTERM || !host_sigint_hook) && ++signals_seen >= 2) {
        static const char msg[] = "cachost: second stop signal: exiting now\n";
        ssize_t n = write(STDERR_FILENO, msg, sizeof msg - 1);
        (void)n;
        _exit(128 + sig);
    }
    if (old->sa_flags & SA_SIGINFO) { if (old->sa_sigaction) old->sa_sigaction(sig, info, uctx); }
    else if (old->sa_handler != SIG_DFL && old->sa_handler != SIG_IGN) old->sa_handler(sig);
}

static void chain_signal(int sig)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_raw_signal;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(sig, &sa, &chained[sig == SIGTERM]);
}

static int l_on(lua_State *L)
{
    static const char *const names[] = {"stop", "reload", NULL};
    static const char *const keys[] = {"cachost.on_stop", "cachost.on_reload"};
    int i = luaL_checkoption(L, 1, NULL, names);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    lua_setfield(L, LUA_REGISTRYINDEX, keys[i]);
    return 0;
}

/* Push ok, results... | false, err for an ended task; returns how many values. */
int task_outcome(lua_State *L, struct task *t)
{
    if (t->state < T_DONE) { lua_pushboolean(L, 0); lua_pushliteral(L, "stopped"); return 2; }
    push_outcome(t, L);
    return outcome_size(t);
}

int sched_run(void)
{
    while (alive > 0 && H.stopping < 2) {
        if (event_base_loop(H.base, EVLOOP_ONCE) < 0) return -1;
    }
    return 0;
}

void sched_init(void)
{
    H.base = event_base_new();
    if (!H.base) { fprintf(stderr, "cachost: cannot create the event loop\n"); exit(1); }
    ready_ev = event_new(H.base, -1, 0, drain_ready, NULL);
    int sigs[] = {SIGINT, SIGTERM, SIGHUP};
    for (int i = 0; i < 3; i++) {
        sig_ev[i] = evsignal_new(H.base, sigs[i], on_signal, NULL);
        evsignal_add(sig_ev[i], NULL);
    }
    chain_signal(SIGINT);
    chain_signal(SIGTERM);
    signal(SIGPIPE, SIG_IGN);
}

void sched_shutdown(void)
{
    for (int i = 0; i < 3; i++) if (sig_ev[i]) event_free(sig_ev[i]);
    if (ready_ev) event_free(ready_ev);
    /* timers of tasks still alive (forced stop) */
    if (H.base) event_base_free(H.base);
    H.base = NULL;
}

int luaopen_sched(lua_State *L)
{
    static const luaL_Reg task_m[] = {
        {"__index", l_task_index}, {"__newindex", l_task_newindex}, {"__tostring", l_task_tostring},
        {"__gc", l_task_gc}, {NULL, NULL}};
    static const luaL_Reg task_methods[] = {
        {"join", l_join}, {"cancel", l_cancel}, {"status", l_status}, {NULL, NULL}};
    static const luaL_Reg f[] = {
        {"spawn", l_spawn}, {"sleep", l_sleep}, {"suspend", l_suspend}, {"wake", l_wake},
        {"current", l_current}, {"budget", l_budget}, {"now", l_now}, {"time", l_time},
        {"stopping", l_stopping}, {"alive", l_alive}, {"on", l_on}, {NULL, NULL}};
    luaL_newmetatable(L, TASK_MT);
    luaL_setfuncs(L, task_m, 0);
    luaL_newlib(L, task_methods);
    lua_setfield(L, -2, "methods");
    lua_pop(L, 1);
    luaL_newlib(L, f);
    lua_pushlightuserdata(L, &MARKER);
    lua_setfield(L, -2, "_marker");
    return 1;
}
