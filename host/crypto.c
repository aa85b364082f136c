/* crypto.c — the `crypto` Lua module: hashes, MACs, base64, RS256 and AES-256-GCM sealing.
 *
 * OpenSSL 3 EVP APIs only.  Output buffers are Lua-owned (luaL_Buffer or a scratch userdata), and every
 * OpenSSL object is freed before anything can raise, so no error path leaks.
 */
#include <limits.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/decoder.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include "host.h"

#define GCM_NONCE 12
#define GCM_TAG 16
#define RANDOM_MAX (1 << 20)

static int c_sha256(lua_State *L) {
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (!EVP_Digest(s, len, md, &mdlen, EVP_sha256(), NULL))
        return luaL_error(L, "crypto.sha256: digest failed");
    lua_pushlstring(L, (const char *)md, mdlen);
    return 1;
}

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

static int b64encode(lua_State *L, int url) {
    size_t len;
    const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &len);
    luaL_argcheck(L, len <= (size_t)INT_MAX / 4 * 3 - 3, 1, "too long");
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
 * often publish certificates). */
static EVP_PKEY *read_public(const char *pem, size_t len) {
    EVP_PKEY *k = NULL;
    OSSL_DECODER_CTX *dctx =
        OSSL_DECODER_CTX_new_for_pkey(&k, "PEM", NULL, "RSA", EVP_PKEY_PUBLIC_KEY, NULL, NULL);
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
    EVP_PKEY *key = read_public(pem, plen);
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
        {"sha256", c_sha256}, {"hmac_sha256", c_hmac_sha256}, {"hmac_sha1", c_hmac_sha1},
        {"hex", c_hex}, {"equal", c_equal}, {"random", c_random},
        {"b64", c_b64}, {"unb64", c_unb64}, {"b64url", c_b64url}, {"unb64url", c_unb64url},
        {"rs256_sign", c_rs256_sign}, {"rs256_verify", c_rs256_verify},
        {"seal", c_seal}, {"open", c_open},
        {NULL, NULL}};
    luaL_newlib(L, fns);
    return 1;
}
