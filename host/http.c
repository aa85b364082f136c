/* http.c — the `http` module: an async HTTP client on libcurl's multi_socket API, bound to the host's
 * one libevent loop (curl's multi-event.c / hiperfifo.c pattern).
 *
 * Flow: http.request validates its options (misuse raises), builds a request record (easy handle, header
 * list, response buffer), adds it to the one multi and suspends the task (task_wait).  curl tells us
 * which sockets to watch (sock_cb) and when to call it back (timer_cb); those libevent callbacks call
 * curl_multi_socket_action and drain curl_multi_info_read; a finished record pushes {status, headers,
 * body, url} or nil, "token: message", token onto the task's stack and wakes it.  Lua never runs inside a curl
 * callback, and libcurl is never re-entered from one of its own callbacks.
 */
#include "host.h"

#include <arpa/inet.h>
#include <ctype.h>
#include "curl_dl.h"
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define DEFAULT_TIMEOUT   30.0
#define DEFAULT_CONNECT   10.0
#define DEFAULT_MAX_SIZE  (64 * 1024 * 1024)
#define MAX_REDIRS        5

struct req {
    CURL *easy;
    struct curl_slist *hdrs;
    struct task *task;
    struct req *prev, *next;       /* in-flight list (for http_shutdown) */
    char *body;                    /* response body */
    size_t len, cap, max_size;
    int too_large;
    CURLcode rc;
    double t0;                     /* monotonic start, seconds */
    char method[24];
    char *trace_url;               /* request URL without credentials/fragment, secrets in query masked */
    char *instance, *app;
    struct curl_slist *rcpt;       /* http.mail: recipients */
    char *upload;                  /* http.mail: the message, read by curl */
    size_t upload_len, upload_off;
    char errbuf[CURL_ERROR_SIZE];
};

struct sock {                      /* one watched socket (curl_multi_assign'd to it) */
    curl_socket_t fd;
    struct event *ev;
    struct sock *prev, *next;
};

static struct {
    CURLM *multi;
    struct event *timer;
    struct req *reqs;
    struct sock *socks;
    FILE *trace;
    int global_init;
    CURL *pool[64];                /* idle easy handles, reset, for reuse (saves their set-up per request) */
    int npool;
} S;

static double mono_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- tracing ---- */

static void json_str(FILE *f, const char *s) {
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        if (*p == '"' || *p == '\\') fprintf(f, "\\%c", *p);
        else if (*p < 0x20 || *p == 0x7f) fprintf(f, "\\u%04x", *p);
        else fputc(*p, f);
    }
    fputc('"', f);
}

/* Query keys whose values must never reach a trace. */
static int secret_key(const char *k, size_t n) {
    static const char *const words[] = {"token", "secret", "password", "passwd", "code", "signature",
                                        "sig", "key", "auth", "credential", "assertion", NULL};
    char low[64];
    if (n >= sizeof low) return 1;              /* absurdly long key: mask to be safe */
    for (size_t i = 0; i < n; i++) low[i] = (char)tolower((unsigned char)k[i]);
    low[n] = 0;
    for (int i = 0; words[i]; i++)
        if (strstr(low, words[i])) return 1;
    return 0;
}

/* malloc'd copy of url with the values of secret-looking query keys replaced by "***". */
static char *mask_query(const char *url) {
    size_t n = strlen(url);
    char *out = malloc(n + 1 + 3 * (n / 2 + 1)), *o = out;
    if (!out) return NULL;
    const char *q = strchr(url, '?');
    if (!q) { memcpy(out, url, n + 1); return out; }
    memcpy(o, url, (size_t)(q - url) + 1);
    o += q - url + 1;
    for (const char *p = q + 1; *p;) {
        const char *amp = strchr(p, '&'), *end = amp ? amp : p + strlen(p);
        const char *eq = memchr(p, '=', (size_t)(end - p));
        if (eq && secret_key(p, (size_t)(eq - p))) {
            memcpy(o, p, (size_t)(eq - p) + 1); o += eq - p + 1;
            memcpy(o, "***", 3); o += 3;
        } else {
            memcpy(o, p, (size_t)(end - p)); o += end - p;
        }
        if (!amp) break;
        *o++ = '&';
        p = amp + 1;
    }
    *o = 0;
    return out;
}

/* One JSON line per finished request.  Never headers or bodies. */
static void trace_write(struct req *r, long status, const char *err) {
    if (!S.trace) return;
    char *line = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&line, &len);
    if (!f) return;
    struct timespec ts;
    struct tm tm;
    char when[40];
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    fprintf(f, "{\"time\":\"%s.%03ldZ\",\"method\":", when, ts.tv_nsec / 1000000);
    json_str(f, r->method);
    fputs(",\"url\":", f);
    json_str(f, r->trace_url);
    fprintf(f, ",\"status\":%ld,\"bytes\":%zu,\"duration_ms\":%.3f", status, r->len, (mono_now() - r->t0) * 1e3);
    fputs(",\"error\":", f);
    if (err) json_str(f, err); else fputs("null", f);
    fputs(",\"instance\":", f);
    if (r->instance) json_str(f, r->instance); else fputs("null", f);
    fputs(",\"app\":", f);
    if (r->app) json_str(f, r->app); else fputs("null", f);
    fputs("}\n", f);
    if (fclose(f) != 0) { free(line); return; }
    size_t outlen = 0;
    char *clean = log_redact(line, len, &outlen);   /* registered secrets -> ******** */
    if (clean) { fwrite(clean, 1, outlen, S.trace); free(clean); }
    fflush(S.trace);
    free(line);
}

static int http_set_trace(const char *path) {
    if (S.trace) { fclose(S.trace); S.trace = NULL; }
    if (!path || !*path) return 0;
    S.trace = fopen(path, "ae");
    return S.trace ? 0 : -1;
}

/* ---- request records ---- */

static void req_free(struct req *r) {
    if (r->easy && S.npool < (int)(sizeof S.pool / sizeof S.pool[0])) {
        curl_easy_reset(r->easy);       /* options back to defaults; nothing of this request survives */
        S.pool[S.npool++] = r->easy;
    } else if (r->easy) {
        curl_easy_cleanup(r->easy);
    }
    curl_slist_free_all(r->hdrs);
    curl_slist_free_all(r->rcpt);
    free(r->upload);
    free(r->body);
    free(r->trace_url);
    free(r->instance);
    free(r->app);
    free(r);
}

static void req_unlink(struct req *r) {
    if (r->prev) r->prev->next = r->next; else S.reqs = r->next;
    if (r->next) r->next->prev = r->prev;
    r->prev = r->next = NULL;
}

static size_t write_cb(char *data, size_t size, size_t n, void *ud) {
    struct req *r = ud;
    size_t k = size * n;
    if (r->len + k > r->max_size) { r->too_large = 1; return 0; }   /* aborts: CURLE_WRITE_ERROR */
    if (r->len + k > r->cap) {
        size_t cap = r->cap ? r->cap : 16384;
        while (cap < r->len + k) cap *= 2;
        if (cap > r->max_size) cap = r->max_size;
        char *b = realloc(r->body, cap);
        if (!b) return 0;
        r->body = b;
        r->cap = cap;
    }
    memcpy(r->body + r->len, data, k);
    r->len += k;
    return k;
}

static const char *error_token(CURLcode rc) {
    switch (rc) {
    case CURLE_OPERATION_TIMEDOUT: return "timeout";
    case CURLE_COULDNT_RESOLVE_HOST: return "resolve";
    case CURLE_COULDNT_RESOLVE_PROXY: case CURLE_PROXY: return "proxy";
    case CURLE_COULDNT_CONNECT: return "connect";
    case CURLE_SSL_CONNECT_ERROR: case CURLE_PEER_FAILED_VERIFICATION: case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER: case CURLE_SSL_CACERT_BADFILE: case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH: case CURLE_SSL_CRL_BADFILE: case CURLE_SSL_SHUTDOWN_FAILED:
    case CURLE_SSL_ENGINE_NOTFOUND: case CURLE_SSL_ENGINE_SETFAILED: case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_USE_SSL_FAILED: case CURLE_SSL_CLIENTCERT: case CURLE_SSL_INVALIDCERTSTATUS:
        return "tls";
    case CURLE_FILESIZE_EXCEEDED: return "too_large";
    case CURLE_URL_MALFORMAT: case CURLE_UNSUPPORTED_PROTOCOL: return "bad_url";
    case CURLE_RECV_ERROR: case CURLE_SEND_ERROR: case CURLE_GOT_NOTHING: case CURLE_PARTIAL_FILE:
        return "reset";
    case CURLE_HTTP2: case CURLE_HTTP2_STREAM: case CURLE_HTTP3: return "http2";
    case CURLE_ABORTED_BY_CALLBACK: return "aborted";
    default: return "error";
    }
}

/* nil, "<token>: detail", token: every failure message of this module starts with its token, and the
 * token travels as data too, so that no caller parses the message. */
static int push_failure(lua_State *L, const char *msg) {
    lua_pushnil(L);
    lua_pushstring(L, msg);
    lua_pushlstring(L, msg, strcspn(msg, ":"));
    return 3;
}

static void format_error(struct req *r, char *out, size_t n) {
    if (r->too_large)
        snprintf(out, n, "too_large: response body over %zu bytes", r->max_size);
    else
        snprintf(out, n, "%s: %s", error_token(r->rc), r->errbuf[0] ? r->errbuf : curl_easy_strerror(r->rc));
}

/* Protected: builds the task's results on H.L from a finished record. */
static int push_result(lua_State *L) {
    struct req *r = lua_touserdata(L, 1);
    if (r->rc != CURLE_OK || r->too_large) {
        char err[CURL_ERROR_SIZE + 64];
        format_error(r, err, sizeof err);
        return push_failure(L, err);
    }
    long status = 0;
    char *eff = NULL;
    curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(r->easy, CURLINFO_EFFECTIVE_URL, &eff);
    lua_createtable(L, 0, 4);
    lua_pushinteger(L, status);
    lua_setfield(L, -2, "status");
    lua_pushlstring(L, r->body ? r->body : "", r->len);
    lua_setfield(L, -2, "body");
    if (eff) { lua_pushstring(L, eff); lua_setfield(L, -2, "url"); }
    lua_createtable(L, 0, 16);
    /* Headers of the last response only (after redirects).  Names lowercased; repeats joined with ", "
     * (RFC 9110 5.3), except set-cookie, which cannot be comma-joined and is joined with "\n". */
    struct curl_header *h = NULL;
    char name[256];
    while ((h = curl_easy_nextheader(r->easy, CURLH_HEADER, -1, h))) {
        size_t n = strlen(h->name);
        if (n >= sizeof name) continue;
        for (size_t i = 0; i <= n; i++) name[i] = (char)tolower((unsigned char)h->name[i]);
        if (lua_getfield(L, -1, name) == LUA_TSTRING) {
            lua_pushstring(L, strcmp(name, "set-cookie") == 0 ? "\n" : ", ");
            lua_pushstring(L, h->value);
            lua_concat(L, 3);
        } else {
            lua_pop(L, 1);
            lua_pushstring(L, h->value);
        }
        lua_setfield(L, -2, name);
    }
    lua_setfield(L, -2, "headers");
    return 1;
}

/* A transfer finished: detach it, hand the results to its task, trace, free. */
static void req_done(struct req *r, CURLcode rc) {
    r->rc = rc;
    curl_multi_remove_handle(S.multi, r->easy);
    req_unlink(r);
    long status = 0;
    char err[CURL_ERROR_SIZE + 64];
    if (rc == CURLE_OK && !r->too_large) curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
    else format_error(r, err, sizeof err);

    task_deliver(r->task, push_result, r);
    trace_write(r, status, rc == CURLE_OK && !r->too_large ? NULL : err);
    req_free(r);
}

static void check_multi_info(void) {
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(S.multi, &left))) {
        if (m->msg != CURLMSG_DONE) continue;
        struct req *r = NULL;
        CURLcode rc = m->data.result;    /* m is invalid after remove_handle: copy first */
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&r);
        req_done(r, rc);
    }
}

/* Task cancelled (or timed out in task_wait): drop the transfer.  Must not wake. */
static void req_cancel(void *op) {
    struct req *r = op;
    curl_multi_remove_handle(S.multi, r->easy);
    req_unlink(r);
    trace_write(r, 0, "cancelled");
    req_free(r);
}

/* ---- libevent <-> curl glue ---- */

static void event_cb(evutil_socket_t fd, short what, void *arg) {
    (void)arg;
    int running = 0;
    int flags = ((what & EV_READ) ? CURL_CSELECT_IN : 0) | ((what & EV_WRITE) ? CURL_CSELECT_OUT : 0);
    curl_multi_socket_action(S.multi, fd, flags, &running);
    check_multi_info();
    if (running <= 0 && S.timer) evtimer_del(S.timer);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg) {
    (void)fd; (void)what; (void)arg;
    int running = 0;
    curl_multi_socket_action(S.multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_multi_info();
}

/* CURLMOPT_TIMERFUNCTION: only re-arm our one timer. */
static int multi_timer_cb(CURLM *multi, long ms, void *ud) {
    (void)multi; (void)ud;
    if (ms < 0) { evtimer_del(S.timer); return 0; }
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(S.timer, &tv);
    return 0;
}

static void sock_free(struct sock *s) {
    event_free(s->ev);
    if (s->prev) s->prev->next = s->next; else S.socks = s->next;
    if (s->next) s->next->prev = s->prev;
    free(s);
}

/* CURLMOPT_SOCKETFUNCTION: (de)register the socket with libevent. */
static int sock_cb(CURL *e, curl_socket_t fd, int what, void *ud, void *sockp) {
    (void)e; (void)ud;
    struct sock *s = sockp;
    if (what == CURL_POLL_REMOVE) {
        if (s) sock_free(s);
        return 0;
    }
    short kind = (short)(((what & CURL_POLL_IN) ? EV_READ : 0) | ((what & CURL_POLL_OUT) ? EV_WRITE : 0) | EV_PERSIST);
    if (!s) {
        s = calloc(1, sizeof *s);
        if (!s) return -1;
        s->fd = fd;
        s->ev = event_new(H.base, fd, kind, event_cb, NULL);
        if (!s->ev) { free(s); return -1; }
        s->next = S.socks;
        if (S.socks) S.socks->prev = s;
        S.socks = s;
        curl_multi_assign(S.multi, fd, s);   /* allowed inside the socket callback */
    } else {
        event_del(s->ev);
        event_assign(s->ev, H.base, fd, kind, event_cb, NULL);
    }
    event_add(s->ev, NULL);
    return 0;
}

static int ensure_multi(void) {
    if (S.multi) return 0;
    if (!S.global_init) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) return -1;
        S.global_init = 1;
    }
    S.timer = evtimer_new(H.base, timer_cb, NULL);
    S.multi = curl_multi_init();
    if (!S.timer || !S.multi) {
        if (S.timer) event_free(S.timer);
        if (S.multi) curl_multi_cleanup(S.multi);
        S.timer = NULL; S.multi = NULL;
        return -1;
    }
    curl_multi_setopt(S.multi, CURLMOPT_SOCKETFUNCTION, sock_cb);
    curl_multi_setopt(S.multi, CURLMOPT_TIMERFUNCTION, multi_timer_cb);
    return 0;
}

void http_shutdown(void) {
    while (S.reqs) {
        struct req *r = S.reqs;
        curl_multi_remove_handle(S.multi, r->easy);
        req_unlink(r);
        req_free(r);
    }
    if (S.multi) curl_multi_cleanup(S.multi);
    while (S.npool) curl_easy_cleanup(S.pool[--S.npool]);
    while (S.socks) sock_free(S.socks);      /* any socket curl did not report removed */
    if (S.timer) event_free(S.timer);
    S.multi = NULL; S.timer = NULL;
    http_set_trace(NULL);
    if (S.global_init) curl_global_cleanup();
    S.global_init = 0;
}

/* ---- Lua API ---- */

/* Percent-encode: the RFC 3986 unreserved set is kept, as curl_easy_escape does.  Done here so the
 * result can be written into Lua-owned memory (a raising Lua allocation cannot leak curl's buffer).
 * With out == NULL only the length is computed. */
static size_t escape(char *out, const char *s, size_t n) {
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') { if (out) out[o] = (char)c; o++; }
        else { if (out) { out[o] = '%'; out[o + 1] = hex[c >> 4]; out[o + 2] = hex[c & 15]; } o += 3; }
    }
    return o;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Push "k=v&k2=v2" for the table at idx: keys sorted, both sides escaped; a value that is an array
 * repeats its key.  Raises on keys that are not strings and values that are not scalars. May raise. */
static void push_form(lua_State *L, int idx, const char *what) {
    idx = lua_absindex(L, idx);
    size_t nk = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        if (lua_type(L, -2) != LUA_TSTRING) luaL_error(L, "%s: keys must be strings", what);
        nk++;
        lua_pop(L, 1);
    }
    const char **keys = lua_newuserdatauv(L, (nk ? nk : 1) * sizeof *keys, 0);   /* GC-owned scratch */
    size_t i = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) { keys[i++] = lua_tostring(L, -2); lua_pop(L, 1); }  /* anchored by the table */
    qsort(keys, nk, sizeof *keys, cmp_str);
    lua_newtable(L);                          /* flat {k1, v1, k2, v2, ...}: anchors converted values */
    int pairs = lua_gettop(L);
    lua_Integer np = 0;
    for (i = 0; i < nk; i++) {
        int t = lua_getfield(L, idx, keys[i]);
        lua_Integer cnt = t == LUA_TTABLE ? (lua_Integer)lua_rawlen(L, -1) : 1;
        for (lua_Integer j = 1; j <= cnt; j++) {
            int vt = t == LUA_TTABLE ? lua_rawgeti(L, -1, j) : (lua_pushvalue(L, -1), t);
            if (vt == LUA_TBOOLEAN) lua_pushstring(L, lua_toboolean(L, -1) ? "true" : "false");
            else if (vt == LUA_TSTRING || vt == LUA_TNUMBER) { lua_pushvalue(L, -1); lua_tostring(L, -1); }
            else luaL_error(L, "%s: value of '%s' must be a string, number, boolean or array", what, keys[i]);
            lua_pushstring(L, keys[i]);
            lua_rawseti(L, pairs, ++np);
            lua_rawseti(L, pairs, ++np);
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
    }
    size_t total = 0, l;
    for (lua_Integer j = 1; j <= np; j++) {
        lua_rawgeti(L, pairs, j);
        const char *s = lua_tolstring(L, -1, &l);
        total += escape(NULL, s, l) + 1;     /* '=' or '&' */
        lua_pop(L, 1);
    }
    char *out = lua_newuserdatauv(L, total + 1, 0), *o = out;
    for (lua_Integer j = 1; j <= np; j++) {
        lua_rawgeti(L, pairs, j);
        const char *s = lua_tolstring(L, -1, &l);
        if (j > 1) *o++ = (j & 1) ? '&' : '=';
        o += escape(o, s, l);
        lua_pop(L, 1);
    }
    lua_pushlstring(L, out, (size_t)(o - out));
    lua_replace(L, pairs - 1);               /* over the keys scratch */
    lua_settop(L, pairs - 1);
}

static int l_urlencode(lua_State *L) {
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    char *out = lua_newuserdatauv(L, escape(NULL, s, n) + 1, 0);
    lua_pushlstring(L, out, escape(out, s, n));
    return 1;
}

static int l_form(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    push_form(L, 1, "http.form");
    return 1;
}

/* Owned curl strings for parse_url, freed by __gc if a Lua allocation raises. */
struct urlparts { CURLU *u; char *p[6]; };

static int urlparts_gc(lua_State *L) {
    struct urlparts *up = lua_touserdata(L, 1);
    for (int i = 0; i < 6; i++) { curl_free(up->p[i]); up->p[i] = NULL; }
    if (up->u) curl_url_cleanup(up->u);
    up->u = NULL;
    return 0;
}

static int l_parse_url(lua_State *L) {
    const char *url = luaL_checkstring(L, 1);
    struct urlparts *up = lua_newuserdatauv(L, sizeof *up, 0);
    memset(up, 0, sizeof *up);
    if (luaL_newmetatable(L, "cachost.http.urlparts")) {
        lua_pushcfunction(L, urlparts_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
    up->u = curl_url();
    if (!up->u) return luaL_error(L, "out of memory");
    CURLUcode uc = curl_url_set(up->u, CURLUPART_URL, url, 0);
    if (uc != CURLUE_OK) {
        lua_pushfstring(L, "bad_url: %s", curl_url_strerror(uc));
        return push_failure(L, lua_tostring(L, -1));
    }
    static const CURLUPart parts[] = {CURLUPART_SCHEME, CURLUPART_HOST, CURLUPART_PORT, CURLUPART_PATH,
                                      CURLUPART_QUERY, CURLUPART_FRAGMENT};
    static const char *const names[] = {"scheme", "host", "port", "path", "query", "fragment"};
    lua_createtable(L, 0, 6);
    for (int i = 0; i < 6; i++) {
        if (curl_url_get(up->u, parts[i], &up->p[i], parts[i] == CURLUPART_PORT ? CURLU_DEFAULT_PORT : 0)
            != CURLUE_OK || !up->p[i])
            continue;
        if (parts[i] == CURLUPART_PORT) lua_pushinteger(L, strtol(up->p[i], NULL, 10));
        else lua_pushstring(L, up->p[i]);
        lua_setfield(L, -2, names[i]);
    }
    return 1;
}

static int l_trace(lua_State *L) {
    const char *path = luaL_optstring(L, 1, NULL);
    if (http_set_trace(path) != 0) {
        lua_pushnil(L);
        lua_pushfstring(L, "error: cannot open %s", path);
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

static int is_loopback(const char *host) {
    if (!host) return 0;
    if (strcasecmp(host, "localhost") == 0) return 1;
    unsigned char a4[4], a6[16];
    if (inet_pton(AF_INET, host, a4) == 1) return a4[0] == 127;
    char buf[64];
    size_t n = strlen(host);
    if (n >= 2 && n < sizeof buf && host[0] == '[' && host[n - 1] == ']') {
        memcpy(buf, host + 1, n - 2);
        buf[n - 2] = 0;
        if (inet_pton(AF_INET6, buf, a6) == 1) return memcmp(a6, &in6addr_loopback, 16) == 0;
    }
    return 0;
}

static const char *opt_string(lua_State *L, int t, const char *k, const char *def) {
    int ty = lua_getfield(L, t, k);
    const char *s = ty == LUA_TSTRING ? lua_tostring(L, -1) : def;
    if (ty != LUA_TNIL && ty != LUA_TSTRING) luaL_error(L, "http.request: '%s' must be a string", k);
    lua_pop(L, 1);  /* the table keeps the string alive */
    return s;
}

static double opt_number(lua_State *L, int t, const char *k, double def) {
    int ty = lua_getfield(L, t, k);
    double v = def;
    if (ty != LUA_TNIL) {
        if (ty != LUA_TNUMBER) luaL_error(L, "http.request: '%s' must be a number", k);
        v = lua_tonumber(L, -1);
        if (!(v > 0)) luaL_error(L, "http.request: '%s' must be positive", k);
    }
    lua_pop(L, 1);
    return v;
}

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

/* A pooled (reset) or new easy handle for r, with what every transfer sets: r as its private data, the
 * error buffer, no signals, the response into r, the timeouts.  NULL when out of memory. */
static CURL *easy_for(struct req *r, double timeout, double ctimeout) {
    CURL *e = r->easy = S.npool ? S.pool[--S.npool] : curl_easy_init();
    if (!e) return NULL;
    curl_easy_setopt(e, CURLOPT_PRIVATE, r);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)(timeout * 1000));
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)(ctimeout * 1000));
    return e;
}

/* Hands r to the multi and suspends the task until the transfer ends (⏸); if it cannot start, frees r
 * and returns nil, err. */
static int req_start(lua_State *L, struct req *r) {
    if (curl_multi_add_handle(S.multi, r->easy) != CURLM_OK) {
        req_free(r);
        return push_failure(L, "error: cannot start request");
    }
    r->next = S.reqs;
    if (S.reqs) S.reqs->prev = r;
    S.reqs = r;
    return task_wait(L, 0, req_cancel, r, 0, NULL);
}

/* http.request{...} ⏸ — raises on misuse (before anything is allocated); yields. */
static int l_request(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    const char *method = opt_string(L, 1, "method", "GET");
    const char *url = opt_string(L, 1, "url", NULL);
    if (!url) return luaL_error(L, "http.request: 'url' is required");
    size_t mlen = strlen(method);
    if (mlen == 0 || mlen >= sizeof ((struct req *)0)->method) return luaL_error(L, "http.request: bad method");
    char meth[24];
    for (size_t i = 0; i <= mlen; i++) {
        if (method[i] && !isalpha((unsigned char)method[i])) return luaL_error(L, "http.request: bad method '%s'", method);
        meth[i] = (char)toupper((unsigned char)method[i]);
    }
    size_t blen = 0;
    const char *body = NULL;
    int bt = lua_getfield(L, 1, "body");
    if (bt == LUA_TSTRING) body = lua_tolstring(L, -1, &blen);
    else if (bt != LUA_TNIL) return luaL_error(L, "http.request: 'body' must be a string");
    lua_pop(L, 1);
    if (body && (!strcmp(meth, "GET") || !strcmp(meth, "HEAD")))
        return luaL_error(L, "http.request: a %s request cannot have a body", meth);
    double timeout = opt_number(L, 1, "timeout", DEFAULT_TIMEOUT);
    double ctimeout = opt_number(L, 1, "connect_timeout", timeout < DEFAULT_CONNECT ? timeout : DEFAULT_CONNECT);
    double maxsz = opt_number(L, 1, "max_size", DEFAULT_MAX_SIZE);
    const char *proxy = opt_string(L, 1, "proxy", NULL);
    const char *ca_file = opt_string(L, 1, "ca_file", NULL);
    const char *instance = opt_string(L, 1, "instance", NULL);
    const char *app = opt_string(L, 1, "app", NULL);
    int it = lua_getfield(L, 1, "insecure");
    if (it != LUA_TNIL && it != LUA_TBOOLEAN) return luaL_error(L, "http.request: 'insecure' must be a boolean");
    int insecure = lua_toboolean(L, -1);
    lua_pop(L, 1);

    /* stack 2: query string or nil */
    int qt = lua_getfield(L, 1, "query");
    if (qt == LUA_TTABLE) { push_form(L, 2, "http.request query"); lua_remove(L, 2); }
    else if (qt != LUA_TNIL) return luaL_error(L, "http.request: 'query' must be a table");
    const char *query = lua_tostring(L, 2);
    if (query && !*query) query = NULL;

    /* stack 3: array of "Name: value" lines, checked here so nothing raises after allocation */
    int ht = lua_getfield(L, 1, "headers");
    int has_ua = 0, has_expect = 0;
    lua_Integer nh = 0;
    lua_newtable(L);
    if (ht == LUA_TTABLE) {
        lua_pushnil(L);
        while (lua_next(L, 3)) {
            if (lua_type(L, -2) != LUA_TSTRING || (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER))
                return luaL_error(L, "http.request: headers must map names to strings");
            size_t nl, vl;
            const char *n = lua_tolstring(L, -2, &nl);
            const char *v = lua_tolstring(L, -1, &vl);   /* converting a value in place is fine for lua_next */
            if (nl == 0 || strcspn(n, ":\r\n \t") != nl)
                return luaL_error(L, "http.request: bad header name '%s'", n);
            if (strcspn(v, "\r\n") != vl) return luaL_error(L, "http.request: header '%s' contains a line break", n);
            if (!strcasecmp(n, "user-agent")) has_ua = 1;
            if (!strcasecmp(n, "expect")) has_expect = 1;
            if (vl) lua_pushfstring(L, "%s: %s", n, v);
            else lua_pushfstring(L, "%s;", n);           /* "Name;" is how curl sends an empty header */
            lua_rawseti(L, 4, ++nh);
            lua_pop(L, 1);
        }
    } else if (ht != LUA_TNIL) {
        return luaL_error(L, "http.request: 'headers' must be a table");
    }
    lua_replace(L, 3);
    struct task *task = task_current(L, "http.request");

    /* ---- from here on: owned C memory; failures free and return nil, err (or raise last) ---- */
    char err[CURL_ERROR_SIZE + 64] = "";
    struct req *r = calloc(1, sizeof *r);
    CURLU *u = curl_url();
    char *full = NULL, *tu = NULL, *host = NULL;
    CURLUcode uc;
    if (!r || !u || ensure_multi() != 0) { snprintf(err, sizeof err, "error: out of memory"); goto fail; }
    if ((uc = curl_url_set(u, CURLUPART_URL, url, 0)) != CURLUE_OK ||
        (query && (uc = curl_url_set(u, CURLUPART_QUERY, query, CURLU_APPENDQUERY)) != CURLUE_OK) ||
        (uc = curl_url_get(u, CURLUPART_URL, &full, 0)) != CURLUE_OK ||
        (uc = curl_url_get(u, CURLUPART_HOST, &host, 0)) != CURLUE_OK) {
        snprintf(err, sizeof err, "bad_url: %s", curl_url_strerror(uc));
        goto fail;
    }
    char *scheme = NULL;
    int web = curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
              (!strcmp(scheme, "http") || !strcmp(scheme, "https"));
    curl_free(scheme);
    if (!web) { snprintf(err, sizeof err, "bad_url: only http and https URLs"); goto fail; }
    if (insecure && !is_loopback(host)) {
        curl_free(full); curl_free(host); curl_url_cleanup(u); free(r);
        return luaL_error(L, "http.request: insecure=true is allowed only for loopback hosts");
    }
    /* what the trace may show: no user:password, no fragment, secret query values masked */
    curl_url_set(u, CURLUPART_USER, NULL, 0);
    curl_url_set(u, CURLUPART_PASSWORD, NULL, 0);
    curl_url_set(u, CURLUPART_FRAGMENT, NULL, 0);
    if (curl_url_get(u, CURLUPART_URL, &tu, 0) == CURLUE_OK) r->trace_url = mask_query(tu);

    memcpy(r->method, meth, mlen + 1);
    r->task = task;
    r->max_size = (size_t)maxsz;
    r->t0 = mono_now();
    r->instance = dup_or_null(instance);
    r->app = dup_or_null(app);
    for (lua_Integer j = 1; j <= nh; j++) {
        lua_rawgeti(L, 3, j);               /* anchored by the table at 3 */
        struct curl_slist *nl = curl_slist_append(r->hdrs, lua_tostring(L, -1));
        lua_pop(L, 1);
        if (!nl) { snprintf(err, sizeof err, "error: out of memory"); goto fail; }
        r->hdrs = nl;
    }
    if (!has_expect) {   /* no 100-continue round trip for larger bodies */
        struct curl_slist *nl = curl_slist_append(r->hdrs, "Expect:");
        if (nl) r->hdrs = nl;
    }
    CURL *e = easy_for(r, timeout, ctimeout);
    if (!e) { snprintf(err, sizeof err, "error: out of memory"); goto fail; }
    curl_easy_setopt(e, CURLOPT_URL, full);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->hdrs);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(e, CURLOPT_MAXREDIRS, (long)MAX_REDIRS);
    /* with verification off, a redirect must not carry it to another TLS host: plain http only */
    curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, insecure ? "http" : "http,https");
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, insecure ? 0L : 1L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, insecure ? 0L : 2L);
    if (ca_file) curl_easy_setopt(e, CURLOPT_CAINFO, ca_file);
    if (proxy) curl_easy_setopt(e, CURLOPT_PROXY, proxy);
    curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)r->max_size);
    if (!has_ua) curl_easy_setopt(e, CURLOPT_USERAGENT, "cachost/" CACHOST_VERSION);
    if (!strcmp(meth, "HEAD")) curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    else if (!strcmp(meth, "POST") || body) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)blen);
        curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, body ? body : "");
        if (strcmp(meth, "POST")) curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, meth);
    } else if (strcmp(meth, "GET")) curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, meth);
    curl_free(full); curl_free(host); curl_free(tu); curl_url_cleanup(u);
    return req_start(L, r);

fail:
    curl_free(full); curl_free(host); curl_free(tu);
    if (u) curl_url_cleanup(u);
    if (r) req_free(r);
    return push_failure(L, err);
}

/* ---- mail: SMTP through the same multi ---- */

static size_t read_cb(char *buf, size_t size, size_t n, void *ud) {
    struct req *r = ud;
    size_t k = size * n, left = r->upload_len - r->upload_off;
    if (k > left) k = left;
    memcpy(buf, r->upload + r->upload_off, k);
    r->upload_off += k;
    return k;
}

/* http.mail{url=, from=, to={addr...}, body=, user=, password=, timeout=} ⏸ -> {status = 250, ...} | nil, err.
 * url: smtps://host[:465] (TLS from the start), or smtp://host[:587] where STARTTLS is then required,
 * except towards a loopback host (a local MTA).  body: the whole message, headers and text, CRLF lines.
 * Raises on misuse; yields. */
static int l_mail(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    const char *url = opt_string(L, 1, "url", NULL);
    const char *from = opt_string(L, 1, "from", NULL);
    const char *user = opt_string(L, 1, "user", NULL);
    const char *password = opt_string(L, 1, "password", NULL);
    if (!url || !from) return luaL_error(L, "http.mail: 'url' and 'from' are required");
    if (strcspn(from, "\r\n") != strlen(from)) return luaL_error(L, "http.mail: 'from' contains a line break");
    size_t blen = 0;
    if (lua_getfield(L, 1, "body") != LUA_TSTRING) return luaL_error(L, "http.mail: 'body' must be a string");
    const char *body = lua_tolstring(L, -1, &blen);
    lua_pop(L, 1);                                   /* the table keeps it alive */
    if (lua_getfield(L, 1, "to") != LUA_TTABLE || lua_rawlen(L, -1) == 0)
        return luaL_error(L, "http.mail: 'to' must be a non-empty list of addresses");
    lua_Integer nto = (lua_Integer)lua_rawlen(L, 2);
    for (lua_Integer j = 1; j <= nto; j++) {
        if (lua_rawgeti(L, 2, j) != LUA_TSTRING) return luaL_error(L, "http.mail: 'to' must list strings");
        const char *a = lua_tostring(L, -1);
        if (!*a || strcspn(a, "\r\n") != strlen(a)) return luaL_error(L, "http.mail: bad recipient");
        lua_pop(L, 1);
    }
    double timeout = opt_number(L, 1, "timeout", DEFAULT_TIMEOUT);
    struct task *task = task_current(L, "http.mail");

    char err[CURL_ERROR_SIZE + 64] = "";
    struct req *r = calloc(1, sizeof *r);
    CURLU *u = curl_url();
    char *host = NULL, *scheme = NULL, *tu = NULL;
    if (!r || !u || ensure_multi() != 0 || !(r->upload = malloc(blen ? blen : 1))) {
        snprintf(err, sizeof err, "error: out of memory");
        goto fail;
    }
    memcpy(r->upload, body, blen);
    r->upload_len = blen;
    CURLUcode uc;
    if ((uc = curl_url_set(u, CURLUPART_URL, url, 0)) != CURLUE_OK ||
        (uc = curl_url_get(u, CURLUPART_HOST, &host, 0)) != CURLUE_OK ||
        (uc = curl_url_get(u, CURLUPART_SCHEME, &scheme, 0)) != CURLUE_OK) {
        snprintf(err, sizeof err, "bad_url: %s", curl_url_strerror(uc));
        goto fail;
    }
    if (strcmp(scheme, "smtp") && strcmp(scheme, "smtps")) { snprintf(err, sizeof err, "bad_url: only smtp and smtps URLs"); goto fail; }
    curl_url_set(u, CURLUPART_USER, NULL, 0);
    curl_url_set(u, CURLUPART_PASSWORD, NULL, 0);
    if (curl_url_get(u, CURLUPART_URL, &tu, 0) == CURLUE_OK) r->trace_url = strdup(tu);
    for (lua_Integer j = 1; j <= nto; j++) {
        lua_rawgeti(L, 2, j);
        struct curl_slist *nl = curl_slist_append(r->rcpt, lua_tostring(L, -1));
        lua_pop(L, 1);
        if (!nl) { snprintf(err, sizeof err, "error: out of memory"); goto fail; }
        r->rcpt = nl;
    }
    memcpy(r->method, "MAIL", 5);
    r->task = task;
    r->max_size = 1024 * 1024;
    r->t0 = mono_now();
    CURL *e = easy_for(r, timeout, timeout < DEFAULT_CONNECT ? timeout : DEFAULT_CONNECT);
    if (!e) { snprintf(err, sizeof err, "error: out of memory"); goto fail; }
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
    curl_easy_setopt(e, CURLOPT_MAIL_FROM, from);
    curl_easy_setopt(e, CURLOPT_MAIL_RCPT, r->rcpt);
    curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(e, CURLOPT_READFUNCTION, read_cb);
    curl_easy_setopt(e, CURLOPT_READDATA, r);
    curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE, (curl_off_t)blen);
    /* never credentials or alert text in clear past this machine */
    curl_easy_setopt(e, CURLOPT_USE_SSL, (long)(is_loopback(host) ? CURLUSESSL_TRY : CURLUSESSL_ALL));
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
    if (user) curl_easy_setopt(e, CURLOPT_USERNAME, user);
    if (password) curl_easy_setopt(e, CURLOPT_PASSWORD, password);
    curl_free(host); curl_free(scheme); curl_free(tu); curl_url_cleanup(u);
    return req_start(L, r);

fail:
    curl_free(host); curl_free(scheme); curl_free(tu);
    if (u) curl_url_cleanup(u);
    if (r) req_free(r);
    return push_failure(L, err);
}

int luaopen_http(lua_State *L) {
    static const luaL_Reg fns[] = {
        {"request", l_request}, {"mail", l_mail}, {"urlencode", l_urlencode}, {"form", l_form},
        {"parse_url", l_parse_url}, {"trace", l_trace}, {NULL, NULL},
    };
    const char *why = curl_dl_load();
    if (why) return luaL_error(L, "http: %s", why);
    if (!S.global_init && curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK) S.global_init = 1;
    const char *tp = getenv("CACHOST_TRACE_HTTP");
    if (tp && *tp && !S.trace) http_set_trace(tp);
    luaL_newlib(L, fns);
    return 1;
}
