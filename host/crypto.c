/* crypto.c — the `crypto` Lua module: hashes, MACs, base64, RS256, ES256, key pairs and their public
 * JWKs (RFC 7517), AES-256-GCM sealing.
 *
 * OpenSSL 3 EVP APIs only.  Output buffers are Lua-owned (luaL_Buffer or a scratch userdata), and every
 * OpenSSL object is freed before anything can raise, so no error path leaks.
 */
#include <limits.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/decoder.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include "host.h"

#define GCM_NONCE 12
#define GCM_TAG 16
#define RANDOM_MAX (1 << 20)

static int digest(lua_State *L, const EVP_MD *md_type) {
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (!EVP_Digest(s, len, md, &mdlen, md_type, NULL))
        return luaL_error(L, "crypto: digest failed");
    lua_pushlstring(L, (const char *)md, mdlen);
    return 1;
}
static int c_sha256(lua_State *L) { return digest(L, EVP_sha256()); }
/* SHA-1: only where a provider names content by it (Box's `sha1`, S3 ETags are MD5): never for security */
static int c_sha1(lua_State *L) { return digest(L, EVP_sha1()); }

static int hmac(lua_State *L, const char *digest) {
    size_t klen, mlen, outlen = 0;
    const char *key = luaL_checklstring(L, 1, &klen);
    const char *msg = luaL_checklstring(L, 2, &mlen);
    unsigned char out[EVP_MAX_MD_SIZE];
    /* EVP_Q_mac: one-shot, allocates and frees its own context. */
    if (!EVP_Q_mac(NULL, "HMAC", NULL, digest, NULL, key, klen, (const unsigned char *)msg, mlen, out,
                   sizeof out, &outlen))
        return luaL_error(L, "crypto.hmac: mac failed");
    lua_pushlstring(L, (const char *)out, outlen);
    return 1;
}
static int c_hmac_sha256(lua_State *L) { return hmac(L, "SHA256"); }
static int c_hmac_sha1(lua_State *L) { return hmac(L, "SHA1"); }

static int c_hex(lua_State *L) {
    static const char digits[] = "0123456789abcdef";
    size_t len;
    const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &len);
    luaL_Buffer b;
    char *p = luaL_buffinitsize(L, &b, len * 2);
    for (size_t i = 0; i < len; i++) {
        p[2 * i] = digits[s[i] >> 4];
        p[2 * i + 1] = digits[s[i] & 15];
    }
    luaL_pushresultsize(&b, len * 2);
    return 1;
}

/* crypto.scrypt(password, salt, N, r, p, len) -> key | nil, err: RFC 7914 (OpenSSL's EVP_PBE_scrypt), the
 * memory-hard KDF passwords are stored with.  N a power of 2 above 1; the memory it takes, 128*N*r bytes,
 * at most 256 MiB; len 1..1024. */
static int c_scrypt(lua_State *L) {
    size_t plen, slen;
    const char *pass = luaL_checklstring(L, 1, &plen);
    const char *salt = luaL_checklstring(L, 2, &slen);
    lua_Integer n = luaL_checkinteger(L, 3), r = luaL_checkinteger(L, 4), p = luaL_checkinteger(L, 5);
    lua_Integer len = luaL_checkinteger(L, 6);
    luaL_argcheck(L, n > 1 && (n & (n - 1)) == 0 && n <= (1 << 24), 3, "N must be a power of 2, 2..2^24");
    luaL_argcheck(L, r >= 1 && r <= 64, 4, "r must be 1..64");
    luaL_argcheck(L, p >= 1 && p <= 64, 5, "p must be 1..64");
    luaL_argcheck(L, len >= 1 && len <= 1024, 6, "len must be 1..1024");
    uint64_t maxmem = 256u << 20;
    luaL_argcheck(L, (uint64_t)n * (uint64_t)r * 128u <= maxmem, 3, "N*r*128 must be at most 256 MiB");
    unsigned char out[1024];
    /* maxmem leaves room for OpenSSL's own accounting (p*r*128 more) */
    if (EVP_PBE_scrypt(pass, plen, (const unsigned char *)salt, slen, (uint64_t)n, (uint64_t)r, (uint64_t)p,
                       maxmem + (uint64_t)p * (uint64_t)r * 128u, out, (size_t)len) != 1) {
        lua_pushnil(L);
        lua_pushstring(L, "scrypt: failed (out of memory?)");
        return 2;
    }
    lua_pushlstring(L, (const char *)out, (size_t)len);
    OPENSSL_cleanse(out, sizeof out);
    return 1;
}

/* Constant time in the content; only the lengths (public) decide early. */
static int c_equal(lua_State *L) {
    size_t la, lb;
    const char *a = luaL_checklstring(L, 1, &la);
    const char *b = luaL_checklstring(L, 2, &lb);
    lua_pushboolean(L, la == lb && CRYPTO_memcmp(a, b, la) == 0);
    return 1;
}

static int c_random(lua_State *L) {
    lua_Integer n = luaL_checkinteger(L, 1);
    luaL_argcheck(L, n >= 0 && n <= RANDOM_MAX, 1, "must be between 0 and 1048576");
    luaL_Buffer b;
    char *p = luaL_buffinitsize(L, &b, (size_t)n);
    if (n > 0 && RAND_bytes((unsigned char *)p, (int)n) != 1)
        return luaL_error(L, "crypto.random: RAND_bytes failed");
    luaL_pushresultsize(&b, (size_t)n);
    return 1;
}

/* ---- base64 ---- */

/* pushes the base64 (url: base64url without padding) of len bytes at s */
static void b64push(lua_State *L, const unsigned char *s, size_t len, int url) {
    size_t cap = 4 * ((len + 2) / 3) + 1;
    luaL_Buffer b;
    char *p = luaL_buffinitsize(L, &b, cap);
    int n = EVP_EncodeBlock((unsigned char *)p, s, (int)len);
    if (url) {
        while (n > 0 && p[n - 1] == '=') n--;
        for (int i = 0; i < n; i++) {
            if (p[i] == '+') p[i] = '-';
            else if (p[i] == '/') p[i] = '_';
        }
    }
    luaL_pushresultsize(&b, (size_t)n);
}

static int b64encode(lua_State *L, int url) {
    size_t len;
    const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &len);
    luaL_argcheck(L, len <= (size_t)INT_MAX / 4 * 3 - 3, 1, "too long");
    b64push(L, s, len, url);
    return 1;
}
static int c_b64(lua_State *L) { return b64encode(L, 0); }
static int c_b64url(lua_State *L) { return b64encode(L, 1); }

/* Strict decoder front end: EVP_DecodeBlock skips whitespace and ignores misplaced '=', so validate the
 * alphabet and padding here, and normalise the url alphabet (padding optional) to the standard one. */
static int b64decode(lua_State *L, int url) {
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    luaL_argcheck(L, len <= (size_t)INT_MAX / 2, 1, "too long");
    size_t pad = 0;
    while (pad < len && pad < 3 && s[len - 1 - pad] == '=') pad++;
    size_t body = len - pad;
    if (pad > 2 || (!url && len % 4 != 0) || (url && pad && len % 4 != 0) || body % 4 == 1) {
        lua_pushnil(L);
        lua_pushliteral(L, "invalid base64");
        return 2;
    }
    size_t full = (body + 3) / 4 * 4;
    /* scratch: normalised text, then decoded bytes (userdata, so an error cannot leak it) */
    unsigned char *buf = lua_newuserdatauv(L, full + full / 4 * 3 + 1, 0);
    unsigned char *out = buf + full;
    for (size_t i = 0; i < body; i++) {
        unsigned char c = (unsigned char)s[i];
        if (url && (c == '+' || c == '/')) goto bad;
        if (url && c == '-') c = '+';
        else if (url && c == '_') c = '/';
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/'))
            goto bad;
        buf[i] = c;
    }
    for (size_t i = body; i < full; i++) buf[i] = '=';
    if (full == 0) {
        lua_pushliteral(L, "");
        return 1;
    }
    int n = EVP_DecodeBlock(out, buf, (int)full);
    if (n < 0) goto bad;
    /* EVP_DecodeBlock counts the bytes the padding stands for as zeros: drop them. */
    n -= (int)(full - body);
    lua_pushlstring(L, (const char *)out, (size_t)n);
    return 1;
bad:
    lua_pushnil(L);
    lua_pushliteral(L, "invalid base64");
    return 2;
}
static int c_unb64(lua_State *L) { return b64decode(L, 0); }
static int c_unb64url(lua_State *L) { return b64decode(L, 1); }

/* ---- RS256 ---- */

/* Never prompt on the terminal for an encrypted key's passphrase: fail instead. */
static int no_passphrase(char *buf, int size, int rwflag, void *u) {
    (void)buf; (void)size; (void)rwflag; (void)u;
    return -1;
}

static EVP_PKEY *read_private(const char *pem, size_t len) {
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    if (!bio) return NULL;
    EVP_PKEY *k = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
    BIO_free(bio);
    return k;
}

/* A public key PEM ("PUBLIC KEY" or PKCS#1 "RSA PUBLIC KEY"), or a certificate PEM (SAML/OIDC providers
 * often publish certificates), of the key type `type` ("RSA", "EC"; NULL: any). */
static EVP_PKEY *read_public(const char *pem, size_t len, const char *type) {
    EVP_PKEY *k = NULL;
    OSSL_DECODER_CTX *dctx =
        OSSL_DECODER_CTX_new_for_pkey(&k, "PEM", NULL, type, EVP_PKEY_PUBLIC_KEY, NULL, NULL);
    if (dctx) {
        const unsigned char *p = (const unsigned char *)pem;
        size_t left = len;
        if (OSSL_DECODER_from_data(dctx, &p, &left) != 1) k = NULL;
        OSSL_DECODER_CTX_free(dctx);
    }
    if (k) return k;
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    if (!bio) return NULL;
    X509 *x = PEM_read_bio_X509(bio, NULL, no_passphrase, NULL);
    if (x) {
        k = X509_get_pubkey(x);
        X509_free(x);
    }
    BIO_free(bio);
    return k;
}

static int c_rs256_sign(lua_State *L) {
    size_t plen, mlen, siglen = 0;
    const char *pem = luaL_checklstring(L, 1, &plen);
    const char *msg = luaL_checklstring(L, 2, &mlen);
    luaL_argcheck(L, plen <= INT_MAX, 1, "too long");
    const char *err = NULL;
    unsigned char *sig = NULL;
    EVP_MD_CTX *ctx = NULL;
    EVP_PKEY *key = read_private(pem, plen);
    if (!key || !EVP_PKEY_is_a(key, "RSA")) { err = "key"; goto done; }
    ctx = EVP_MD_CTX_new();
    if (!ctx || EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, key) != 1 ||
        EVP_DigestSign(ctx, NULL, &siglen, (const unsigned char *)msg, mlen) != 1) {
        err = "sign"; goto done;
    }
    sig = OPENSSL_malloc(siglen);
    if (!sig || EVP_DigestSign(ctx, sig, &siglen, (const unsigned char *)msg, mlen) != 1) err = "sign";
done:
    ERR_clear_error();
    EVP_MD_CTX_free(ctx);
    EVP_PKEY_free(key);
    if (err) {
        OPENSSL_free(sig);
        lua_pushnil(L);
        lua_pushstring(L, err);
        return 2;
    }
    /* copy into a Lua string only after the OpenSSL objects are gone; pushlstring may raise (OOM) */
    luaL_Buffer b;
    memcpy(luaL_buffinitsize(L, &b, siglen), sig, siglen);
    OPENSSL_free(sig);
    luaL_pushresultsize(&b, siglen);
    return 1;
}

static int c_rs256_verify(lua_State *L) {
    size_t plen, mlen, slen;
    const char *pem = luaL_checklstring(L, 1, &plen);
    const char *msg = luaL_checklstring(L, 2, &mlen);
    const char *sig = luaL_checklstring(L, 3, &slen);
    luaL_argcheck(L, plen <= INT_MAX, 1, "too long");
    EVP_PKEY *key = read_public(pem, plen, "RSA");
    if (!key || !EVP_PKEY_is_a(key, "RSA")) {
        EVP_PKEY_free(key);
        ERR_clear_error();
        lua_pushnil(L);
        lua_pushliteral(L, "key");
        return 2;
    }
    int ok = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx && EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, key) == 1)
        ok = EVP_DigestVerify(ctx, (const unsigned char *)sig, slen, (const unsigned char *)msg, mlen) == 1;
    EVP_MD_CTX_free(ctx);
    EVP_PKEY_free(key);
    ERR_clear_error();
    lua_pushboolean(L, ok);
    return 1;
}

/* ---- ES256 (ECDSA P-256 with SHA-256, JWS signature format: R || S, 32 bytes each) ---- */

#define ES256_HALF 32

static int is_p256(EVP_PKEY *key) {
    char group[32];
    return key && EVP_PKEY_is_a(key, "EC") &&
           EVP_PKEY_get_group_name(key, group, sizeof group, NULL) == 1 && strcmp(group, "prime256v1") == 0;
}

static int fail(lua_State *L, const char *err) {
    ERR_clear_error();
    lua_pushnil(L);
    lua_pushstring(L, err);
    return 2;
}

static int c_es256_sign(lua_State *L) {
    size_t plen, mlen, derlen = 0;
    const char *pem = luaL_checklstring(L, 1, &plen);
    const char *msg = luaL_checklstring(L, 2, &mlen);
    luaL_argcheck(L, plen <= INT_MAX, 1, "too long");
    unsigned char out[2 * ES256_HALF];
    const char *err = NULL;
    unsigned char *der = NULL;
    ECDSA_SIG *sig = NULL;
    EVP_MD_CTX *ctx = NULL;
    EVP_PKEY *key = read_private(pem, plen);
    if (!is_p256(key)) { err = "key"; goto done; }
    ctx = EVP_MD_CTX_new();
    if (!ctx || EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, key) != 1 ||
        EVP_DigestSign(ctx, NULL, &derlen, (const unsigned char *)msg, mlen) != 1 ||
        !(der = OPENSSL_malloc(derlen)) ||
        EVP_DigestSign(ctx, der, &derlen, (const unsigned char *)msg, mlen) != 1) {
        err = "sign"; goto done;
    }
    /* OpenSSL signs in DER (SEQUENCE of two INTEGERs); JWS wants both fixed-width, big-endian */
    const unsigned char *p = der;
    const BIGNUM *r, *s;
    if (!(sig = d2i_ECDSA_SIG(NULL, &p, (long)derlen))) { err = "sign"; goto done; }
    ECDSA_SIG_get0(sig, &r, &s);
    if (BN_bn2binpad(r, out, ES256_HALF) != ES256_HALF || BN_bn2binpad(s, out + ES256_HALF, ES256_HALF) != ES256_HALF)
        err = "sign";
done:
    ECDSA_SIG_free(sig);
    OPENSSL_free(der);
    EVP_MD_CTX_free(ctx);
    EVP_PKEY_free(key);
    if (err) return fail(L, err);
    lua_pushlstring(L, (const char *)out, sizeof out);
    return 1;
}

static int c_es256_verify(lua_State *L) {
    size_t plen, mlen, slen;
    const char *pem = luaL_checklstring(L, 1, &plen);
    const char *msg = luaL_checklstring(L, 2, &mlen);
    const unsigned char *jws = (const unsigned char *)luaL_checklstring(L, 3, &slen);
    luaL_argcheck(L, plen <= INT_MAX, 1, "too long");
    EVP_PKEY *key = read_public(pem, plen, "EC");
    if (!is_p256(key)) {
        EVP_PKEY_free(key);
        return fail(L, "key");
    }
    int ok = 0, derlen = 0;
    unsigned char *der = NULL;
    ECDSA_SIG *sig = NULL;
    BIGNUM *r = NULL, *s = NULL;
    EVP_MD_CTX *ctx = NULL;
    if (slen != 2 * ES256_HALF) goto done;        /* any other length is not an ES256 signature */
    r = BN_bin2bn(jws, ES256_HALF, NULL);
    s = BN_bin2bn(jws + ES256_HALF, ES256_HALF, NULL);
    if (!r || !s || !(sig = ECDSA_SIG_new()) || ECDSA_SIG_set0(sig, r, s) != 1) goto done;
    r = s = NULL;                                  /* owned by sig now */
    if ((derlen = i2d_ECDSA_SIG(sig, &der)) <= 0) goto done;
    ctx = EVP_MD_CTX_new();
    if (ctx && EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, key) == 1)
        ok = EVP_DigestVerify(ctx, der, (size_t)derlen, (const unsigned char *)msg, mlen) == 1;
done:
    BN_free(r);
    BN_free(s);
    ECDSA_SIG_free(sig);
    OPENSSL_free(der);
    EVP_MD_CTX_free(ctx);
    EVP_PKEY_free(key);
    ERR_clear_error();
    lua_pushboolean(L, ok);
    return 1;
}

/* ---- key pairs and JWKs ---- */

#define PEM_MAX 16384          /* an RSA 8192 private key in PEM is about 6.5 KB */
#define JWK_MAX 1024           /* the largest JWK member: an RSA 8192 modulus */

/* crypto.keygen("P-256") | crypto.keygen("RSA"[, bits]) -> PKCS#8 PEM of a new private key. */
static int c_keygen(lua_State *L) {
    static const char *const kinds[] = {"P-256", "RSA", NULL};
    int kind = luaL_checkoption(L, 1, NULL, kinds);
    lua_Integer bits = luaL_optinteger(L, 2, 2048);
    luaL_argcheck(L, kind != 1 || (bits >= 2048 && bits <= 8192), 2, "RSA bits must be 2048 to 8192");
    /* scratch first: nothing below may raise while OpenSSL objects are alive */
    char *out = lua_newuserdatauv(L, PEM_MAX, 0);
    EVP_PKEY *key = kind == 0 ? EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256")
                              : EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)bits);
    BIO *bio = key ? BIO_new(BIO_s_secmem()) : NULL;
    char *data = NULL;
    long n = 0;
    if (bio && PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL) == 1) n = BIO_get_mem_data(bio, &data);
    int ok = data && n > 0 && n <= PEM_MAX;
    if (ok) memcpy(out, data, (size_t)n);
    BIO_free(bio);
    EVP_PKEY_free(key);
    if (!ok) return fail(L, "keygen");
    lua_pushlstring(L, out, (size_t)n);
    OPENSSL_cleanse(out, (size_t)n);
    return 1;
}

/* big-endian bytes of a key's BIGNUM parameter, left-padded to width (0: minimal) -> length, or -1 */
static int bn_param(EVP_PKEY *key, const char *name, unsigned char *out, int width) {
    BIGNUM *bn = NULL;
    int n = -1;
    if (EVP_PKEY_get_bn_param(key, name, &bn) == 1 && BN_num_bytes(bn) <= (width ? width : JWK_MAX))
        n = width ? BN_bn2binpad(bn, out, width) : BN_bn2bin(bn, out);
    BN_free(bn);
    return n;
}

/* crypto.jwk(pem) -> the public JWK of a private or public key PEM: {kty="EC", crv="P-256", x=, y=} or
 * {kty="RSA", n=, e=} (members base64url). */
static int c_jwk(lua_State *L) {
    size_t plen;
    const char *pem = luaL_checklstring(L, 1, &plen);
    luaL_argcheck(L, plen <= INT_MAX, 1, "too long");
    unsigned char a[JWK_MAX], b[JWK_MAX];
    int na = -1, nb = -1, ec = 0;
    EVP_PKEY *key = read_private(pem, plen);
    if (!key) key = read_public(pem, plen, NULL);
    if (is_p256(key)) {
        ec = 1;
        na = bn_param(key, OSSL_PKEY_PARAM_EC_PUB_X, a, ES256_HALF);
        nb = bn_param(key, OSSL_PKEY_PARAM_EC_PUB_Y, b, ES256_HALF);
    } else if (key && EVP_PKEY_is_a(key, "RSA")) {
        na = bn_param(key, OSSL_PKEY_PARAM_RSA_N, a, 0);
        nb = bn_param(key, OSSL_PKEY_PARAM_RSA_E, b, 0);
    }
    EVP_PKEY_free(key);
    if (na <= 0 || nb <= 0) return fail(L, "key");
    ERR_clear_error();
    lua_createtable(L, 0, 4);
    lua_pushstring(L, ec ? "EC" : "RSA");
    lua_setfield(L, -2, "kty");
    if (ec) {
        lua_pushliteral(L, "P-256");
        lua_setfield(L, -2, "crv");
    }
    b64push(L, a, (size_t)na, 1);
    lua_setfield(L, -2, ec ? "x" : "n");
    b64push(L, b, (size_t)nb, 1);
    lua_setfield(L, -2, ec ? "y" : "e");
    return 1;
}

/* jwk[name] decoded from base64url into out -> length, or -1 (missing, not base64url, too long) */
static int jwk_member(lua_State *L, const char *name, unsigned char *out, size_t cap) {
    int n = -1;
    if (lua_getfield(L, 1, name) == LUA_TSTRING) {
        lua_pushcfunction(L, c_unb64url);
        lua_insert(L, -2);
        lua_call(L, 1, 1);
        size_t len;
        const char *s = lua_tolstring(L, -1, &len);
        if (s && len > 0 && len <= cap) {
            memcpy(out, s, len);
            n = (int)len;
        }
    }
    lua_pop(L, 1);
    return n;
}

/* crypto.jwk_pem(jwk) -> the "PUBLIC KEY" PEM of a public JWK (EC P-256 or RSA), e.g. to verify a JWS whose
 * header carries its key (DPoP proofs). */
static int c_jwk_pem(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_getfield(L, 1, "kty");
    const char *kty = lua_tostring(L, -1);
    int ec = kty && strcmp(kty, "EC") == 0, rsa = kty && strcmp(kty, "RSA") == 0;
    lua_pop(L, 1);
    lua_getfield(L, 1, "crv");
    const char *crv = lua_tostring(L, -1);
    if (ec && !(crv && strcmp(crv, "P-256") == 0)) ec = 0;
    lua_pop(L, 1);
    /* decode everything before any OpenSSL object exists (the decoding may raise on OOM) */
    unsigned char a[JWK_MAX], b[JWK_MAX], point[1 + 2 * ES256_HALF];
    int na = -1, nb = -1;
    if (ec) {
        na = jwk_member(L, "x", a, sizeof a);
        nb = jwk_member(L, "y", b, sizeof b);
        if (na != ES256_HALF || nb != ES256_HALF) ec = 0;
    } else if (rsa) {
        na = jwk_member(L, "n", a, sizeof a);
        nb = jwk_member(L, "e", b, 8);
        if (na < 64 || nb <= 0) rsa = 0;
    }
    if (!ec && !rsa) return fail(L, "key");
    char out[4096];
    long n = 0;
    EVP_PKEY *key = NULL;
    EVP_PKEY_CTX *pctx = EVP_PKEY_CTX_new_from_name(NULL, ec ? "EC" : "RSA", NULL);
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM *params = NULL;
    BIGNUM *bn_n = NULL, *bn_e = NULL;
    BIO *bio = NULL;
    char *data = NULL;
    if (!pctx || !bld) goto done;
    if (ec) {
        point[0] = 0x04;                           /* uncompressed point: 04 || x || y */
        memcpy(point + 1, a, ES256_HALF);
        memcpy(point + 1 + ES256_HALF, b, ES256_HALF);
        if (OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) != 1 ||
            OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, sizeof point) != 1)
            goto done;
    } else {
        bn_n = BN_bin2bn(a, na, NULL);
        bn_e = BN_bin2bn(b, nb, NULL);
        if (!bn_n || !bn_e || OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn_n) != 1 ||
            OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_e) != 1)
            goto done;
    }
    /* the EC import refuses a point that is not on the curve */
    if (!(params = OSSL_PARAM_BLD_to_param(bld)) || EVP_PKEY_fromdata_init(pctx) != 1 ||
        EVP_PKEY_fromdata(pctx, &key, EVP_PKEY_PUBLIC_KEY, params) != 1)
        goto done;
    if ((bio = BIO_new(BIO_s_mem())) && PEM_write_bio_PUBKEY(bio, key) == 1) {
        n = BIO_get_mem_data(bio, &data);
        if (data && n > 0 && n <= (long)sizeof out) memcpy(out, data, (size_t)n);
        else n = 0;
    }
done:
    BIO_free(bio);
    BN_free(bn_n);
    BN_free(bn_e);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    EVP_PKEY_CTX_free(pctx);
    EVP_PKEY_free(key);
    if (n <= 0) return fail(L, "key");
    ERR_clear_error();
    lua_pushlstring(L, out, (size_t)n);
    return 1;
}

/* ---- AES-256-GCM (exported for the unit tests' fixed-nonce vectors) ---- */

/* out receives len bytes of ciphertext, tag 16 bytes.  Returns 0 on success, -1 on failure. */
int crypto_gcm_seal(const unsigned char *key, const unsigned char *iv, const unsigned char *aad, size_t aadlen,
                    const unsigned char *pt, size_t len, unsigned char *out, unsigned char *tag) {
    if (len > INT_MAX || aadlen > INT_MAX) return -1;
    int outl, ok = 0;
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (ctx && EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, iv) == 1 &&
        (aadlen == 0 || EVP_EncryptUpdate(ctx, NULL, &outl, aad, (int)aadlen) == 1) &&
        EVP_EncryptUpdate(ctx, out, &outl, pt, (int)len) == 1 &&
        EVP_EncryptFinal_ex(ctx, out + outl, &outl) == 1 &&
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, GCM_TAG, tag) == 1)
        ok = 1;
    EVP_CIPHER_CTX_free(ctx);
    return ok ? 0 : -1;
}

/* Returns 0 and len bytes of plaintext in out if the tag checks, -1 otherwise. */
int crypto_gcm_open(const unsigned char *key, const unsigned char *iv, const unsigned char *aad, size_t aadlen,
                    const unsigned char *ct, size_t len, const unsigned char *tag, unsigned char *out) {
    if (len > INT_MAX || aadlen > INT_MAX) return -1;
    int outl, ok = 0;
    unsigned char tagcopy[GCM_TAG];
    memcpy(tagcopy, tag, GCM_TAG); /* the ctrl takes a non-const pointer */
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (ctx && EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, iv) == 1 &&
        (aadlen == 0 || EVP_DecryptUpdate(ctx, NULL, &outl, aad, (int)aadlen) == 1) &&
        EVP_DecryptUpdate(ctx, out, &outl, ct, (int)len) == 1 &&
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, GCM_TAG, tagcopy) == 1 &&
        EVP_DecryptFinal_ex(ctx, out + outl, &outl) == 1)
        ok = 1;
    EVP_CIPHER_CTX_free(ctx);
    if (!ok) OPENSSL_cleanse(out, len); /* never hand out unauthenticated plaintext */
    return ok ? 0 : -1;
}

static const unsigned char *check_key(lua_State *L) {
    size_t klen;
    const char *key = luaL_checklstring(L, 1, &klen);
    luaL_argcheck(L, klen == 32, 1, "key must be 32 bytes");
    return (const unsigned char *)key;
}

static int c_seal(lua_State *L) {
    const unsigned char *key = check_key(L);
    size_t len, aadlen = 0;
    const unsigned char *pt = (const unsigned char *)luaL_checklstring(L, 2, &len);
    const unsigned char *aad = (const unsigned char *)luaL_optlstring(L, 3, "", &aadlen);
    luaL_argcheck(L, len <= INT_MAX - GCM_NONCE - GCM_TAG, 2, "too long");
    size_t total = GCM_NONCE + len + GCM_TAG;
    unsigned char *out = lua_newuserdatauv(L, total, 0);
    if (RAND_bytes(out, GCM_NONCE) != 1) return luaL_error(L, "crypto.seal: RAND_bytes failed");
    if (crypto_gcm_seal(key, out, aad, aadlen, pt, len, out + GCM_NONCE, out + GCM_NONCE + len) != 0)
        return luaL_error(L, "crypto.seal: encryption failed");
    lua_pushlstring(L, (const char *)out, total);
    return 1;
}

static int c_open(lua_State *L) {
    const unsigned char *key = check_key(L);
    size_t len, aadlen = 0;
    const unsigned char *in = (const unsigned char *)luaL_checklstring(L, 2, &len);
    const unsigned char *aad = (const unsigned char *)luaL_optlstring(L, 3, "", &aadlen);
    if (len < GCM_NONCE + GCM_TAG) {
        lua_pushnil(L);
        lua_pushliteral(L, "auth");
        return 2;
    }
    size_t ctlen = len - GCM_NONCE - GCM_TAG;
    unsigned char *out = lua_newuserdatauv(L, ctlen ? ctlen : 1, 0);
    if (crypto_gcm_open(key, in, aad, aadlen, in + GCM_NONCE, ctlen, in + GCM_NONCE + ctlen, out) != 0) {
        lua_pushnil(L);
        lua_pushliteral(L, "auth");
        return 2;
    }
    lua_pushlstring(L, (const char *)out, ctlen);
    OPENSSL_cleanse(out, ctlen);
    return 1;
}

int luaopen_crypto(lua_State *L) {
    static const luaL_Reg fns[] = {
        {"sha256", c_sha256}, {"sha1", c_sha1}, {"hmac_sha256", c_hmac_sha256}, {"hmac_sha1", c_hmac_sha1},
        {"hex", c_hex}, {"equal", c_equal}, {"random", c_random},
        {"b64", c_b64}, {"unb64", c_unb64}, {"b64url", c_b64url}, {"unb64url", c_unb64url},
        {"rs256_sign", c_rs256_sign}, {"rs256_verify", c_rs256_verify},
        {"es256_sign", c_es256_sign}, {"es256_verify", c_es256_verify},
        {"keygen", c_keygen}, {"jwk", c_jwk}, {"jwk_pem", c_jwk_pem},
        {"seal", c_seal}, {"open", c_open}, {"scrypt", c_scrypt},
        {NULL, NULL}};
    luaL_newlib(L, fns);
    return 1;
}
