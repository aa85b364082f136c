/* vm.c — the `vm` Lua module: separate Lua states with hard caps, for running untrusted policies.
 *
 *   vm.new{memory = bytes, instructions = n, seconds = n, name = "..."} -> vm | nil, err
 *   vm:load(text, chunkname) -> true | nil, err        vm:call(fname, ...) -> true, results... | nil, err
 *   vm:set(name, value)   vm:memory()   vm:globals()   vm:close()   vm.null (== json.null)
 *
 * Errors come back as "memory: policy X exceeded its 8 MB cap", "budget: policy X exceeded N instructions"
 * or "error: file:line: message".  Values cross states by deep copy only (no functions, no userdata, no
 * callbacks into the main state): policies return plans, the host acts.
 *
 * Caps: a counting lua_Alloc refuses an allocation that would grow past the cap, never a free (HAProxy);
 * the instruction budget is a count hook that, once tripped, fires on every instruction so a `pcall` in the
 * policy cannot swallow it (Redis).  pcall/xpcall are wrapped to re-raise memory errors and trips for the
 * same reason.  __gc is refused (Lua runs finalizers with hooks off, so the budget could not stop one).
 * Outside a call the hook stays armed in "idle" mode: any Lua code run then dies at its first instruction.
 *
 * The count hook never fires inside a C function, so what a policy can start in C is bounded too: pattern
 * matching is lpattern.c's metered copy of Lua's (its steps are charged to the instruction budget),
 * table.move/insert/remove/concat/sort charge the elements they will walk before they start, and
 * string.rep of empty strings returns at once (Lua 5.4 loops n times).  What remains costs at most one
 * pass over a string per instruction (== or < of long strings, utf8.len...): the hook, every HOOK_STEP
 * instructions, also ends a call that runs past its time limit (`seconds`, 10 by default).
 *
 * Never longjmp across states: everything that allocates in the vm runs under lua_pcall in the vm, and
 * everything that allocates in the main state under lua_pcall in the main state (see copy_values).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "host.h"

#define VM_MT "cachost.vm"
#define DEFAULT_MEMORY (8u << 20)
#define DEFAULT_BUDGET 10000000
#define MIN_MEMORY (64u << 10)
#define DEFAULT_SECONDS 10
/* hook granularity while counting: small enough that the time limit is checked often even when each
 * instruction compares megabytes, rare enough to be cheap (a hook call and a clock read per 1000) */
#define HOOK_STEP 1000
#define COPY_DEPTH 100

typedef struct vm {
    lua_State *S;          /* NULL when closed */
    size_t used, cap;
    lua_Integer budget;    /* instructions per load/call */
    lua_Integer remaining; /* left in the running call */
    int step;              /* current hook count */
    int running;           /* 1 inside load/call: the hook counts; 0: the hook kills at once */
    int tripped;           /* budget exhausted in this call */
    int memkill;           /* a memory error was raised in this call */
    const char *why;       /* what tripped the budget beyond instructions (a pattern, a table walk, time) */
    lua_Integer seconds;   /* time limit of one load/call */
    double deadline;       /* of the running call (monotonic seconds) */
    lpattern_meter meter;  /* pattern matching charges the budget through this */
    char name[64];
} vm_t;

/* ---- the allocator ---- */

static void *vm_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
    vm_t *v = ud;
    if (ptr == NULL) osize = 0; /* osize then encodes the object type, not a size */
    if (nsize == 0) {
        free(ptr);
        v->used -= osize;
        return NULL;
    }
    if (nsize > osize && nsize - osize > v->cap - v->used) return NULL; /* growth past the cap: refuse */
    void *p = realloc(ptr, nsize);
    if (p) v->used = v->used - osize + nsize;
    return p;
}

static vm_t *vm_of(lua_State *S) {
    void *ud;
    lua_getallocf(S, &ud);
    return ud;
}

/* ---- the budget hook ---- */

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void hook(lua_State *S, lua_Debug *ar);

/* Trip the budget: from now on every instruction raises, so a pcall in the policy catches one error, not
 * the next.  Raises. */
static int trip(lua_State *S, vm_t *v, const char *why) {
    if (!v->tripped) {
        v->tripped = 1;
        v->why = why;
        lua_sethook(S, hook, LUA_MASKCOUNT | LUA_MASKLINE, 1);
    }
    lua_pushliteral(S, "instruction budget exceeded");
    return lua_error(S);
}

static void hook(lua_State *S, lua_Debug *ar) {
    (void)ar;
    vm_t *v = vm_of(S);
    if (v->running && !v->tripped) {
        v->remaining -= v->step;
        if (v->remaining > 0 && now() <= v->deadline) {
            v->step = v->remaining < HOOK_STEP ? (int)v->remaining : HOOK_STEP;
            lua_sethook(S, hook, LUA_MASKCOUNT, v->step);
            return;
        }
        trip(S, v, v->remaining > 0 ? "time" : NULL);
    }
    lua_pushliteral(S, "instruction budget exceeded"); /* tripped, or idle: no Lua runs outside a call */
    lua_error(S);
}

/* Work done in C on behalf of the policy (pattern steps, table elements) counts as instructions. */
static void charge_work(lua_State *S, vm_t *v, lua_Integer steps, const char *why) {
    if (!v->running || v->tripped) {
        lua_pushliteral(S, "instruction budget exceeded");
        lua_error(S);
    }
    v->remaining = steps >= v->remaining ? 0 : v->remaining - steps;
    if (v->remaining <= 0) trip(S, v, why);
    if (now() > v->deadline) trip(S, v, "time");
}

static void charge_pattern(lua_State *S, void *ud, lua_Integer steps) {
    charge_work(S, ud, steps, "pattern too complex");
}

static void arm(vm_t *v) {
    v->running = 1;
    v->tripped = v->memkill = 0;
    v->why = NULL;
    v->deadline = now() + (double)v->seconds;
    v->remaining = v->budget;
    v->step = v->budget < HOOK_STEP ? (int)v->budget : HOOK_STEP;
    lua_sethook(v->S, hook, LUA_MASKCOUNT, v->step);
}

static void disarm(vm_t *v) {
    v->running = 0;
    lua_sethook(v->S, hook, LUA_MASKCOUNT, 1);
}

/* ---- safe globals ---- */

/* pcall/xpcall that cannot swallow a memory error or a budget trip. */
static int rethrow_kills(lua_State *S, int status) {
    vm_t *v = vm_of(S);
    if (status == LUA_ERRMEM) v->memkill = 1;
    if (v->memkill || v->tripped) return lua_error(S);
    return 0;
}

static int safe_pcall(lua_State *S) {
    luaL_checkany(S, 1);
    int status = lua_pcall(S, lua_gettop(S) - 1, LUA_MULTRET, 0);
    rethrow_kills(S, status);
    lua_pushboolean(S, status == LUA_OK);
    lua_insert(S, 1);
    return lua_gettop(S);
}

/* The message handler of a trip is called from inside the hook, where hooks are off: the policy's handler
 * must not run then (it could loop forever), so it is skipped once the call is being killed. */
static int guarded_msgh(lua_State *S) {
    vm_t *v = vm_of(S);
    if (v->tripped || v->memkill) return 1;
    lua_pushvalue(S, lua_upvalueindex(1));
    lua_insert(S, 1);
    lua_call(S, lua_gettop(S) - 1, 1);
    return 1;
}

static int safe_xpcall(lua_State *S) {
    int n = lua_gettop(S);
    luaL_checktype(S, 2, LUA_TFUNCTION);
    lua_pushvalue(S, 1);
    lua_pushvalue(S, 2);
    lua_pushcclosure(S, guarded_msgh, 1);
    lua_replace(S, 1); /* [msgh, f, args...] */
    lua_replace(S, 2);
    int status = lua_pcall(S, n - 2, LUA_MULTRET, 1);
    rethrow_kills(S, status);
    lua_pushboolean(S, status == LUA_OK);
    lua_replace(S, 1);
    return lua_gettop(S);
}

/* load() forced to text mode: crafted bytecode can crash the VM. */
static int safe_load(lua_State *S) {
    int n = lua_gettop(S);
    if (n < 3) lua_settop(S, 3);
    lua_pushliteral(S, "t");
    lua_replace(S, 3);
    lua_pushvalue(S, lua_upvalueindex(1));
    lua_insert(S, 1);
    lua_call(S, lua_gettop(S) - 1, LUA_MULTRET);
    return lua_gettop(S);
}

/* setmetatable that refuses __gc: finalizers run with hooks disabled (GCTM), so a looping one could not be
 * stopped by the budget.  Only the field's presence at this call marks an object for finalization. */
static int safe_setmetatable(lua_State *S) {
    if (lua_type(S, 2) == LUA_TTABLE) {
        lua_pushliteral(S, "__gc");
        if (lua_rawget(S, 2) != LUA_TNIL) return luaL_error(S, "setmetatable: __gc is not allowed in a policy");
        lua_pop(S, 1);
    }
    lua_pushvalue(S, lua_upvalueindex(1));
    lua_insert(S, 1);
    lua_call(S, lua_gettop(S) - 1, 1);
    return 1;
}

static int ro_newindex(lua_State *S) {
    return luaL_error(S, "read-only table (cannot set '%s')", luaL_tolstring(S, 2, NULL));
}

static int ro_next(lua_State *S) {
    luaL_checktype(S, 1, LUA_TTABLE);
    lua_settop(S, 2);
    if (lua_next(S, 1)) return 2;
    lua_pushnil(S);
    return 1;
}

/* pairs() over a proxy walks the real table (the policy may have shadowed `next`). */
static int ro_pairs(lua_State *S) {
    lua_pushcfunction(S, ro_next);
    lua_getmetatable(S, 1);
    lua_getfield(S, -1, "__index");
    lua_remove(S, -2);
    lua_pushnil(S);
    return 3;
}

/* Replace the table on top by a read-only proxy over it. */
static void readonly(lua_State *S) {
    lua_newtable(S);                  /* real proxy */
    lua_createtable(S, 0, 4);         /* real proxy mt */
    lua_pushvalue(S, -3);
    lua_setfield(S, -2, "__index");
    lua_pushcfunction(S, ro_newindex);
    lua_setfield(S, -2, "__newindex");
    lua_pushcfunction(S, ro_pairs);
    lua_setfield(S, -2, "__pairs");
    lua_pushboolean(S, 0);
    lua_setfield(S, -2, "__metatable");
    lua_setmetatable(S, -2);
    lua_remove(S, -2);
}

static int undefined_global(lua_State *S) {
    lua_pushvalue(S, 2);
    if (lua_rawget(S, lua_upvalueindex(1)) != LUA_TNIL) return 1;
    if (lua_type(S, 2) == LUA_TSTRING) return luaL_error(S, "undefined global '%s'", lua_tostring(S, 2));
    return luaL_error(S, "undefined global");
}

/* ---- C functions that could run long without an instruction: charged before they start ---- */

static int call_original(lua_State *S) {
    lua_pushvalue(S, lua_upvalueindex(1));
    lua_insert(S, 1);
    lua_call(S, lua_gettop(S) - 1, LUA_MULTRET);
    return lua_gettop(S);
}

/* the number of integers from a to b, saturated */
static lua_Integer span(lua_Integer a, lua_Integer b) {
    if (b < a) return 0;
    lua_Unsigned d = (lua_Unsigned)b - (lua_Unsigned)a;
    return d >= (lua_Unsigned)LUA_MAXINTEGER ? LUA_MAXINTEGER : (lua_Integer)d + 1;
}

static void charge_table(lua_State *S, lua_Integer n) {
    charge_work(S, vm_of(S), n, "table operation too long");
}

static int safe_move(lua_State *S) { /* table.move(a1, f, e, t[, a2]) */
    charge_table(S, span(luaL_checkinteger(S, 2), luaL_checkinteger(S, 3)));
    return call_original(S);
}

static int safe_insert(lua_State *S) { /* table.insert(t, [pos,] v): shifts #t - pos elements */
    if (lua_gettop(S) == 3) {
        lua_Integer n = luaL_len(S, 1), pos = luaL_checkinteger(S, 2);
        charge_table(S, pos < n ? span(pos, n) : span(n, pos));
    }
    return call_original(S);
}

static int safe_remove(lua_State *S) { /* table.remove(t[, pos]) */
    lua_Integer n = luaL_len(S, 1), pos = luaL_optinteger(S, 2, n);
    charge_table(S, pos < n ? span(pos, n) : span(n, pos));
    return call_original(S);
}

static int safe_concat(lua_State *S) { /* table.concat(t[, sep[, i[, j]]]) */
    lua_Integer i = luaL_optinteger(S, 3, 1);
    lua_Integer j = lua_isnoneornil(S, 4) ? luaL_len(S, 1) : luaL_checkinteger(S, 4);
    charge_table(S, span(i, j));
    return call_original(S);
}

static int safe_sort(lua_State *S) { /* n log n comparisons */
    lua_Integer n = luaL_len(S, 1), log = 1;
    for (lua_Integer k = n; k > 1; k >>= 1) log++;
    charge_table(S, n > 0 && n < LUA_MAXINTEGER / log ? n * log : n > 0 ? LUA_MAXINTEGER : 0);
    return call_original(S);
}

/* string.rep of an empty string (and empty separator) loops n times in Lua 5.4 */
static int safe_rep(lua_State *S) {
    size_t l, lsep;
    luaL_checklstring(S, 1, &l);
    lua_Integer n = luaL_checkinteger(S, 2);
    luaL_optlstring(S, 3, "", &lsep);
    if (l + lsep == 0 || n <= 0) {
        lua_pushliteral(S, "");
        return 1;
    }
    return call_original(S);
}

/* Replace t[name] (t on top) by fn with the original as its upvalue. */
static void wrap(lua_State *S, const char *name, lua_CFunction fn) {
    lua_getfield(S, -1, name);
    lua_pushcclosure(S, fn, 1);
    lua_setfield(S, -2, name);
}

static const char *const BASE_SAFE[] = {"assert", "error", "getmetatable", "ipairs", "next", "pairs", "rawequal",
                                        "rawget", "rawlen", "rawset", "select", "tonumber",
                                        "tostring", "type", "_VERSION", NULL};

/* Runs protected in the new state: builds the policy's globals table over read-only safe names. */
static int setup(lua_State *S) {
    luaL_requiref(S, "_G", luaopen_base, 0); /* fills the original globals table G0 */
    int g0 = lua_gettop(S);
    lua_newtable(S); /* safe */
    int safe = lua_gettop(S);
    for (const char *const *k = BASE_SAFE; *k; k++) {
        lua_getfield(S, g0, *k);
        lua_setfield(S, safe, *k);
    }
    lua_pushcfunction(S, safe_pcall);
    lua_setfield(S, safe, "pcall");
    lua_pushcfunction(S, safe_xpcall);
    lua_setfield(S, safe, "xpcall");
    lua_getfield(S, g0, "load");
    lua_pushcclosure(S, safe_load, 1);
    lua_setfield(S, safe, "load");
    lua_getfield(S, g0, "setmetatable");
    lua_pushcclosure(S, safe_setmetatable, 1);
    lua_setfield(S, safe, "setmetatable");
    lua_pushlightuserdata(S, NULL); /* json.null in the main state */
    lua_setfield(S, safe, "null");
    static const luaL_Reg libs[] = {{LUA_STRLIBNAME, luaopen_string}, {LUA_TABLIBNAME, luaopen_table},
                                    {LUA_MATHLIBNAME, luaopen_math}, {LUA_UTF8LIBNAME, luaopen_utf8},
                                    {NULL, NULL}};
    for (const luaL_Reg *l = libs; l->func; l++) {
        luaL_requiref(S, l->name, l->func, 0);
        if (strcmp(l->name, LUA_STRLIBNAME) == 0) {
            lua_pushnil(S);
            lua_setfield(S, -2, "dump"); /* only useful to make bytecode */
            lpattern_install(S, -1, &vm_of(S)->meter);
            wrap(S, "rep", safe_rep);
        } else if (strcmp(l->name, LUA_TABLIBNAME) == 0) {
            wrap(S, "move", safe_move);
            wrap(S, "insert", safe_insert);
            wrap(S, "remove", safe_remove);
            wrap(S, "concat", safe_concat);
            wrap(S, "sort", safe_sort);
        }
        readonly(S);
        if (strcmp(l->name, LUA_STRLIBNAME) == 0) { /* methods on strings go through the proxy too */
            lua_pushliteral(S, "");
            lua_getmetatable(S, -1);
            lua_pushvalue(S, -3);
            lua_setfield(S, -2, "__index");
            lua_pushboolean(S, 0);
            lua_setfield(S, -2, "__metatable");
            lua_pop(S, 2);
        }
        lua_setfield(S, safe, l->name);
    }
    lua_newtable(S); /* the policy's own globals */
    lua_pushvalue(S, -1);
    lua_setfield(S, safe, "_G");
    lua_createtable(S, 0, 1);
    lua_pushvalue(S, safe);
    lua_pushcclosure(S, undefined_global, 1);
    lua_setfield(S, -2, "__index");
    lua_setmetatable(S, -2);
    lua_rawseti(S, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
    return 0;
}

/* ---- deep copy between states ---- */

struct copy {
    lua_State *from;
    int first, n;           /* values from[first .. first+n-1] */
    const char *fname;      /* call: push this global function first */
    const char *setname;    /* set: store the single value as this global */
    const char *what;       /* "argument" / "result" / "value", for errors */
};

static void copy_value(lua_State *from, int idx, lua_State *to, int seen, int depth, const struct copy *c, int pos);

static void copy_table(lua_State *from, int idx, lua_State *to, int seen, int depth, const struct copy *c, int pos) {
    if (depth > COPY_DEPTH) luaL_error(to, "%s %d: nested deeper than %d", c->what, pos, COPY_DEPTH);
    luaL_checkstack(to, 4, "copy");
    if (!lua_checkstack(from, 3)) luaL_error(to, "%s %d: stack overflow", c->what, pos);
    /* seen: source table address -> its copy, so cycles and shared tables are reproduced */
    lua_pushlightuserdata(to, (void *)lua_topointer(from, idx));
    if (lua_rawget(to, seen) == LUA_TTABLE) return;
    lua_pop(to, 1);
    lua_Unsigned len = lua_rawlen(from, idx);
    lua_createtable(to, len > 1024 ? 1024 : (int)len, 0);
    lua_pushlightuserdata(to, (void *)lua_topointer(from, idx));
    lua_pushvalue(to, -2);
    lua_rawset(to, seen);
    int t = lua_gettop(to);
    lua_pushnil(from);
    while (lua_next(from, idx)) {
        int top = lua_gettop(from);
        copy_value(from, top - 1, to, seen, depth + 1, c, pos);
        copy_value(from, top, to, seen, depth + 1, c, pos);
        lua_rawset(to, t);
        lua_pop(from, 1);
    }
}

/* Push onto `to` a copy of from[idx]; raises in `to` (which must be running protected). */
static void copy_value(lua_State *from, int idx, lua_State *to, int seen, int depth, const struct copy *c, int pos) {
    luaL_checkstack(to, 2, "copy");
    switch (lua_type(from, idx)) {
    case LUA_TNIL: lua_pushnil(to); break;
    case LUA_TBOOLEAN: lua_pushboolean(to, lua_toboolean(from, idx)); break;
    case LUA_TNUMBER:
        if (lua_isinteger(from, idx)) lua_pushinteger(to, lua_tointeger(from, idx));
        else lua_pushnumber(to, lua_tonumber(from, idx));
        break;
    case LUA_TSTRING: { /* a real string: lua_tolstring does not convert (nor allocate) in `from` */
        size_t len;
        const char *s = lua_tolstring(from, idx, &len);
        lua_pushlstring(to, s, len);
        break;
    }
    case LUA_TTABLE: copy_table(from, idx, to, seen, depth, c, pos); break;
    case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(from, idx) == NULL) { /* null */
            lua_pushlightuserdata(to, NULL);
            break;
        }
        /* fallthrough */
    default:
        luaL_error(to, "%s %d: cannot copy a %s value", c->what, pos, lua_typename(from, lua_type(from, idx)));
    }
}

/* lua_CFunction run under lua_pcall in the destination: [ctx] -> [fn?] copies... (or sets a global). */
static int copy_values(lua_State *to) {
    const struct copy *c = lua_touserdata(to, 1);
    lua_settop(to, 1);
    lua_newtable(to); /* seen, at 2 */
    int top_from = lua_gettop(c->from);
    luaL_checkstack(to, c->n + 4, "too many values");
    if (c->fname) {
        lua_rawgeti(to, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
        lua_pushstring(to, c->fname);
        if (lua_rawget(to, -2) != LUA_TFUNCTION) /* raw: the globals' __index would raise */
            luaL_error(to, "no function '%s' in policy %s", c->fname, vm_of(to)->name);
        lua_remove(to, -2);
    }
    for (int i = 0; i < c->n; i++) copy_value(c->from, c->first + i, to, 2, 0, c, i + 1);
    lua_settop(c->from, top_from);
    if (c->setname) {
        lua_rawgeti(to, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
        lua_insert(to, -2);
        lua_setfield(to, -2, c->setname);
        return 0;
    }
    return c->n + (c->fname ? 1 : 0);
}

/* Copy; on failure leave nothing and return the error message (pushed on `to` as "error: ..."). */
static int copy_across(struct copy *c, lua_State *to, int nret) {
    int top_from = lua_gettop(c->from);
    if (!lua_checkstack(to, 3)) return LUA_ERRMEM;
    lua_pushcfunction(to, copy_values);
    lua_pushlightuserdata(to, c);
    int status = lua_pcall(to, 1, nret, 0);
    lua_settop(c->from, top_from); /* a raise mid-copy leaves lua_next's key and value on `from` */
    return status;
}

/* ---- the handle ---- */

static vm_t *check_vm(lua_State *L) {
    vm_t *v = luaL_checkudata(L, 1, VM_MT);
    if (!v->S) luaL_error(L, "attempt to use a closed vm");
    return v;
}

static void vm_release(vm_t *v) {
    if (!v->S) return;
    v->running = 0; /* finalizers that run at close die at their first instruction */
    lua_sethook(v->S, hook, LUA_MASKCOUNT, 1);
    lua_close(v->S);
    v->S = NULL;
}

static int l_gc(lua_State *L) {
    vm_release(luaL_checkudata(L, 1, VM_MT));
    return 0;
}

static int l_close(lua_State *L) {
    vm_release(check_vm(L));
    return 0;
}

static int l_tostring(lua_State *L) {
    vm_t *v = luaL_checkudata(L, 1, VM_MT);
    if (v->S) lua_pushfstring(L, "vm (%s, %d bytes)", v->name, (int)v->used);
    else lua_pushfstring(L, "vm (%s, closed)", v->name);
    return 1;
}

static void push_cap(lua_State *L, size_t cap) {
    if (cap % (1u << 20) == 0) lua_pushfstring(L, "%d MB", (int)(cap >> 20));
    else if (cap % 1024 == 0) lua_pushfstring(L, "%d KB", (int)(cap >> 10));
    else lua_pushfstring(L, "%d bytes", (int)cap);
}

/* After a failed load/call in the vm: push nil, "<token>: ..." onto L and reset the vm.  Returns 2. */
static int fail(lua_State *L, vm_t *v, int status) {
    lua_State *S = v->S;
    int memory = status == LUA_ERRMEM || v->memkill, budget = v->tripped;
    lua_pushnil(L);
    if (memory) {
        push_cap(L, v->cap);
        lua_pushfstring(L, "memory: policy %s exceeded its %s cap", v->name, lua_tostring(L, -1));
        lua_remove(L, -2);
    } else if (budget && v->why && strcmp(v->why, "time") == 0) {
        lua_pushfstring(L, "budget: policy %s exceeded its %I s time limit", v->name, (LUAI_UACINT)v->seconds);
    } else if (budget) {
        lua_pushfstring(L, "budget: policy %s exceeded %I instructions%s%s%s", v->name, (LUAI_UACINT)v->budget,
                        v->why ? " (" : "", v->why ? v->why : "", v->why ? ")" : "");
    } else if (lua_type(S, -1) == LUA_TSTRING) {
        lua_pushfstring(L, "error: %s", lua_tostring(S, -1));
    } else if (lua_type(S, -1) == LUA_TNUMBER) {
        lua_pushfstring(L, "error: %f", (LUAI_UACNUMBER)lua_tonumber(S, -1));
    } else {
        lua_pushfstring(L, "error: (error object is a %s value)", luaL_typename(S, -1));
    }
    lua_settop(S, 0);
    disarm(v);
    if (memory) lua_gc(S, LUA_GCCOLLECT); /* give the garbage of the killed call back before the next one */
    return 2;
}

static void opt_field(lua_State *L, const char *k, lua_Integer *out) {
    if (lua_getfield(L, 1, k) != LUA_TNIL) {
        int ok;
        *out = lua_tointegerx(L, -1, &ok);
        if (!ok || *out <= 0) luaL_error(L, "vm.new: '%s' must be a positive integer", k);
    }
    lua_pop(L, 1);
}

static int l_new(lua_State *L) {
    lua_Integer memory = DEFAULT_MEMORY, budget = DEFAULT_BUDGET, seconds = DEFAULT_SECONDS;
    const char *name = "?";
    if (!lua_isnoneornil(L, 1)) {
        luaL_checktype(L, 1, LUA_TTABLE);
        opt_field(L, "memory", &memory);
        opt_field(L, "instructions", &budget);
        opt_field(L, "seconds", &seconds);
        lua_getfield(L, 1, "name");
        name = lua_isnil(L, -1) ? "?" : luaL_checkstring(L, -1); /* anchored in opts */
        lua_pop(L, 1);
    }
    luaL_argcheck(L, (lua_Unsigned)memory >= MIN_MEMORY, 1, "memory must be at least 65536 bytes");
    vm_t *v = lua_newuserdatauv(L, sizeof *v, 0); /* closed first: a raise below leaves a valid object */
    memset(v, 0, sizeof *v);
    snprintf(v->name, sizeof v->name, "%s", name);
    v->cap = (size_t)memory;
    v->budget = budget;
    v->seconds = seconds;
    v->meter.charge = charge_pattern;
    v->meter.ud = v;
    luaL_setmetatable(L, VM_MT);
    lua_State *S = lua_newstate(vm_alloc, v);
    if (!S) {
        lua_pushnil(L);
        lua_pushliteral(L, "memory: cannot create a state within the cap");
        return 2;
    }
    v->S = S;
    disarm(v);
    lua_pushcfunction(S, setup); /* no allocation: light C function on the initial stack */
    if (lua_pcall(S, 0, 0, 0) != LUA_OK) {
        vm_release(v);
        lua_pushnil(L);
        lua_pushliteral(L, "memory: cap too small for the base libraries");
        return 2;
    }
    lua_settop(S, 0);
    return 1;
}

/* Run the function on S's stack (with nargs) under the caps; push results on L. */
static int run(lua_State *L, vm_t *v, int nargs) {
    lua_State *S = v->S;
    arm(v);
    int status = lua_pcall(S, nargs, LUA_MULTRET, 0);
    if (status != LUA_OK || v->tripped || v->memkill) return fail(L, v, status);
    disarm(v);
    int n = lua_gettop(S);
    struct copy c = {.from = S, .first = 1, .n = n, .what = "result"};
    status = n ? copy_across(&c, L, n) : LUA_OK;
    lua_settop(S, 0);
    if (status != LUA_OK) {
        lua_pushfstring(L, "error: %s", lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "results not copied");
        lua_pushnil(L);
        lua_insert(L, -2);
        return 2;
    }
    lua_pushboolean(L, 1);
    lua_insert(L, -(n + 1));
    return n + 1;
}

static int l_load(lua_State *L) {
    vm_t *v = check_vm(L);
    size_t len;
    const char *text = luaL_checklstring(L, 2, &len);
    const char *chunkname = luaL_optstring(L, 3, NULL);
    lua_settop(L, 3);
    if (chunkname) lua_pushfstring(L, "@%s", chunkname);
    else lua_pushfstring(L, "=%s", v->name);
    lua_State *S = v->S;
    lua_settop(S, 0);
    v->tripped = v->memkill = 0;
    int status = luaL_loadbufferx(S, text, len, lua_tostring(L, -1), "t"); /* protected inside */
    if (status != LUA_OK) return fail(L, v, status);
    int n = run(L, v, 0);
    if (lua_isnil(L, -n)) return n; /* nil, err */
    lua_pushboolean(L, 1);          /* a chunk's return values are dropped: load defines, call evaluates */
    return 1;
}

static int l_call(lua_State *L) {
    vm_t *v = check_vm(L);
    const char *fname = luaL_checkstring(L, 2);
    lua_State *S = v->S;
    lua_settop(S, 0);
    v->tripped = v->memkill = 0;
    struct copy c = {.from = L, .first = 3, .n = lua_gettop(L) - 2, .fname = fname, .what = "argument"};
    int status = copy_across(&c, S, c.n + 1);
    if (status != LUA_OK) return fail(L, v, status);
    return run(L, v, c.n);
}

static int l_set(lua_State *L) {
    vm_t *v = check_vm(L);
    const char *name = luaL_checkstring(L, 2);
    luaL_checkany(L, 3);
    lua_State *S = v->S;
    lua_settop(S, 0);
    v->tripped = v->memkill = 0;
    struct copy c = {.from = L, .first = 3, .n = 1, .setname = name, .what = "value"};
    int status = copy_across(&c, S, 0);
    if (status != LUA_OK) return fail(L, v, status);
    lua_pushboolean(L, 1);
    return 1;
}

static int l_memory(lua_State *L) {
    lua_pushinteger(L, (lua_Integer)check_vm(L)->used);
    return 1;
}

static int l_globals(lua_State *L) {
    vm_t *v = check_vm(L);
    lua_State *S = v->S;
    lua_settop(S, 0);
    if (!lua_checkstack(S, 3)) return luaL_error(L, "vm: stack overflow");
    lua_newtable(L);
    lua_rawgeti(S, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS); /* no allocation: reads only */
    lua_pushnil(S);
    lua_Integer i = 0;
    while (lua_next(S, 1)) {
        if (lua_type(S, -2) == LUA_TSTRING) {
            lua_pushstring(L, lua_tostring(S, -2));
            lua_rawseti(L, -2, ++i);
        }
        lua_pop(S, 1);
    }
    lua_settop(S, 0);
    return 1;
}

static const luaL_Reg methods[] = {{"load", l_load}, {"call", l_call}, {"set", l_set}, {"memory", l_memory},
                                   {"globals", l_globals}, {"close", l_close}, {NULL, NULL}};
static const luaL_Reg meta[] = {{"__gc", l_gc}, {"__close", l_gc}, {"__tostring", l_tostring}, {NULL, NULL}};

int luaopen_vm(lua_State *L) {
    host_class(L, VM_MT, meta, methods);
    lua_createtable(L, 0, 2);
    lua_pushcfunction(L, l_new);
    lua_setfield(L, -2, "new");
    lua_pushlightuserdata(L, NULL);
    lua_setfield(L, -2, "null");
    return 1;
}
