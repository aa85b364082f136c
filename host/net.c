/* net.c — the `net` module: outbound byte streams that are not HTTP, for the alert sinks (syslog over TCP
 * or TLS, RFC 6587 / 5425) and datagrams to a local socket (/dev/log).
 *
 *   net.send_unix(path, data) -> true | nil, err        one datagram, never blocks
 *   net.connect{host=, port=, tls=bool, timeout=s, ca_file=} ⏸ -> conn | nil, err
 *       TLS is verified: the chain against the system's CAs (or ca_file) and the host name.
 *   conn:send(data[, timeout]) ⏸ -> true | nil, err       returns once the kernel has the bytes
 *   conn:close()                                          also __close / __gc
 *
 * A connection is a libevent bufferevent (bufferevent_openssl for TLS) on the host's loop, names resolved
 * by evdns; its callbacks only hand results to the waiting task (task_deliver).
 */
#include "host.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define CONN_MT "net.conn"

enum { CONNECTING, OPEN, CLOSED };

typedef struct {
    struct bufferevent *bev;
    SSL *ssl;                      /* freed with the bufferevent (BEV_OPT_CLOSE_ON_FREE) */
    struct task *waiter;           /* the task in connect or send, if any */
    int state, sending;
    char err[256];
} conn_t;

static struct evdns_base *dns;

static conn_t *check_conn(lua_State *L) { return luaL_checkudata(L, 1, CONN_MT); }

static void conn_free(conn_t *c) {
    if (c->bev) bufferevent_free(c->bev);
    c->bev = NULL;
    c->ssl = NULL;
    c->state = CLOSED;
    c->waiter = NULL;
}

/* pushed on the waiting task, always two values: true, nil | nil, the connection's error */
static int push_outcome(lua_State *L) {
    conn_t *c = lua_touserdata(L, 1);
    if (c->state == CLOSED) { lua_pushnil(L); lua_pushstring(L, c->err); return 2; }
    lua_pushboolean(L, 1);
    lua_pushnil(L);
    return 2;
}

static void wake(conn_t *c) {
    struct task *t = c->waiter;
    c->waiter = NULL;
    c->sending = 0;
    if (t) task_deliver(t, push_outcome, c);
}

static void fail(conn_t *c, const char *fmt, const char *detail) {
    if (!c->err[0]) snprintf(c->err, sizeof c->err, fmt, detail);
    if (c->bev) bufferevent_free(c->bev);
    c->bev = NULL;
    c->ssl = NULL;
    c->state = CLOSED;
    wake(c);
}

static void event_cb(struct bufferevent *bev, short what, void *ud) {
    conn_t *c = ud;
    (void)bev;
    if (what & BEV_EVENT_CONNECTED) {
        c->state = OPEN;
        wake(c);
        return;
    }
    if (what & (BEV_EVENT_ERROR | BEV_EVENT_EOF | BEV_EVENT_TIMEOUT)) {
        char detail[200] = "";
        long v = c->ssl ? SSL_get_verify_result(c->ssl) : X509_V_OK;
        unsigned long e = bufferevent_get_openssl_error(c->bev);
        int dnserr = bufferevent_socket_get_dns_error(c->bev);
        if (v != X509_V_OK) snprintf(detail, sizeof detail, "certificate: %s", X509_verify_cert_error_string(v));
        else if (e) ERR_error_string_n(e, detail, sizeof detail);
        else if (dnserr) snprintf(detail, sizeof detail, "%s", evutil_gai_strerror(dnserr));
        else if (what & BEV_EVENT_TIMEOUT) snprintf(detail, sizeof detail, "timed out");
        else if (what & BEV_EVENT_EOF) snprintf(detail, sizeof detail, "closed by the peer");
        else snprintf(detail, sizeof detail, "%s", evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
        const char *fmt = v != X509_V_OK || e ? "tls: %s" : dnserr ? "resolve: %s"
                        : (what & BEV_EVENT_TIMEOUT) ? "timeout: %s" : "connect: %s";
        fail(c, c->state == OPEN ? "closed: %s" : fmt, detail);
    }
}

static void write_cb(struct bufferevent *bev, void *ud) {
    conn_t *c = ud;
    (void)bev;
    if (c->sending) wake(c);             /* the output buffer drained */
}

static void read_cb(struct bufferevent *bev, void *ud) {
    (void)ud;                            /* a log receiver has nothing to say: discard */
    struct evbuffer *in = bufferevent_get_input(bev);
    evbuffer_drain(in, evbuffer_get_length(in));
}

/* Task cancelled or timed out: the connection is no longer usable. */
static void cancel_wait(void *op) {
    conn_t *c = op;
    c->waiter = NULL;
    c->sending = 0;
    snprintf(c->err, sizeof c->err, "closed: an earlier wait was cancelled");
    if (c->bev) bufferevent_free(c->bev);
    c->bev = NULL;
    c->ssl = NULL;
    c->state = CLOSED;
}

static int opt_int(lua_State *L, const char *k, int def) {
    int t = lua_getfield(L, 1, k);
    int v = t == LUA_TNIL ? def : (int)luaL_checkinteger(L, -1);
    lua_pop(L, 1);
    return v;
}

/* continuation of connect: true, nil -> the conn userdata (stack slot ctx); nil, err as they are (also
 * the scheduler's nil, "cancelled") */
static int connect_k(lua_State *L, int status, lua_KContext ctx) {
    (void)status;
    if (lua_toboolean(L, -2)) { lua_pushvalue(L, (int)ctx); return 1; }
    return 2;
}

/* continuation of send: true | nil, err */
static int send_k(lua_State *L, int status, lua_KContext ctx) {
    (void)status; (void)ctx;
    if (lua_toboolean(L, -2)) { lua_pushboolean(L, 1); return 1; }
    return 2;
}

/* net.connect{host=, port=, tls=, timeout=, ca_file=} ⏸ — raises on misuse; yields. */
static int l_connect(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    if (lua_getfield(L, 1, "host") != LUA_TSTRING) return luaL_error(L, "net.connect: 'host' must be a string");
    const char *hostname = lua_tostring(L, -1);                  /* anchored at slot 2 */
    int port = opt_int(L, "port", 0);
    if (port <= 0 || port > 65535) return luaL_error(L, "net.connect: 'port' must be 1-65535");
    lua_getfield(L, 1, "tls");
    int tls = lua_toboolean(L, -1);
    lua_pop(L, 1);
    lua_getfield(L, 1, "timeout");
    double timeout = luaL_optnumber(L, -1, 10);
    lua_pop(L, 1);
    int ct = lua_getfield(L, 1, "ca_file");                      /* anchored at slot 3 */
    if (ct != LUA_TNIL && ct != LUA_TSTRING) return luaL_error(L, "net.connect: 'ca_file' must be a string");
    const char *ca_file = lua_tostring(L, -1);
    struct task *task = task_current(L, "net.connect");

    conn_t *c = lua_newuserdatauv(L, sizeof *c, 0);              /* slot 4 */
    memset(c, 0, sizeof *c);
    c->state = CLOSED;
    luaL_setmetatable(L, CONN_MT);
    if (!dns && !(dns = evdns_base_new(H.base, EVDNS_BASE_INITIALIZE_NAMESERVERS)))
        dns = evdns_base_new(H.base, 0);                         /* no resolv.conf: addresses only */

    SSL_CTX *ctx = NULL;
    if (tls) {
        ctx = SSL_CTX_new(TLS_client_method());
        if (!ctx) { lua_pushnil(L); lua_pushstring(L, "tls: cannot create a context"); return 2; }
        SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        int ok = ca_file ? SSL_CTX_load_verify_locations(ctx, ca_file, NULL) : SSL_CTX_set_default_verify_paths(ctx);
        if (ok == 1) c->ssl = SSL_new(ctx);
        SSL_CTX_free(ctx);                                       /* the SSL keeps its own reference */
        if (!c->ssl) { lua_pushnil(L); lua_pushfstring(L, "tls: cannot load the CA certificates%s%s", ca_file ? " of " : "", ca_file ? ca_file : ""); return 2; }
        unsigned char ip[16];
        if (inet_pton(AF_INET, hostname, ip) == 1 || inet_pton(AF_INET6, hostname, ip) == 1) {
            X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), hostname);   /* an address: its IP SAN */
        } else {
            SSL_set_tlsext_host_name(c->ssl, hostname);
            SSL_set1_host(c->ssl, hostname);                     /* the certificate must name this host */
        }
        c->bev = bufferevent_openssl_socket_new(H.base, -1, c->ssl, BUFFEREVENT_SSL_CONNECTING,
                                                BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
        if (!c->bev) { SSL_free(c->ssl); c->ssl = NULL; }
    } else {
        c->bev = bufferevent_socket_new(H.base, -1, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
    }
    if (!c->bev) { lua_pushnil(L); lua_pushstring(L, "error: out of memory"); return 2; }
    c->state = CONNECTING;
    bufferevent_setcb(c->bev, read_cb, write_cb, event_cb, c);
    struct timeval tv = {(time_t)timeout, (suseconds_t)((timeout - (time_t)timeout) * 1e6)};
    bufferevent_set_timeouts(c->bev, &tv, &tv);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    /* callbacks are deferred to the loop: none runs before task_wait below */
    if (bufferevent_socket_connect_hostname(c->bev, dns, AF_UNSPEC, hostname, port) < 0) {
        fail(c, "connect: %s", evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
        lua_pushnil(L);
        lua_pushstring(L, c->err);
        return 2;
    }
    c->waiter = task;
    return task_wait(L, 0, cancel_wait, c, 4, connect_k);
}

/* conn:send(data[, timeout]) ⏸ */
static int l_send(lua_State *L) {
    conn_t *c = check_conn(L);
    size_t n;
    const char *data = luaL_checklstring(L, 2, &n);
    double timeout = luaL_optnumber(L, 3, 30);
    if (c->waiter) return luaL_error(L, "conn:send: another task is using this connection");
    struct task *task = task_current(L, "conn:send");
    if (c->state != OPEN) { lua_pushnil(L); lua_pushstring(L, c->err[0] ? c->err : "closed: not connected"); return 2; }
    if (bufferevent_write(c->bev, data, n) != 0) { lua_pushnil(L); lua_pushstring(L, "error: out of memory"); return 2; }
    c->waiter = task;
    c->sending = 1;
    return task_wait(L, timeout, cancel_wait, c, 0, send_k);
}

static int l_close(lua_State *L) {
    conn_t *c = check_conn(L);
    if (c->waiter) return luaL_error(L, "conn:close: a task is waiting on this connection");
    conn_free(c);
    return 0;
}

static int l_gc(lua_State *L) {
    conn_t *c = check_conn(L);
    if (!c->waiter) conn_free(c);        /* a waiting task holds it on its stack: never collected then */
    return 0;
}

static int l_tostring(lua_State *L) {
    conn_t *c = check_conn(L);
    lua_pushfstring(L, "net.conn (%s)", c->state == OPEN ? "open" : c->state == CONNECTING ? "connecting" : "closed");
    return 1;
}

/* net.send_unix(path, data): one datagram to a local socket such as /dev/log; never blocks. */
static int l_send_unix(lua_State *L) {
    size_t plen, n;
    const char *path = luaL_checklstring(L, 1, &plen);
    const char *data = luaL_checklstring(L, 2, &n);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    if (plen >= sizeof a.sun_path) return luaL_argerror(L, 1, "path too long");
    memcpy(a.sun_path, path, plen + 1);
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return luaL_fileresult(L, 0, path);
    ssize_t w = sendto(fd, data, n, 0, (struct sockaddr *)&a, sizeof a);
    int e = errno;
    close(fd);
    if (w < 0) {
        lua_pushnil(L);
        lua_pushfstring(L, "%s: %s: %s", e == EAGAIN ? "busy" : "send", path, strerror(e));
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

void net_shutdown(void) {
    if (dns) evdns_base_free(dns, 0);
    dns = NULL;
}

int luaopen_net(lua_State *L) {
    static const luaL_Reg methods[] = {{"send", l_send}, {"close", l_close}, {NULL, NULL}};
    static const luaL_Reg fns[] = {{"connect", l_connect}, {"send_unix", l_send_unix}, {NULL, NULL}};
    if (luaL_newmetatable(L, CONN_MT)) {
        luaL_newlib(L, methods);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, l_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, l_close);
        lua_setfield(L, -2, "__close");
        lua_pushcfunction(L, l_tostring);
        lua_setfield(L, -2, "__tostring");
    }
    lua_pop(L, 1);
    luaL_newlib(L, fns);
    return 1;
}
