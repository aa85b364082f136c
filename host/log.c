/* log.c — structured logging for C and Lua: logfmt or JSON lines, level filter, secret redaction.
 *
 * Every line is built in C memory by code that never calls Lua (so nothing can longjmp over it), redacted,
 * and written with one fwrite so lines never interleave.  The Lua side only gathers strings that stay
 * anchored on its stack while the line is built.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "host.h"

#define MASK "********"
#define MASK_LEN 8
#define SECRET_MIN 4

static const char *level_names[] = {"debug", "info", "warn", "error"};
static int cur_level = LOG_INFO;
static int json_mode = 0;
static FILE *sink = NULL; /* NULL: stderr */

/* ---- secrets ---- */

struct secret { char *s; size_t len; };
static struct secret *secrets;
static size_t nsecrets, capsecrets;
static unsigned char first_byte[256]; /* quick filter: does any secret start with this byte? */

/* Longest first, so a secret that contains another is masked whole. */
static int add_secret(const char *s, size_t len) {
    if (len < SECRET_MIN) return 0;
    for (size_t i = 0; i < nsecrets; i++)
        if (secrets[i].len == len && memcmp(secrets[i].s, s, len) == 0) return 0;
    if (nsecrets == capsecrets) {
        size_t cap = capsecrets ? capsecrets * 2 : 16;
        struct secret *n = realloc(secrets, cap * sizeof *n);
        if (!n) return -1;
        secrets = n;
        capsecrets = cap;
    }
    char *copy = malloc(len);
    if (!copy) return -1;
    memcpy(copy, s, len);
    size_t at = 0;
    while (at < nsecrets && secrets[at].len >= len) at++;
    memmove(secrets + at + 1, secrets + at, (nsecrets - at) * sizeof *secrets);
    secrets[at] = (struct secret){copy, len};
    nsecrets++;
    first_byte[(unsigned char)s[0]] = 1;
    return 0;
}

char *log_redact(const char *s, size_t len, size_t *outlen) {
    /* masking only shrinks or keeps short secrets' size: secrets are >= 4 bytes, the mask is 8, so the
     * worst case doubles the length */
    char *out = malloc(len * 2 + 1);
    if (!out) return NULL;
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        int hit = 0;
        if (first_byte[(unsigned char)s[i]]) {
            for (size_t k = 0; k < nsecrets; k++) {
                if (secrets[k].len <= len - i && memcmp(s + i, secrets[k].s, secrets[k].len) == 0) {
                    memcpy(out + o, MASK, MASK_LEN);
                    o += MASK_LEN;
                    i += secrets[k].len;
                    hit = 1;
                    break;
                }
            }
        }
        if (!hit) out[o++] = s[i++];
    }
    out[o] = '\0';
    if (outlen) *outlen = o;
    return out;
}

void log_shutdown(void) {
    for (size_t i = 0; i < nsecrets; i++) {
        explicit_bzero(secrets[i].s, secrets[i].len);
        free(secrets[i].s);
    }
    free(secrets);
    secrets = NULL;
    nsecrets = capsecrets = 0;
    memset(first_byte, 0, sizeof first_byte);
    if (sink) fclose(sink);
    sink = NULL;
}

int log_set_level(const char *name) {
    for (int i = 0; i < 4; i++)
        if (strcmp(name, level_names[i]) == 0) {
            cur_level = i;
            return 0;
        }
    return -1;
}

void log_set_json(int on) { json_mode = on != 0; }

/* ---- line building (plain C, no Lua) ---- */

struct sbuf { char *p; size_t len, cap; int oom; };

static void sb_add(struct sbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) { b->oom = 1; return; }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}
static void sb_str(struct sbuf *b, const char *s) { sb_add(b, s, strlen(s)); }

enum kind { K_STRING, K_NUMBER, K_BOOL };
struct field { const char *k; size_t klen; const char *v; size_t vlen; enum kind kind; };

/* Length of a valid UTF-8 sequence at s (max n bytes), 0 if invalid. */
static size_t utf8_len(const unsigned char *s, size_t n) {
    if (s[0] < 0x80) return 1;
    size_t need;
    unsigned min;
    if ((s[0] & 0xe0) == 0xc0) { need = 2; min = 0x80; }
    else if ((s[0] & 0xf0) == 0xe0) { need = 3; min = 0x800; }
    else if ((s[0] & 0xf8) == 0xf0) { need = 4; min = 0x10000; }
    else return 0;
    if (need > n) return 0;
    unsigned cp = s[0] & (0x7f >> need);
    for (size_t i = 1; i < need; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    return need;
}

/* A JSON string; invalid UTF-8 becomes U+FFFD so every line stays parseable. */
static void json_str(struct sbuf *b, const char *s, size_t n) {
    char tmp[8];
    sb_add(b, "\"", 1);
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') { sb_add(b, "\\", 1); sb_add(b, s + i, 1); i++; }
        else if (c == '\n') { sb_add(b, "\\n", 2); i++; }
        else if (c == '\r') { sb_add(b, "\\r", 2); i++; }
        else if (c == '\t') { sb_add(b, "\\t", 2); i++; }
        else if (c < 0x20 || c == 0x7f) { snprintf(tmp, sizeof tmp, "\\u%04x", c); sb_str(b, tmp); i++; }
        else {
            size_t l = utf8_len((const unsigned char *)s + i, n - i);
            if (l == 0) { sb_add(b, "\\ufffd", 6); i++; }
            else { sb_add(b, s + i, l); i += l; }
        }
    }
    sb_add(b, "\"", 1);
}

static int needs_quotes(const char *s, size_t n) {
    if (n == 0) return 1;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= ' ' || c == '=' || c == '"' || c == '\\' || c == 0x7f) return 1;
    }
    return 0;
}

static void logfmt_val(struct sbuf *b, const char *s, size_t n) {
    if (!needs_quotes(s, n)) { sb_add(b, s, n); return; }
    char tmp[8];
    sb_add(b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') { sb_add(b, "\\", 1); sb_add(b, s + i, 1); }
        else if (c == '\n') sb_add(b, "\\n", 2);
        else if (c == '\r') sb_add(b, "\\r", 2);
        else if (c == '\t') sb_add(b, "\\t", 2);
        else if (c < 0x20 || c == 0x7f) { snprintf(tmp, sizeof tmp, "\\x%02x", c); sb_str(b, tmp); }
        else sb_add(b, s + i, 1);
    }
    sb_add(b, "\"", 1);
}

/* Keys are written bare; characters that would break the k=v grammar become '_'. */
static void logfmt_key(struct sbuf *b, const char *s, size_t n) {
    if (n == 0) { sb_add(b, "_", 1); return; }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        sb_add(b, (c <= ' ' || c == '=' || c == '"' || c == 0x7f) ? "_" : s + i, 1);
    }
}

static int reserved(const char *k, size_t n) {
    return (n == 4 && (memcmp(k, "time", 4) == 0)) || (n == 5 && memcmp(k, "level", 5) == 0) ||
           (n == 3 && memcmp(k, "msg", 3) == 0);
}

/* Redact one piece into a fresh string (kept in *hold, freed by the caller) before escaping, so a secret
 * is masked even where escaping would change its bytes. */
static const char *redacted(const char *s, size_t n, size_t *outn, char **hold) {
    *hold = NULL;
    if (nsecrets == 0) { *outn = n; return s; }
    char *r = log_redact(s, n, outn);
    if (!r) { *outn = MASK_LEN; return MASK; } /* out of memory: print nothing we could not check */
    *hold = r;
    return r;
}

static void emit(int level, const char *msg, size_t msglen, const struct field *f, size_t nf) {
    struct sbuf b = {0};
    struct timespec ts;
    struct tm tm;
    char when[64], tmp[24];
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(tmp, sizeof tmp, ".%03dZ", (int)(ts.tv_nsec / 1000000));
    strcat(when, tmp);

    size_t n;
    char *hold;
    const char *m = redacted(msg, msglen, &n, &hold);
    if (json_mode) {
        sb_str(&b, "{\"time\":\"");
        sb_str(&b, when);
        sb_str(&b, "\",\"level\":\"");
        sb_str(&b, level_names[level]);
        sb_str(&b, "\",\"msg\":");
        json_str(&b, m, n);
    } else {
        sb_str(&b, "time=");
        sb_str(&b, when);
        sb_str(&b, " level=");
        sb_str(&b, level_names[level]);
        sb_str(&b, " msg=");
        logfmt_val(&b, m, n);
    }
    free(hold);
    for (size_t i = 0; i < nf; i++) {
        size_t kn, vn;
        char *khold, *vhold;
        const char *k = redacted(f[i].k, f[i].klen, &kn, &khold);
        const char *v = redacted(f[i].v, f[i].vlen, &vn, &vhold);
        int raw = f[i].kind != K_STRING && !vhold;
        if (json_mode) {
            sb_add(&b, ",", 1);
            if (reserved(k, kn)) { /* never shadow time/level/msg */
                sb_add(&b, "\"_", 2);
                sb_add(&b, k, kn);
                sb_add(&b, "\"", 1);
            } else json_str(&b, k, kn);
            sb_add(&b, ":", 1);
            if (raw) sb_add(&b, v, vn);
            else json_str(&b, v, vn);
        } else {
            sb_add(&b, reserved(k, kn) ? " _" : " ", reserved(k, kn) ? 2 : 1);
            logfmt_key(&b, k, kn);
            sb_add(&b, "=", 1);
            logfmt_val(&b, v, vn);
        }
        free(khold);
        free(vhold);
    }
    sb_str(&b, json_mode ? "}\n" : "\n");
    if (!b.oom) {
        /* a last pass over the whole line catches a secret split across pieces of the format */
        const char *line = redacted(b.p, b.len, &n, &hold);
        FILE *out = sink ? sink : stderr;
        if (line == b.p || hold) fwrite(line, 1, n, out);
        else fputs(MASK "\n", out); /* out of memory while redacting */
        fflush(out);
        free(hold);
    }
    free(b.p);
}

/* Does s[0..n) read as a JSON number (so it may be written unquoted in a JSON line)? */
static int json_number(const char *s, size_t n) {
    size_t i = 0;
    if (i < n && s[i] == '-') i++;
    if (i >= n || s[i] < '0' || s[i] > '9') return 0;
    if (s[i] == '0') i++;
    else while (i < n && s[i] >= '0' && s[i] <= '9') i++;
    if (i < n && s[i] == '.') {
        i++;
        if (i >= n || s[i] < '0' || s[i] > '9') return 0;
        while (i < n && s[i] >= '0' && s[i] <= '9') i++;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-')) i++;
        if (i >= n || s[i] < '0' || s[i] > '9') return 0;
        while (i < n && s[i] >= '0' && s[i] <= '9') i++;
    }
    return i == n;
}

/* Split "k=v k2=\"quoted v\"" (in place) into fields; a token without '=' becomes a value of key "_". */
static size_t parse_kv(char *s, struct field *f, size_t max) {
    size_t nf = 0;
    char *p = s;
    while (*p && nf < max) {
        while (*p == ' ') p++;
        if (!*p) break;
        char *k = p;
        while (*p && *p != '=' && *p != ' ') p++;
        struct field *x = &f[nf++];
        if (*p != '=') { /* bare token */
            *x = (struct field){"_", 1, k, (size_t)(p - k), K_STRING};
            continue;
        }
        x->k = k;
        x->klen = (size_t)(p - k);
        p++;
        if (*p == '"') {
            char *v = ++p, *w = p;
            while (*p && *p != '"') {
                if (*p == '\\' && p[1]) p++;
                *w++ = *p++;
            }
            if (*p == '"') p++;
            x->v = v;
            x->vlen = (size_t)(w - v);
            x->kind = K_STRING;
        } else {
            char *v = p;
            while (*p && *p != ' ') p++;
            x->v = v;
            x->vlen = (size_t)(p - v);
            x->kind = json_number(v, x->vlen) || (x->vlen == 4 && memcmp(v, "true", 4) == 0) ||
                      (x->vlen == 5 && memcmp(v, "false", 5) == 0) ? K_NUMBER : K_STRING;
        }
    }
    return nf;
}

void log_msg(int level, const char *msg, const char *fmt_kv, ...) {
    if (level < LOG_DEBUG || level > LOG_ERROR) level = LOG_ERROR;
    if (level < cur_level) return;
    struct field f[64];
    size_t nf = 0;
    char *kv = NULL;
    if (fmt_kv) {
        va_list ap;
        va_start(ap, fmt_kv);
        if (vasprintf(&kv, fmt_kv, ap) < 0) kv = NULL;
        va_end(ap);
        if (kv) nf = parse_kv(kv, f, sizeof f / sizeof *f);
    }
    if (!msg) msg = "";
    emit(level, msg, strlen(msg), f, nf);
    free(kv);
}

/* ---- Lua ---- */

static int level_of(lua_State *L, int arg) {
    const char *name = luaL_checkstring(L, arg);
    for (int i = 0; i < 4; i++)
        if (strcmp(name, level_names[i]) == 0) return i;
    return luaL_argerror(L, arg, lua_pushfstring(L, "unknown level '%s'", name));
}

static int field_cmp(const void *a, const void *b) {
    const struct field *x = a, *y = b;
    size_t n = x->klen < y->klen ? x->klen : y->klen;
    int c = memcmp(x->k, y->k, n);
    return c ? c : (x->klen > y->klen) - (x->klen < y->klen);
}

/* log.<level>(msg, fields): every string is converted first (luaL_tolstring may call __tostring and
 * raise), then anchored in a scratch table; only then is the C line built. */
static int l_log(lua_State *L) {
    int level = (int)lua_tointeger(L, lua_upvalueindex(1));
    if (level < cur_level) return 0;
    lua_settop(L, 2);
    size_t msglen;
    const char *msg = luaL_tolstring(L, 1, &msglen); /* index 3 */
    size_t nf = 0;
    struct field *f = NULL;
    if (!lua_isnil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        lua_newtable(L); /* 4: anchors */
        int anchor = 0;
        size_t count = 0;
        lua_pushnil(L);
        while (lua_next(L, 2)) { count++; lua_pop(L, 1); }
        f = lua_newuserdatauv(L, (count ? count : 1) * sizeof *f, 0); /* 5 */
        lua_pushnil(L);
        while (lua_next(L, 2) && nf < count) {
            struct field *x = &f[nf++];
            /* key: a string key is anchored by the fields table itself */
            if (lua_type(L, -2) == LUA_TSTRING) x->k = lua_tolstring(L, -2, &x->klen);
            else {
                x->k = luaL_tolstring(L, -2, &x->klen);
                lua_rawseti(L, 4, ++anchor);
            }
            int t = lua_type(L, -1);
            if (t == LUA_TNUMBER) {
                lua_Number d = lua_tonumber(L, -1);
                x->kind = (lua_isinteger(L, -1) || isfinite(d)) ? K_NUMBER : K_STRING;
                lua_pushvalue(L, -1);
                x->v = lua_tolstring(L, -1, &x->vlen); /* converts the copy, not the table's value */
            } else if (t == LUA_TBOOLEAN) {
                x->kind = K_NUMBER;
                lua_pushstring(L, lua_toboolean(L, -1) ? "true" : "false");
                x->v = lua_tolstring(L, -1, &x->vlen);
            } else {
                x->kind = K_STRING;
                x->v = luaL_tolstring(L, -1, &x->vlen);
            }
            lua_rawseti(L, 4, ++anchor);
            lua_pop(L, 1);
        }
        qsort(f, nf, sizeof *f, field_cmp);
    }
    emit(level, msg, msglen, f, nf);
    return 0;
}

static int l_level(lua_State *L) {
    if (!lua_isnoneornil(L, 1)) cur_level = level_of(L, 1);
    lua_pushstring(L, level_names[cur_level]);
    return 1;
}

static int l_json(lua_State *L) {
    if (!lua_isnone(L, 1)) json_mode = lua_toboolean(L, 1);
    lua_pushboolean(L, json_mode);
    return 1;
}

static int l_redact(lua_State *L) {
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    if (add_secret(s, len) != 0) return luaL_error(L, "log.redact: out of memory");
    return 0;
}

/* log.sink(path) appends lines to a file (tests read them back); log.sink(nil) returns to stderr. */
static int l_sink(lua_State *L) {
    const char *path = luaL_optstring(L, 1, NULL);
    FILE *f = NULL;
    if (path) {
        f = fopen(path, "ae");
        if (!f) {
            lua_pushnil(L);
            lua_pushfstring(L, "open: %s", strerror(errno));
            return 2;
        }
    }
    if (sink) fclose(sink);
    sink = f;
    lua_pushboolean(L, 1);
    return 1;
}

int luaopen_log(lua_State *L) {
    static const luaL_Reg fns[] = {
        {"level", l_level}, {"json", l_json}, {"redact", l_redact}, {"sink", l_sink}, {NULL, NULL}};
    luaL_newlib(L, fns);
    for (int i = 0; i < 4; i++) {
        lua_pushinteger(L, i);
        lua_pushcclosure(L, l_log, 1);
        lua_setfield(L, -2, level_names[i]);
    }
    return 1;
}
