/* server.c — Lua module `server`: an HTTP server on libevent's evhttp, bound to the one loop (H.base).
 *
 * evhttp parses requests and enforces the size limits; this file routes them to Lua handlers, each run as
 * its own task, and turns the handler's `status, body, headers` into the reply.
 *
 * Who owns a request (libevent 2.1): the evhttp_request belongs to its connection until we reply; after
 * evhttp_send_reply evhttp frees it once written.  While a handler runs evhttp does not read from the
 * connection, so it never notices the client leaving on its own; we watch the socket ourselves and free the
 * connection when the peer closes.  The connection (and the request with it) can also be freed by
 * srv:close(), by server.DROP, or by evhttp itself; every such path goes through the request's record
 * (struct rec), which then forgets the request, so a late reply is dropped instead of touching freed memory.
 *
 * Holding the server (slowloris): evhttp's own timeout is an inactivity timeout, so a client sending one byte
 * every few seconds keeps its connection forever, and evhttp accepts without limit until accept() fails with
 * EMFILE, which libevent's listener then retries (and logs) in a busy loop.  So every connection gets a record
 * (struct conn): evhttp_set_bevcb tells us of each new connection (we make its bufferevent) and a closecb of
 * its end.  A request must arrive whole within request_timeout of its start (the accept, or the end of the
 * previous reply) or its connection is dropped; libevent 2.1 has no hook between a request's headers and its
 * body, so one deadline covers both.  Past max_connections the connection whose request has been arriving for
 * the longest is dropped to make room; when every connection is busy with a handler we stop accepting
 * (evconnlistener_disable) until one is free, so the backlog waits in the kernel.  accept() errors (EMFILE)
 * pause accepting for a moment instead of spinning, and what we and libevent log about them is rate limited.
 */
#include "host.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#define SERVER_MT "cachost.server"
#define REC_MT "cachost.server.request"
#define DROP_KEY "cachost.server.DROP"
#define SPAWNING_KEY "cachost.server.spawning"

#define LOG_EVERY 10                  /* seconds: at most one line per kind of connection trouble */
#define ACCEPT_RETRY_MS 250           /* pause after accept() failed (EMFILE, ENFILE, ENOBUFS) */

struct rec;
struct conn;

/* One line per LOG_EVERY seconds; what is held back in between is counted and reported with the next line. */
struct ratelimit { double last; long suppressed; };

enum { PAUSE_FULL = 1, PAUSE_ERROR = 2 };  /* why accepting is paused */

struct srv {
    struct evhttp *http;              /* NULL once closed */
    struct evconnlistener *lev;       /* evhttp's listener; NULL once closed */
    struct event *resume;             /* re-enables accepting after an accept() error */
    int paused;                       /* PAUSE_* bits; the listener is enabled when 0 */
    int self_ref;                     /* registry anchor while open: a listening server is never collected */
    int port;
    char host[64];
    struct rec *pending;              /* requests whose handler has not answered yet */
    struct conn *conns;               /* open connections */
    lua_Integer nconns, max_conns;
    struct timeval deadline;          /* request_timeout */
    struct ratelimit rl_accept, rl_slow, rl_full;
    struct srv *next, **pprev;        /* all open servers, for server_shutdown() */
    SSL_CTX *tls;                     /* {tls = {cert =, key =}}: HTTPS; NULL: plain HTTP */
    lua_Integer inflight, served, gone, failed, dropped, timed_out, evicted, accept_errors;
};

/* A connection, from the accept (evhttp_set_bevcb) to its close callback. */
struct conn {
    struct srv *srv;
    struct bufferevent *bev;          /* until setup: the bufferevent we made, held by a reference */
    struct evhttp_connection *evcon;  /* set up the loop turn after the accept (evhttp makes it after bevcb) */
    struct event *timer;              /* the setup, then the request deadline */
    struct rec *rec;                  /* the request whose handler runs */
    int busy;                         /* a request is with its handler, or its reply is being written */
    double since;                     /* when the request now arriving started (monotonic) */
    struct conn *next, **pprev;
};

struct rec {
    struct evhttp_request *req;       /* NULL once answered or once its connection is gone */
    struct conn *conn;                /* whose close notice reaches us while pending (NULL if untracked) */
    struct evhttp_connection *evcon;
    struct srv *srv;                  /* NULL once detached */
    struct event *watch;              /* notices the peer closing while the handler runs */
    struct rec *next, **pprev;
    char what[80];                    /* "GET /path" for logs */
};

static struct srv *servers;

/* log.c reads `k="v"` with backslash escapes: quote what we did not write ourselves (paths, tracebacks). */
static char *quoted(const char *s)
{
    size_t n = strlen(s);
    char *q = malloc(2 * n + 1), *o = q;
    if (!q) return NULL;
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') *o++ = '\\';
        *o++ = *s;
    }
    *o = 0;
    return q;
}

static void log_req(int level, const char *msg, const char *what, const char *err)
{
    char *w = quoted(what), *e = err ? quoted(err) : NULL;
    if (e) log_msg(level, msg, "request=\"%s\" error=\"%s\"", w ? w : "?", e);
    else log_msg(level, msg, "request=\"%s\"", w ? w : "?");
    free(w);
    free(e);
}

static double mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* May a line be written now?  *held gets the count of lines held back since the last one written. */
static int rl_pass(struct ratelimit *rl, long *held)
{
    double now = mono_now();
    if (rl->last > 0 && now - rl->last < LOG_EVERY) { rl->suppressed++; return 0; }
    rl->last = now;
    *held = rl->suppressed;
    rl->suppressed = 0;
    return 1;
}

/* libevent's own warnings (the listener's "Error from accept() call" ...) go to our log, rate limited:
 * a condition that repeats on every loop turn must not fill the disk.  Called inside libevent: only logs. */
static struct ratelimit rl_libevent;
static void on_libevent_log(int severity, const char *msg)
{
    long held;
    if (severity == EVENT_LOG_DEBUG || !rl_pass(&rl_libevent, &held)) return;
    char *q = quoted(msg ? msg : "");
    log_msg(severity == EVENT_LOG_ERR ? LOG_ERROR : severity == EVENT_LOG_WARN ? LOG_WARN : LOG_INFO, "libevent",
            "message=\"%s\" suppressed=%ld", q ? q : "?", held);
    free(q);
}

/* ---- connections ---- */

static void set_paused(struct srv *s, int bit, int on)
{
    int was = s->paused;
    s->paused = on ? (s->paused | bit) : (s->paused & ~bit);
    if (!s->lev || !was == !s->paused) return;
    if (s->paused) evconnlistener_disable(s->lev);
    else evconnlistener_enable(s->lev);
}

/* The connection that has been sending its request for the longest (not one whose handler runs). */
static struct conn *oldest_waiting(struct srv *s)
{
    struct conn *best = NULL;
    for (struct conn *c = s->conns; c; c = c->next)
        if (c->evcon && !c->busy && (!best || c->since < best->since)) best = c;
    return best;
}

/* A connection could be taken (closed, or no longer busy): accept again if the cap paused us. */
static void room_made(struct srv *s)
{
    if ((s->paused & PAUSE_FULL) && (s->nconns < s->max_conns || oldest_waiting(s))) set_paused(s, PAUSE_FULL, 0);
}

static void conn_free(struct conn *c)
{
    struct srv *s = c->srv;
    *c->pprev = c->next;
    if (c->next) c->next->pprev = c->pprev;
    event_free(c->timer);
    if (c->bev) bufferevent_decref(c->bev);
    s->nconns--;
    free(c);
    room_made(s);
}

static void arm_deadline(struct conn *c)
{
    c->busy = 0;
    c->since = mono_now();
    evtimer_add(c->timer, &c->srv->deadline);
}

static void rec_gone(struct rec *r);

/* evhttp is freeing the connection (any path: EOF, error, timeout, DROP, eviction, evhttp_free). */
static void on_conn_close(struct evhttp_connection *evcon, void *arg)
{
    struct conn *c = arg;
    (void)evcon;
    if (c->rec) rec_gone(c->rec);
    conn_free(c);
}

static void drop_slow(struct conn *c, struct ratelimit *rl, const char *msg)
{
    long held;
    char *addr = NULL;
    ev_uint16_t port = 0;
    evhttp_connection_get_peer(c->evcon, &addr, &port);
    if (rl_pass(rl, &held))
        log_msg(LOG_INFO, msg, "remote=\"%s:%d\" suppressed=%ld", addr ? addr : "?", (int)port, held);
    evhttp_connection_free(c->evcon);   /* on_conn_close frees c */
}

/* Find the connection evhttp made around our bufferevent (its callbacks' argument), and hear of its end.
 * 0 if evhttp already freed it (bufferevent_free clears the callbacks; our reference kept the memory). */
static int conn_setup(struct conn *c)
{
    void *evcon = NULL;
    bufferevent_getcb(c->bev, NULL, NULL, NULL, &evcon);
    bufferevent_decref(c->bev);
    c->bev = NULL;
    if (!evcon) return 0;
    c->evcon = evcon;
    evhttp_connection_set_closecb(c->evcon, on_conn_close, c);
    return 1;
}

/* First the setup (the loop turn after the accept: evhttp has made the connection around our bufferevent),
 * then the request deadline. */
static void on_conn_timer(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    (void)fd; (void)what;
    if (!c->evcon) {
        if (!conn_setup(c)) conn_free(c);
        else evtimer_add(c->timer, &c->srv->deadline);   /* since was set at the accept */
        return;
    }
    if (c->busy) return;
    c->srv->timed_out++;
    drop_slow(c, &c->srv->rl_slow, "server: request not received in time, connection dropped");
}

/* evhttp_set_bevcb: a connection was just accepted.  Returning NULL lets evhttp make its own bufferevent (the
 * connection then goes untracked: only when out of memory). */
static struct bufferevent *on_accept(struct event_base *base, void *arg)
{
    struct srv *s = arg;
    struct bufferevent *bev;
    if (s->tls) {                     /* as libevent's https example: the SSL and the fd go with the bufferevent */
        SSL *ssl = SSL_new(s->tls);
        bev = ssl ? bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE) : NULL;
        if (!bev && ssl) SSL_free(ssl);
        if (!bev) return NULL;
    } else {
        bev = bufferevent_socket_new(base, -1, 0);                    /* as evhttp would: it closes the fd */
    }
    struct conn *c = bev ? calloc(1, sizeof *c) : NULL;
    if (c) c->timer = evtimer_new(base, on_conn_timer, c);
    if (!c || !c->timer) {
        free(c);
        return bev;
    }
    bufferevent_incref(bev);
    c->bev = bev;
    c->srv = s;
    c->since = mono_now();
    c->next = s->conns;
    if (c->next) c->next->pprev = &c->next;
    c->pprev = &s->conns;
    s->conns = c;
    s->nconns++;
    event_active(c->timer, EV_TIMEOUT, 1);            /* setup once evhttp has wrapped bev */
    while (s->nconns > s->max_conns) {                /* make room: the slowest request goes */
        struct conn *v = oldest_waiting(s);
        if (!v) break;
        s->evicted++;
        drop_slow(v, &s->rl_full, "server: too many connections, the slowest request dropped");
    }
    if (s->nconns >= s->max_conns && !oldest_waiting(s)) set_paused(s, PAUSE_FULL, 1);
    return bev;
}

/* accept() failed with something other than a retriable error (EMFILE, ENFILE, ENOBUFS, ENOMEM): the listening
 * socket stays readable, so drop the slowest request to free a descriptor, or when there is none pause
 * accepting for a moment, instead of retrying on every loop turn. */
static void on_accept_error(struct evconnlistener *lev, void *arg)
{
    int e = EVUTIL_SOCKET_ERROR();
    struct srv *s = servers;
    long held;
    (void)arg;                        /* the listener's argument is evhttp's */
    while (s && s->lev != lev) s = s->next;
    if (!s) return;
    s->accept_errors++;
    if (rl_pass(&s->rl_accept, &held))
        log_msg(LOG_WARN, "server: accept failed", "error=\"%s\" connections=%lld suppressed=%ld",
                evutil_socket_error_to_string(e), (long long)s->nconns, held);
    struct conn *v = oldest_waiting(s);
    if (v) {                          /* out of descriptors: the slowest request gives its one up */
        s->evicted++;
        drop_slow(v, &s->rl_full, "server: too many connections, the slowest request dropped");
        return;
    }
    set_paused(s, PAUSE_ERROR, 1);
    struct timeval tv = {0, ACCEPT_RETRY_MS * 1000};
    evtimer_add(s->resume, &tv);
}

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    set_paused(arg, PAUSE_ERROR, 0);
}

/* evhttp_request_set_on_complete_cb: the reply is written; the connection waits for its next request. */
static void on_reply_sent(struct evhttp_request *req, void *arg)
{
    struct conn *c = arg;
    (void)req;
    arm_deadline(c);
    room_made(c->srv);
}

/* The record of evcon (set up now if its setup has not run yet); NULL if untracked. */
static struct conn *conn_of(struct srv *s, struct evhttp_connection *evcon)
{
    struct bufferevent *bev = evhttp_connection_get_bufferevent(evcon);
    for (struct conn *c = s->conns; c; c = c->next) {
        if (c->evcon == evcon) return c;
        if (!c->evcon && c->bev == bev) {
            event_del(c->timer);
            if (conn_setup(c)) return c;
            conn_free(c);
            return NULL;
        }
    }
    return NULL;
}

/* ---- request records ---- */

/* Forget every link between the record and libevent / its server; the request itself is left alone. */
static void rec_detach(struct rec *r)
{
    if (r->watch) { event_free(r->watch); r->watch = NULL; }
    if (r->conn) { r->conn->rec = NULL; r->conn = NULL; }
    r->evcon = NULL;
    if (r->pprev) {
        *r->pprev = r->next;
        if (r->next) r->next->pprev = r->pprev;
        r->pprev = NULL;
        r->next = NULL;
    }
    if (r->srv) { r->srv->inflight--; r->srv = NULL; }
}

/* The request's connection is going away (evhttp_connection_free): it frees the request right after. */
static void rec_gone(struct rec *r)
{
    if (r->srv) r->srv->gone++;
    r->req = NULL;                    /* freed by evhttp in a moment */
    rec_detach(r);
}

/* The socket became readable while the handler runs: either the client left, or it pipelined more. */
static void on_peer(evutil_socket_t fd, short what, void *arg)
{
    struct rec *r = arg;
    char c;
    ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n > 0) return;                /* more data: evhttp reads it after our reply */
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        event_add(r->watch, NULL);
        return;
    }
    struct evhttp_connection *evcon = r->evcon;
    if (!evcon || !r->req || evhttp_request_get_connection(r->req) != evcon) return;
    log_req(LOG_DEBUG, "server: client gone before the reply", r->what, NULL);
    if (r->srv) r->srv->gone++;
    rec_detach(r);                    /* frees r->watch: allowed, it is not pending inside its callback */
    r->req = NULL;
    evhttp_connection_free(evcon);    /* frees the request too */
}

/* Detach the record and take its request for answering; NULL if there is nobody left to answer. */
static struct evhttp_request *rec_take(struct rec *r)
{
    struct evhttp_request *req = r->req;
    rec_detach(r);
    r->req = NULL;
    if (req && !evhttp_request_get_connection(req)) {   /* evhttp let go of the connection: only free */
        evhttp_request_free(req);
        return NULL;
    }
    return req;
}

static int status_has_body(int status) { return status >= 200 && status != 204 && status != 304; }

/* Answer with a small JSON body (404, 405, 500, ...).  Never raises. */
static void send_json(struct evhttp_request *req, int status, const char *json, const char *allow)
{
    struct evkeyvalq *oh = evhttp_request_get_output_headers(req);
    char len[24];
    snprintf(len, sizeof len, "%zu", strlen(json));
    evhttp_add_header(oh, "Content-Type", "application/json");
    evhttp_add_header(oh, "Content-Length", len);
    if (allow) evhttp_add_header(oh, "Allow", allow);
    evbuffer_add(evhttp_request_get_output_buffer(req), json, strlen(json));
    evhttp_send_reply(req, status, NULL, NULL);
}

static void rec_fail(struct rec *r, int status)
{
    struct srv *s = r->srv;
    struct evhttp_request *req = rec_take(r);
    if (s) s->failed++;
    if (req) send_json(req, status, status == 503 ? "{\"error\":\"unavailable\"}" : "{\"error\":\"internal error\"}",
                       NULL);
}

/* A connection to drop without an answer: RST rather than FIN, like a crashed peer. */
static void drop_connection(struct evhttp_connection *evcon)
{
    struct bufferevent *bev = evhttp_connection_get_bufferevent(evcon);
    evutil_socket_t fd = bev ? bufferevent_getfd(bev) : -1;
    if (fd >= 0) {
        /* evhttp_connection_free shuts the socket down (FIN) before closing it, which reads as an empty
         * reply.  Close the real socket first with linger 0 (RST) by putting a fresh unconnected socket in
         * its place on the same fd number, which evhttp then shuts down and closes harmlessly. */
        struct linger lg = {1, 0};
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        int spare = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (spare >= 0) {
            dup2(spare, fd);
            close(spare);
        }
    }
    evhttp_connection_free(evcon);
}

/* A header value the handler gave: a string or a number (formatted into buf); NULL otherwise.
 * Never raises (no lua_tolstring on numbers, which may allocate). */
static const char *header_value(lua_State *L, int i, char *buf, size_t n)
{
    if (lua_type(L, i) == LUA_TSTRING) return lua_tostring(L, i);
    if (lua_isinteger(L, i)) { snprintf(buf, n, "%lld", (long long)lua_tointeger(L, i)); return buf; }
    if (lua_type(L, i) == LUA_TNUMBER) { snprintf(buf, n, "%.14g", lua_tonumber(L, i)); return buf; }
    return NULL;
}

/* Add the handler's headers (table at index h, or none); 0 ok, -1 invalid (name/value type, CR/LF). */
static int add_headers(lua_State *L, int h, struct evkeyvalq *oh)
{
    char buf[64];
    if (lua_isnoneornil(L, h)) return 0;
    if (!lua_istable(L, h)) return -1;
    lua_pushnil(L);
    while (lua_next(L, h)) {
        if (lua_type(L, -2) != LUA_TSTRING) { lua_pop(L, 2); return -1; }
        const char *name = lua_tostring(L, -2);
        if (!strcasecmp(name, "Content-Length")) { lua_pop(L, 1); continue; }   /* ours is right */
        if (lua_istable(L, -1)) {                  /* several values: Set-Cookie = {a, b} */
            lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
            for (lua_Integer k = 1; k <= n; k++) {
                lua_rawgeti(L, -1, k);
                const char *v = header_value(L, -1, buf, sizeof buf);
                int bad = !v || evhttp_add_header(oh, name, v) != 0;
                lua_pop(L, 1);
                if (bad) { lua_pop(L, 2); return -1; }
            }
        } else {
            const char *v = header_value(L, -1, buf, sizeof buf);
            if (!v || evhttp_add_header(oh, name, v) != 0) { lua_pop(L, 2); return -1; }
        }
        lua_pop(L, 1);
    }
    return 0;
}

/* Send what the handler returned: status at index i, body at i+1, headers at i+2.  Never raises. */
static void rec_reply(lua_State *L, struct rec *r, int i)
{
    struct srv *s = r->srv;
    if (!r->req) {
        log_req(LOG_DEBUG, "server: reply dropped, the client or the server is gone", r->what, NULL);
        rec_detach(r);
        return;
    }
    lua_getfield(L, LUA_REGISTRYINDEX, DROP_KEY);
    int drop = lua_rawequal(L, i, -1);
    lua_pop(L, 1);
    if (drop) {
        struct evhttp_connection *evcon = evhttp_request_get_connection(r->req);
        struct evhttp_request *req = rec_take(r);
        if (s) s->dropped++;
        if (req && evcon) drop_connection(evcon);   /* frees req with the connection */
        return;
    }
    lua_Integer status = lua_isinteger(L, i) ? lua_tointeger(L, i) : 0;
    const char *problem = NULL;
    size_t len = 0;
    const char *body = NULL;
    if (status < 100 || status > 599) problem = lua_isnoneornil(L, i) ? "handler returned no status" : "bad status";
    else if (lua_type(L, i + 1) == LUA_TSTRING) body = lua_tolstring(L, i + 1, &len);
    else if (!lua_isnoneornil(L, i + 1)) problem = "body must be a string";
    if (!problem && lua_istable(L, i + 2) == 0 && !lua_isnoneornil(L, i + 2)) problem = "headers must be a table";
    if (problem) {
        log_req(LOG_ERROR, "server: handler failed", r->what, problem);
        rec_fail(r, 500);
        return;
    }
    struct evhttp_request *req = rec_take(r);
    if (!req) return;
    struct evkeyvalq *oh = evhttp_request_get_output_headers(req);
    if (add_headers(L, i + 2, oh) != 0) {
        log_req(LOG_ERROR, "server: handler failed", r->what, "invalid response header (type, or CR/LF)");
        evhttp_clear_headers(oh);
        if (s) s->failed++;
        send_json(req, 500, "{\"error\":\"internal error\"}", NULL);
        return;
    }
    if (status_has_body((int)status)) {
        char clen[24];
        snprintf(clen, sizeof clen, "%zu", len);
        evhttp_add_header(oh, "Content-Length", clen);
        if (!evhttp_find_header(oh, "Content-Type"))
            evhttp_add_header(oh, "Content-Type", len && (body[0] == '{' || body[0] == '[') ?
                              "application/json" : "text/plain; charset=utf-8");
        if (len) evbuffer_add(evhttp_request_get_output_buffer(req), body, len);
    }
    if (s) s->served++;
    evhttp_send_reply(req, (int)status, NULL, NULL);
}

/* A record collected with its request unanswered (its task died before running): answer 503. */
static int rec_gc(lua_State *L)
{
    struct rec *r = luaL_checkudata(L, 1, REC_MT);
    if (r->req) rec_fail(r, 503);
    else rec_detach(r);
    return 0;
}

/* ---- the handler task: pcall the handler, then reply, from C so nothing runs between the two ---- */

static int msgh(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    if (!msg) msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    luaL_traceback(L, L, msg, 1);
    return 1;
}

/* stack: rec, msgh, then the handler's three results or the error */
static int run_k(lua_State *L, int status, lua_KContext ctx)
{
    struct rec *r = luaL_checkudata(L, 1, REC_MT);
    if (status != LUA_OK && status != LUA_YIELD) {
        log_req(LOG_ERROR, "server: handler failed", r->what, lua_tostring(L, -1));
        rec_fail(r, 500);
        return 0;
    }
    rec_reply(L, r, 3);
    return 0;
}

/* run(rec, handler, req): the function each handler task starts with */
static int run_handler(lua_State *L)
{
    lua_settop(L, 3);
    lua_pushcfunction(L, msgh);
    lua_insert(L, 2);                                     /* rec, msgh, handler, req */
    return run_k(L, lua_pcallk(L, 1, 3, 2, 0, run_k), 0);
}

/* ---- dispatching a request (inside lua_pcall: C memory lives in struct dispatch, freed by the caller) ---- */

struct dispatch {
    struct srv *srv;
    struct evhttp_request *req;
    struct rec *rec;                  /* set once the record owns req */
    struct conn *conn;                /* req's connection */
    int status;                       /* answered directly: 404/405 */
    char allow[80];
    struct evkeyvalq query;
    char *tmp, *tmp2;
};

static void push_decoded(lua_State *L, struct dispatch *d, const char *s, size_t len, int plus)
{
    lua_pushlstring(L, s, len);                           /* NUL-terminated copy */
    size_t n;
    d->tmp = evhttp_uridecode(lua_tostring(L, -1), plus, &n);
    if (!d->tmp) luaL_error(L, "out of memory");
    lua_pop(L, 1);
    lua_pushlstring(L, d->tmp, n);
    free(d->tmp);
    d->tmp = NULL;
}

/* Does path match the route's segments (table at index segs)?  On success pushes the params table. */
static int match(lua_State *L, struct dispatch *d, int segs, const char *path)
{
    int n = (int)lua_rawlen(L, segs);
    const char *p = path[0] == '/' ? path + 1 : path;    /* NULL once the path is used up */
    int params = 0;
    for (int i = 1; i <= n; i++) {
        size_t sl;
        lua_rawgeti(L, segs, i);
        const char *seg = lua_tolstring(L, -1, &sl);
        lua_pop(L, 1);                                    /* still anchored in segs */
        if (i == n && sl == 1 && seg[0] == '*') {
            if (!params) { lua_newtable(L); params = lua_gettop(L); }
            push_decoded(L, d, p ? p : "", p ? strlen(p) : 0, 0);
            lua_setfield(L, params, "rest");
            p = NULL;
            break;
        }
        if (!p) goto fail;
        const char *e = strchr(p, '/');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (seg[0] == ':') {
            if (len == 0) goto fail;
            if (!params) { lua_newtable(L); params = lua_gettop(L); }
            push_decoded(L, d, p, len, 0);
            lua_setfield(L, params, seg + 1);
        } else if (len != sl || memcmp(p, seg, len) != 0) goto fail;
        p = e ? e + 1 : NULL;
    }
    if (p) goto fail;
    if (!params) lua_newtable(L);
    return 1;
fail:
    if (params) lua_pop(L, 1);
    return 0;
}

static const char *method_name(enum evhttp_cmd_type m)
{
    switch (m) {
    case EVHTTP_REQ_GET: return "GET";
    case EVHTTP_REQ_POST: return "POST";
    case EVHTTP_REQ_HEAD: return "HEAD";
    case EVHTTP_REQ_PUT: return "PUT";
    case EVHTTP_REQ_DELETE: return "DELETE";
    case EVHTTP_REQ_OPTIONS: return "OPTIONS";
    case EVHTTP_REQ_PATCH: return "PATCH";
    default: return "OTHER";
    }
}

/* query = {k = v} (decoded; repeated keys: last wins); a bare key `?flag` gets "" */
static void push_query(lua_State *L, struct dispatch *d, const char *q)
{
    lua_newtable(L);
    if (!q || !*q) return;
    int rc = evhttp_parse_query_str(q, &d->query);
    if (rc != 0) {                                        /* evhttp refuses bare keys: give them '=' */
        size_t n = strlen(q);
        d->tmp2 = malloc(2 * n + 1);
        if (!d->tmp2) luaL_error(L, "out of memory");
        char *o = d->tmp2;
        for (const char *p = q; ; ) {
            const char *e = strchr(p, '&');
            size_t len = e ? (size_t)(e - p) : strlen(p);
            if (len) {
                if (o != d->tmp2) *o++ = '&';
                memcpy(o, p, len);
                o += len;
                if (!memchr(p, '=', len)) *o++ = '=';
            }
            if (!e) break;
            p = e + 1;
        }
        *o = 0;
        evhttp_clear_headers(&d->query);
        rc = evhttp_parse_query_str(d->tmp2, &d->query);
    }
    if (rc != 0) return;
    for (struct evkeyval *kv = d->query.tqh_first; kv; kv = kv->next.tqe_next) {
        push_decoded(L, d, kv->key, strlen(kv->key), 1);
        lua_pushstring(L, kv->value);
        lua_settable(L, -3);
    }
}

/* headers = {lowercase name = value}; repeated headers are joined with ", " */
static void push_headers(lua_State *L, struct evkeyvalq *h)
{
    lua_newtable(L);
    for (struct evkeyval *kv = h->tqh_first; kv; kv = kv->next.tqe_next) {
        luaL_Buffer b;
        size_t n = strlen(kv->key);
        char *lower = luaL_buffinitsize(L, &b, n);
        for (size_t i = 0; i < n; i++) lower[i] = (char)((kv->key[i] >= 'A' && kv->key[i] <= 'Z') ? kv->key[i] + 32 : kv->key[i]);
        luaL_pushresultsize(&b, n);
        lua_pushvalue(L, -1);
        if (lua_rawget(L, -3) == LUA_TSTRING) {
            lua_pushliteral(L, ", ");
            lua_pushstring(L, kv->value);
            lua_concat(L, 3);
        } else {
            lua_pop(L, 1);
            lua_pushstring(L, kv->value);
        }
        lua_rawset(L, -3);
    }
}

static int dispatch_p(lua_State *L)
{
    struct dispatch *d = lua_touserdata(L, 1);
    struct srv *s = d->srv;
    struct evhttp_request *req = d->req;
    const char *method = method_name(evhttp_request_get_command(req));
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    const char *rawq = uri ? evhttp_uri_get_query(uri) : NULL;
    if (!path || !*path) path = "/";

    lua_rawgeti(L, LUA_REGISTRYINDEX, s->self_ref);       /* 2: srv */
    lua_getiuservalue(L, 2, 1);                           /* 3: routes */
    int n = (int)lua_rawlen(L, 3), found = 0, path_matched = 0;
    for (int i = 1; i <= n && !found; i++) {
        lua_rawgeti(L, 3, i);                             /* route */
        int route = lua_gettop(L);
        lua_getfield(L, route, "segs");
        if (match(L, d, route + 1, path)) {               /* params on top */
            lua_getfield(L, route, "method");
            const char *m = lua_tostring(L, -1);
            if (!strcmp(m, "*") || !strcmp(m, method) || (!strcmp(method, "HEAD") && !strcmp(m, "GET"))) {
                lua_pop(L, 1);
                lua_getfield(L, route, "handler");        /* route, segs, params, handler */
                found = 1;
                break;
            }
            if (!path_matched) d->allow[0] = 0;
            size_t used = strlen(d->allow);
            snprintf(d->allow + used, sizeof d->allow - used, "%s%s", used ? ", " : "", m);
            path_matched = 1;
        }
        lua_settop(L, route - 1);
    }
    if (!found) {
        d->status = path_matched ? 405 : 404;
        return 0;
    }
    int params = lua_gettop(L) - 1, handler = lua_gettop(L);

    lua_createtable(L, 0, 10);                            /* the req table */
    int t = lua_gettop(L);
    lua_pushstring(L, method); lua_setfield(L, t, "method");
    lua_pushstring(L, path); lua_setfield(L, t, "path");
    lua_pushstring(L, rawq ? rawq : ""); lua_setfield(L, t, "raw_query");
    push_query(L, d, rawq); lua_setfield(L, t, "query");
    push_headers(L, evhttp_request_get_input_headers(req)); lua_setfield(L, t, "headers");
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t blen = evbuffer_get_length(in);
    lua_pushlstring(L, blen ? (const char *)evbuffer_pullup(in, -1) : "", blen); lua_setfield(L, t, "body");
    lua_pushvalue(L, params); lua_setfield(L, t, "params");
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    char *addr = NULL;
    ev_uint16_t port = 0;
    evhttp_connection_get_peer(evcon, &addr, &port);
    lua_pushfstring(L, strchr(addr ? addr : "", ':') ? "[%s]:%d" : "%s:%d", addr ? addr : "?", (int)port);
    lua_setfield(L, t, "remote");

    /* the record, created empty first so a failure below leaves nothing half-owned; anchored until
     * on_request is done with it, so it survives an error in task_spawn */
    lua_pushcfunction(L, run_handler);
    struct rec *r = lua_newuserdatauv(L, sizeof *r, 0);
    memset(r, 0, sizeof *r);
    luaL_setmetatable(L, REC_MT);
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, SPAWNING_KEY);
    lua_pushvalue(L, handler);
    lua_pushvalue(L, t);
    snprintf(r->what, sizeof r->what, "%s %s", method, path);
    r->req = req;
    r->evcon = evcon;
    r->srv = s;
    r->next = s->pending;
    if (r->next) r->next->pprev = &r->next;
    r->pprev = &s->pending;
    s->pending = r;
    s->inflight++;
    d->rec = r;
    r->conn = d->conn;
    d->conn->rec = r;
    struct bufferevent *bev = evhttp_connection_get_bufferevent(evcon);
    evutil_socket_t fd = bev ? bufferevent_getfd(bev) : -1;
    if (fd >= 0 && (r->watch = event_new(H.base, fd, EV_READ, on_peer, r)) != NULL) event_add(r->watch, NULL);
    task_spawn(L, 3, r->what);
    return 0;
}

/* evhttp's callback for every well-formed request (malformed and oversized ones are answered by evhttp). */
static void on_request(struct evhttp_request *req, void *arg)
{
    lua_State *L = H.L;
    int top = lua_gettop(L);
    struct dispatch d;
    memset(&d, 0, sizeof d);
    d.srv = arg;
    d.req = req;
    d.query.tqh_first = NULL;
    d.query.tqh_last = &d.query.tqh_first;
    d.conn = conn_of(d.srv, evhttp_request_get_connection(req));
    if (!d.conn) {                                        /* untracked: we could not allocate its record */
        send_json(req, 503, "{\"error\":\"unavailable\"}", NULL);
        return;
    }
    d.conn->busy = 1;                                     /* its deadline stops: the rest is our time */
    evtimer_del(d.conn->timer);
    evhttp_request_set_on_complete_cb(req, on_reply_sent, d.conn);
    lua_pushcfunction(L, dispatch_p);
    lua_pushlightuserdata(L, &d);
    int rc = lua_pcall(L, 1, 0, 0);
    free(d.tmp);
    free(d.tmp2);
    evhttp_clear_headers(&d.query);
    if (rc != LUA_OK) {
        log_req(LOG_ERROR, "server: cannot dispatch request", "?", lua_tostring(L, -1));
        if (d.rec) rec_fail(d.rec, 500);
        else send_json(req, 500, "{\"error\":\"internal error\"}", NULL);
    } else if (d.status == 404) {
        send_json(req, 404, "{\"error\":\"not found\"}", NULL);
    } else if (d.status == 405) {
        send_json(req, 405, "{\"error\":\"method not allowed\"}", d.allow);
    }
    lua_pushnil(L);                                       /* the record is owned by its task now */
    lua_setfield(L, LUA_REGISTRYINDEX, SPAWNING_KEY);
    lua_settop(L, top);
}

/* ---- the server handle ---- */

static struct srv *check_srv(lua_State *L, int i)
{
    struct srv *s = luaL_checkudata(L, i, SERVER_MT);
    if (!s->http) luaL_error(L, "attempt to use a closed server");
    return s;
}

/* Free the evhttp; pending requests are forgotten first (evhttp frees them with their connections). */
static void srv_close(lua_State *L, struct srv *s)
{
    if (!s->http) return;
    while (s->pending) {
        struct rec *r = s->pending;
        struct evhttp_request *req = r->req;
        int detached = req && !evhttp_request_get_connection(req);
        rec_detach(r);
        r->req = NULL;
        if (detached) evhttp_request_free(req);             /* no connection will free it */
    }
    s->lev = NULL;                                        /* evhttp_free frees it */
    evhttp_free(s->http);                                 /* closes every connection: on_conn_close */
    s->http = NULL;
    while (s->conns) {                                    /* accepted, not set up yet */
        struct conn *c = s->conns;
        if (c->bev) { bufferevent_decref(c->bev); c->bev = NULL; }
        conn_free(c);
    }
    if (s->resume) { event_free(s->resume); s->resume = NULL; }
    if (s->tls) { SSL_CTX_free(s->tls); s->tls = NULL; }
    if (s->pprev) {
        *s->pprev = s->next;
        if (s->next) s->next->pprev = s->pprev;
        s->pprev = NULL;
    }
    if (L && s->self_ref != LUA_NOREF) luaL_unref(L, LUA_REGISTRYINDEX, s->self_ref);
    s->self_ref = LUA_NOREF;
}

void server_shutdown(void)
{
    while (servers) srv_close(H.L, servers);
}

static int srv_gc(lua_State *L)
{
    srv_close(L, luaL_checkudata(L, 1, SERVER_MT));
    return 0;
}

static int l_close(lua_State *L)
{
    srv_close(L, check_srv(L, 1));
    return 0;
}

/* srv:route(method, pattern, handler) -> srv */
static int l_route(lua_State *L)
{
    check_srv(L, 1);
    const char *m = luaL_checkstring(L, 2);
    const char *pat = luaL_checkstring(L, 3);
    luaL_checktype(L, 4, LUA_TFUNCTION);
    luaL_argcheck(L, *m, 2, "empty method");
    for (const char *c = m; *c; c++)
        luaL_argcheck(L, (*c >= 'A' && *c <= 'Z') || *m == '*', 2, "method must be upper case, or \"*\"");
    luaL_argcheck(L, pat[0] == '/', 3, "pattern must start with '/'");
    lua_createtable(L, 0, 4);
    lua_pushvalue(L, 2); lua_setfield(L, -2, "method");
    lua_pushvalue(L, 3); lua_setfield(L, -2, "pattern");
    lua_pushvalue(L, 4); lua_setfield(L, -2, "handler");
    lua_newtable(L);                                      /* segs */
    int k = 0;
    for (const char *p = pat + 1; ; ) {
        const char *e = strchr(p, '/');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == 1 && p[0] == '*') luaL_argcheck(L, !e, 3, "'*' only as the last segment");
        if (p[0] == ':') luaL_argcheck(L, len > 1, 3, "':' needs a name");
        lua_pushlstring(L, p, len);
        lua_rawseti(L, -2, ++k);
        if (!e) break;
        p = e + 1;
    }
    lua_setfield(L, -2, "segs");
    lua_getiuservalue(L, 1, 1);
    lua_pushvalue(L, -2);
    lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
    lua_settop(L, 1);
    return 1;
}

/* srv:stats() -> {inflight=, served=, failed=, dropped=, gone=, connections=, timed_out=, evicted=, accept_errors=} */
static int l_stats(lua_State *L)
{
    struct srv *s = check_srv(L, 1);
    lua_createtable(L, 0, 9);
    lua_pushinteger(L, s->inflight); lua_setfield(L, -2, "inflight");
    lua_pushinteger(L, s->served); lua_setfield(L, -2, "served");
    lua_pushinteger(L, s->failed); lua_setfield(L, -2, "failed");
    lua_pushinteger(L, s->dropped); lua_setfield(L, -2, "dropped");
    lua_pushinteger(L, s->gone); lua_setfield(L, -2, "gone");
    lua_pushinteger(L, s->nconns); lua_setfield(L, -2, "connections");
    lua_pushinteger(L, s->timed_out); lua_setfield(L, -2, "timed_out");
    lua_pushinteger(L, s->evicted); lua_setfield(L, -2, "evicted");
    lua_pushinteger(L, s->accept_errors); lua_setfield(L, -2, "accept_errors");
    return 1;
}

static int srv_index(lua_State *L)
{
    struct srv *s = luaL_checkudata(L, 1, SERVER_MT);
    const char *k = luaL_checkstring(L, 2);
    if (!strcmp(k, "port")) lua_pushinteger(L, s->port);
    else if (!strcmp(k, "host")) lua_pushstring(L, s->host);
    else if (!strcmp(k, "url")) lua_pushfstring(L, strchr(s->host, ':') ? "%s://[%s]:%d" : "%s://%s:%d",
                                                 s->tls ? "https" : "http", s->host, s->port);
    else { lua_getmetatable(L, 1); lua_getfield(L, -1, "methods"); lua_getfield(L, -1, k); }
    return 1;
}

static int srv_tostring(lua_State *L)
{
    struct srv *s = luaL_checkudata(L, 1, SERVER_MT);
    if (!s->http) lua_pushliteral(L, "server (closed)");
    else lua_pushfstring(L, strchr(s->host, ':') ? "server [%s]:%d" : "server %s:%d", s->host, s->port);
    return 1;
}

static lua_Integer opt_int(lua_State *L, const char *k, lua_Integer def, lua_Integer lo, lua_Integer hi)
{
    lua_Integer v = def;
    if (lua_getfield(L, 1, k) != LUA_TNIL) {
        if (!lua_isinteger(L, -1)) luaL_error(L, "server.listen: '%s' must be an integer", k);
        v = lua_tointeger(L, -1);
        if (v < lo || v > hi) luaL_error(L, "server.listen: '%s' out of range", k);
    }
    lua_pop(L, 1);
    return v;
}

static lua_Number opt_seconds(lua_State *L, const char *k, lua_Number def)
{
    lua_Number v = def;
    if (lua_getfield(L, 1, k) != LUA_TNIL) {
        if (!lua_isnumber(L, -1)) luaL_error(L, "server.listen: '%s' must be a number of seconds", k);
        v = lua_tonumber(L, -1);
        if (!(v > 0 && v <= 86400)) luaL_error(L, "server.listen: '%s' out of range", k);
    }
    lua_pop(L, 1);
    return v;
}

static struct timeval tv_of(lua_Number t)
{
    struct timeval tv = {(time_t)t, (suseconds_t)((t - (double)(time_t)t) * 1e6)};
    return tv;
}

/* A TLS server context of a PEM certificate chain and its key (TLS 1.2 at least) -> ctx | NULL, err in buf */
static SSL_CTX *tls_context(const char *cert, const char *key, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    const char *what = "context";
    if (ctx && SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) == 1 &&
        (what = "certificate", SSL_CTX_use_certificate_chain_file(ctx, cert) == 1) &&
        (what = "key", SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) == 1) &&
        (what = "key", SSL_CTX_check_private_key(ctx) == 1))
        return ctx;
    unsigned long e = ERR_get_error();
    snprintf(err, errlen, "tls: %s: %s", what, e ? ERR_reason_error_string(e) : "failed");
    ERR_clear_error();
    SSL_CTX_free(ctx);
    return NULL;
}

/* server.listen{host=, port=, max_body=, max_headers=, timeout=, request_timeout=, max_connections=,
 * tls = {cert = PEM chain path, key = PEM key path}} -> srv | nil, err */
static int l_listen(lua_State *L)
{
    if (lua_isnoneornil(L, 1)) lua_newtable(L);
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    lua_getfield(L, 1, "host");
    const char *host = lua_isnil(L, -1) ? "127.0.0.1" : luaL_checkstring(L, -1);   /* stays at 2 */
    luaL_argcheck(L, strlen(host) < sizeof ((struct srv *)0)->host, 1, "host too long");
    lua_Integer port = opt_int(L, "port", 0, 0, 65535);
    lua_Integer max_body = opt_int(L, "max_body", 1048576, 0, (lua_Integer)1 << 40);
    lua_Integer max_headers = opt_int(L, "max_headers", 65536, 256, (lua_Integer)1 << 30);
    lua_Integer max_conns = opt_int(L, "max_connections", 256, 1, 1 << 20);
    lua_Number timeout = opt_seconds(L, "timeout", 30);
    lua_Number request_timeout = opt_seconds(L, "request_timeout", 30);
    SSL_CTX *tls = NULL;
    if (lua_getfield(L, 1, "tls") != LUA_TNIL) {
        luaL_checktype(L, -1, LUA_TTABLE);
        lua_getfield(L, -1, "cert");
        lua_getfield(L, -2, "key");
        const char *cert = luaL_checkstring(L, -2), *key = luaL_checkstring(L, -1);
        char err[256];
        if (!(tls = tls_context(cert, key, err, sizeof err))) {
            lua_pushnil(L);
            lua_pushstring(L, err);
            return 2;
        }
        lua_pop(L, 2);
    }
    lua_pop(L, 1);

    struct srv *s = lua_newuserdatauv(L, sizeof *s, 1);   /* 3: closed until the evhttp exists */
    memset(s, 0, sizeof *s);
    s->self_ref = LUA_NOREF;
    luaL_setmetatable(L, SERVER_MT);
    lua_newtable(L);
    lua_setiuservalue(L, 3, 1);                           /* routes */
    snprintf(s->host, sizeof s->host, "%s", host);
    s->tls = tls;                                         /* freed with the server from here on */
    s->http = evhttp_new(H.base);
    s->resume = s->http ? evtimer_new(H.base, on_resume, s) : NULL;
    if (!s->resume) {
        if (s->http) evhttp_free(s->http);
        s->http = NULL;
        SSL_CTX_free(s->tls);
        s->tls = NULL;
        lua_pushnil(L); lua_pushliteral(L, "error: out of memory"); return 2;
    }
    evhttp_set_max_body_size(s->http, (ev_ssize_t)max_body);
    evhttp_set_max_headers_size(s->http, (ev_ssize_t)max_headers);
    struct timeval tv = tv_of(timeout);
    evhttp_set_timeout_tv(s->http, &tv);
    s->deadline = tv_of(request_timeout);
    s->max_conns = max_conns;
    evhttp_set_bevcb(s->http, on_accept, s);
    evhttp_set_allowed_methods(s->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT |
                               EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
    evhttp_set_default_content_type(s->http, "text/plain; charset=utf-8");
    evhttp_set_gencb(s->http, on_request, s);
    errno = 0;
    struct evhttp_bound_socket *bs = evhttp_bind_socket_with_handle(s->http, host, (ev_uint16_t)port);
    if (!bs) {
        int e = errno;
        evhttp_free(s->http);
        s->http = NULL;
        event_free(s->resume);
        s->resume = NULL;
        SSL_CTX_free(s->tls);
        s->tls = NULL;
        lua_pushnil(L);
        if (e) lua_pushfstring(L, "bind: %s", strerror(e));
        else lua_pushfstring(L, "bind: cannot listen on %s:%d", host, (int)port);
        return 2;
    }
    s->lev = evhttp_bound_socket_get_listener(bs);
    evconnlistener_set_error_cb(s->lev, on_accept_error);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&ss, &sl) == 0)
        s->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                 : ((struct sockaddr_in *)&ss)->sin_port);
    lua_pushvalue(L, 3);
    s->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    s->next = servers;
    if (s->next) s->next->pprev = &s->next;
    s->pprev = &servers;
    servers = s;
    return 1;
}

static int drop_tostring(lua_State *L)
{
    lua_pushliteral(L, "server.DROP");
    return 1;
}

int luaopen_server(lua_State *L)
{
    event_set_log_callback(on_libevent_log);
    static const luaL_Reg srv_meta[] = {
        {"__index", srv_index}, {"__gc", srv_gc}, {"__close", srv_gc}, {"__tostring", srv_tostring}, {NULL, NULL}};
    static const luaL_Reg srv_methods[] = {{"route", l_route}, {"close", l_close}, {"stats", l_stats}, {NULL, NULL}};
    static const luaL_Reg f[] = {{"listen", l_listen}, {NULL, NULL}};
    luaL_newmetatable(L, SERVER_MT);
    luaL_setfuncs(L, srv_meta, 0);
    luaL_newlib(L, srv_methods);
    lua_setfield(L, -2, "methods");
    lua_pop(L, 1);
    luaL_newmetatable(L, REC_MT);
    lua_pushcfunction(L, rec_gc);
    lua_setfield(L, -2, "__gc");
    lua_pop(L, 1);
    luaL_newlib(L, f);
    lua_newuserdatauv(L, 0, 0);                           /* server.DROP: unique, prints nicely */
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, drop_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_setmetatable(L, -2);
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, DROP_KEY);
    lua_setfield(L, -2, "DROP");
    return 1;
}
