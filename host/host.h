/* host.h — what the host's C modules share: the one Lua state, the one event loop, and tasks.
 *
 * Every Lua module lives in its own host/<name>.c and exports `int luaopen_<name>(lua_State *L)`;
 * modules.c lists them (like Lua's linit.c).
 *
 * Blocking primitives follow one pattern (OpenResty's sleep.c):
 *   1. the entry function checks its arguments and calls task_current() (raises outside a task),
 *      arms the I/O with an op record that remembers the task, and returns task_wait(...);
 *   2. the I/O callback never resumes Lua: it pushes results onto task_stack(t) and calls task_wake(t, n);
 *   3. the continuation k receives those n values on top of the stack and returns them;
 *   4. the cancel function releases the op if the task is cancelled or times out first.
 */
#ifndef CACHOST_HOST_H
#define CACHOST_HOST_H

#include <signal.h>

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

#define CACHOST_VERSION "0.1.0"

struct event_base;
struct task;

struct host {
    lua_State *L;              /* the main state */
    struct event_base *base;   /* the one event loop */
    struct task *current;      /* task being resumed; NULL at top level */
    const char *root;          /* where scripts/, connectors/, policies/ live */
    const char *home;          /* $CACHOST_HOME (may be NULL until decided by Lua) */
    volatile sig_atomic_t stopping;    /* 1: a graceful stop was requested; 2: stop now (repl.exit) */
    volatile sig_atomic_t exit_code;
    volatile sig_atomic_t signals;     /* SIGINT/SIGTERM received so far, counted in the handler: C work
                                          the loop cannot interrupt (SQLite) stops when it changes */
};
extern struct host H;

/* ---- userdata classes (modules.c) ---- */

/* Registers the metatable `name`: the entries of meta (__gc, __close, __tostring...) and an __index table
 * of methods. */
void host_class(lua_State *L, const char *name, const luaL_Reg *meta, const luaL_Reg *methods);

/* sqlite.blob(s) -> a value both database modules bind as a BLOB (sqlite.c; pg.c shares it). */
int db_blob(lua_State *L);

/* ---- tasks (sched.c) ---- */

/* The running task; raises "<what>: must be called inside a task" when there is none. */
struct task *task_current(lua_State *L, const char *what);

/* Suspend the running task (call as `return task_wait(...)`).  `cancel(op)` is called if the task is
 * cancelled or the timeout (seconds, <= 0 for none) fires first; the op must then be released and never
 * woken.  On timeout k receives nil, "timeout"; on cancel nil, "cancelled".  k may be NULL: the values
 * given to task_wake are then returned as they are. */
typedef void (*task_cancel_fn)(void *op);
int task_wait(lua_State *L, double timeout, task_cancel_fn cancel, void *op, lua_KContext ctx, lua_KFunction k);

/* The thread on which a waker pushes the values the waiting task will receive. */
lua_State *task_stack(struct task *t);

/* Make a waiting task ready with the n values pushed on task_stack(t).  Never resumes directly: the
 * loop resumes ready tasks at top level. */
void task_wake(struct task *t, int n);

/* From an I/O callback: push(L) runs protected on the main state with arg as its one (light userdata)
 * argument; what it returns wakes t (nil, "error: out of memory" if it raised).  arg stays the caller's. */
void task_deliver(struct task *t, lua_CFunction push, void *arg);

/* Start fn (on top of L's stack, followed by nargs args, all popped) as a new task. Returns the task;
 * leaves nothing on the stack. */
struct task *task_spawn(lua_State *L, int nargs, const char *name);

/* Push ok, results... | false, err of an ended task; returns the count. */
int task_outcome(lua_State *L, struct task *t);

/* Push the handle (userdata) of a live task, e.g. to keep it after it ends. */
void task_push(lua_State *L, struct task *t);

/* Run the loop until no task is alive and no event is pending (or a forced exit). */
int sched_run(void);

/* SIGINT handling can be taken over (the REPL cancels the running entry instead of stopping). */
extern void (*host_sigint_hook)(void);

/* ---- logging from C (log.c) ---- */
enum { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };
void log_msg(int level, const char *msg, const char *fmt_kv, ...);  /* fmt_kv: printf-style "k=v ..." or NULL */
int log_set_level(const char *name);   /* 0 ok, -1 unknown */
void log_set_json(int on);
void log_shutdown(void);               /* free registered secrets (wiped) and close the sink; at exit */
/* Replace every registered secret in buf (in place, NUL-terminated, may shrink). Returns a new malloc'd
 * string; caller frees. */
char *log_redact(const char *s, size_t len, size_t *outlen);

/* ---- bounded Lua patterns (lpattern.c) ---- */

/* A metered pattern call charges its steps to charge(L, ud, steps) every LPATTERN_CHUNK steps and when it
 * ends; charge raises (lua_error) to stop the match. */
#define LPATTERN_CHUNK 4096
typedef struct lpattern_meter {
    void (*charge)(lua_State *L, void *ud, lua_Integer steps);
    void *ud;
} lpattern_meter;
/* Set find/match/gmatch/gsub of the table at idx to metered copies (meter must outlive them). */
void lpattern_install(lua_State *L, int idx, const lpattern_meter *meter);

/* zstd.c, for other modules (sqlite.c's unzstd()): decompress one frame (ddict from zstd_ddict_new, or NULL);
 * NULL on success with *out malloc'd (free it), else the message and *token (corrupt, dictionary, too_large) */
const char *zstd_decompress_buf(const void *src, size_t n, const void *ddict, size_t max, char **out,
                                size_t *outlen, const char **token);
void *zstd_ddict_new(const void *dict, size_t n);   /* NULL: not a zstd dictionary */
void zstd_ddict_free(void *ddict);
unsigned zstd_ddict_id(const void *ddict);
long zstd_frame_dict(const void *src, size_t n);     /* -1: not a frame; else the dictionary id it needs (0: none) */
void zstd_shutdown(void);

#endif
