/* test_crypto.c — the crypto module against published vectors (FIPS 180 SHA-256, RFC 4231, RFC 2202,
 * RFC 4648, RFC 7515 A.3's ES256 JWS, the GCM spec's test case 16) plus round trips and failure paths. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/encoder.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "host.h"
#include "lua_harness.h"

int luaopen_crypto(lua_State *L);
int crypto_gcm_seal(const unsigned char *key, const unsigned char *iv, const unsigned char *aad, size_t aadlen,
                    const unsigned char *pt, size_t len, unsigned char *out, unsigned char *tag);
int crypto_gcm_open(const unsigned char *key, const unsigned char *iv, const unsigned char *aad, size_t aadlen,
                    const unsigned char *ct, size_t len, const unsigned char *tag, unsigned char *out);

static const char *prelude =
    "function unhex(h) return (h:gsub('%x%x', function(x) return string.char(tonumber(x, 16)) end)) end\n";

static int setup(void **state) { return harness_open(state, "crypto", luaopen_crypto, prelude); }

static void test_sha256(void **state) {
    run(*state,
        "eq(crypto.hex(crypto.sha256('abc')), 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad', 'abc')\n"
        "eq(crypto.hex(crypto.sha256('')), 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855', 'empty')\n"
        "eq(crypto.hex(crypto.sha256('abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq')),"
        "   '248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1', '448 bits')\n"
        "eq(#crypto.sha256('x'), 32)\n"
        "eq(crypto.hex(crypto.sha1('abc')), 'a9993e364706816aba3e25717850c26c9cd0d89d', 'sha1 abc (FIPS 180 example)')\n"
        "assert(not pcall(crypto.sha256, {}))\n");
}

/* RFC 7914 section 12's vectors (the 1 GiB one excepted: over the module's memory cap), and the refusals. */
static void test_scrypt_rfc7914(void **state) {
    run(*state,
        "eq(crypto.hex(crypto.scrypt('', '', 16, 1, 1, 64)),"
        "   '77d6576238657b203b19ca42c18a0497f16b4844e3074ae8dfdffa3fede21442fcd0069ded0948f8326a753a0fc81f17e8d3e0fb2e0d3628cf35e20c38d18906', 'vector 1')\n"
        "eq(crypto.hex(crypto.scrypt('password', 'NaCl', 1024, 8, 16, 64)),"
        "   'fdbabe1c9d3472007856e7190d01e9fe7c6ad7cbc8237830e77376634b3731622eaf30d92e22a3886ff109279d9830dac727afb94a83ee6d8360cbdfa2cc0640', 'vector 2')\n"
        "eq(crypto.hex(crypto.scrypt('pleaseletmein', 'SodiumChloride', 16384, 8, 1, 64)),"
        "   '7023bdcb3afd7348461c06cd81fd38ebfda8fbba904f8e3ea9b543f6545da1f2d5432955613f0fcf62d49705242a9af9e61e85dc0d651e40dfcf017b45575887', 'vector 3')\n"
        "assert(not pcall(crypto.scrypt, 'x', 's', 1000, 8, 1, 32), 'N not a power of 2')\n"
        "assert(not pcall(crypto.scrypt, 'x', 's', 1 << 20, 8, 1, 32), 'over the memory cap')\n"
        "assert(not pcall(crypto.scrypt, 'x', 's', 16, 1, 1, 0), 'no length')\n");
}

static void test_hmac_sha256_rfc4231(void **state) {
    run(*state,
        "local k131 = string.rep('\\xaa', 131)\n"
        "local cases = {\n"
        " {string.rep('\\x0b', 20), 'Hi There', 'b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7'},\n"
        " {'Jefe', 'what do ya want for nothing?', '5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843'},\n"
        " {string.rep('\\xaa', 20), string.rep('\\xdd', 50), "
        "  '773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe'},\n"
        " {unhex('0102030405060708090a0b0c0d0e0f10111213141516171819'), string.rep('\\xcd', 50),"
        "  '82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b'},\n"
        " {k131, 'Test Using Larger Than Block-Size Key - Hash Key First',"
        "  '60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54'},\n"
        " {k131, 'This is a test using a larger than block-size key and a larger than block-size data. The key "
        "needs to be hashed before being used by the HMAC algorithm.',"
        "  '9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2'},\n"
        "}\n"
        "for i, c in ipairs(cases) do eq(crypto.hex(crypto.hmac_sha256(c[1], c[2])), c[3], 'case ' .. i) end\n"
        "assert(not pcall(crypto.hmac_sha256, 'k'))\n");
}

static void test_hmac_sha1_rfc2202(void **state) {
    run(*state,
        "eq(crypto.hex(crypto.hmac_sha1(string.rep('\\x0b', 20), 'Hi There')),"
        "   'b617318655057264e28bc0b6fb378c8ef146be00', 'case 1')\n"
        "eq(crypto.hex(crypto.hmac_sha1('Jefe', 'what do ya want for nothing?')),"
        "   'effcdf6ae5eb2fa2d27416d5f184df9c259a7c79', 'case 2')\n"
        "eq(crypto.hex(crypto.hmac_sha1(string.rep('\\xaa', 20), string.rep('\\xdd', 50))),"
        "   '125d7342b9ac11cd91a39af48aa17b4f63f175d3', 'case 3')\n");
}

static void test_hex_equal_random(void **state) {
    run(*state,
        "eq(crypto.hex(''), '')\n"
        "eq(crypto.hex('\\0\\1\\xff\\x10'), '0001ff10')\n"
        "assert(crypto.equal('abc', 'abc'))\n"
        "assert(crypto.equal('', ''))\n"
        "assert(not crypto.equal('abc', 'abd'))\n"
        "assert(not crypto.equal('abc', 'abcd'))\n"
        "assert(not crypto.equal('abc\\0', 'abc'))\n"
        "assert(not pcall(crypto.equal, 'a'))\n"
        "local a, b = crypto.random(32), crypto.random(32)\n"
        "eq(#a, 32); assert(a ~= b)\n"
        "eq(crypto.random(0), '')\n"
        "assert(not pcall(crypto.random, -1))\n"
        "assert(not pcall(crypto.random, 1 << 30))\n");
}

static void test_base64_rfc4648(void **state) {
    run(*state,
        "local v = {[''] = '', f = 'Zg==', fo = 'Zm8=', foo = 'Zm9v', foob = 'Zm9vYg==', fooba = 'Zm9vYmE=',"
        "           foobar = 'Zm9vYmFy'}\n"
        "for plain, enc in pairs(v) do\n"
        "  eq(crypto.b64(plain), enc, 'b64 ' .. plain)\n"
        "  eq(crypto.unb64(enc), plain, 'unb64 ' .. enc)\n"
        "  local url = enc:gsub('=', '')\n"
        "  eq(crypto.b64url(plain), url, 'b64url ' .. plain)\n"
        "  eq(crypto.unb64url(url), plain, 'unb64url ' .. url)\n"
        "  eq(crypto.unb64url(enc), plain, 'unb64url padded ' .. enc)\n"
        "end\n"
        /* the url alphabet: bytes fb ff fe encode to +/+ in standard, -_- in url */
        "eq(crypto.b64('\\xfb\\xff\\xfe'), '+//+')\n"
        "eq(crypto.b64url('\\xfb\\xff\\xfe'), '-__-')\n"
        "eq(crypto.unb64url('-__-'), '\\xfb\\xff\\xfe')\n"
        "eq(crypto.unb64('+//+'), '\\xfb\\xff\\xfe')\n"
        "local all = ''; for i = 0, 255 do all = all .. string.char(i) end\n"
        "eq(crypto.unb64(crypto.b64(all)), all, 'all bytes')\n"
        "eq(crypto.unb64url(crypto.b64url(all)), all, 'all bytes url')\n"
        "for _, bad in ipairs{'Zg=', 'Zg', 'Z===', 'Zm9v!', 'Zm=9', '====', 'Zm9v\\n', ' Zm9v', 'Z'} do\n"
        "  local s, err = crypto.unb64(bad)\n"
        "  eq(s, nil, 'unb64 ' .. bad); eq(err, 'invalid base64')\n"
        "end\n"
        "for _, bad in ipairs{'+//+', 'Z', 'Zg=', 'Zm9v*', 'Z==='} do\n"
        "  local s, err = crypto.unb64url(bad)\n"
        "  eq(s, nil, 'unb64url ' .. bad); eq(err, 'invalid base64')\n"
        "end\n");
}

/* Generate an RSA key and hand it to Lua as PEM globals priv / pub. */
static void set_pem(lua_State *L, const char *name, EVP_PKEY *k, int private) {
    BIO *bio = BIO_new(BIO_s_mem());
    assert_non_null(bio);
    assert_int_equal(private ? PEM_write_bio_PrivateKey(bio, k, NULL, NULL, 0, NULL, NULL)
                             : PEM_write_bio_PUBKEY(bio, k), 1);
    char *data;
    long n = BIO_get_mem_data(bio, &data);
    lua_pushlstring(L, data, (size_t)n);
    lua_setglobal(L, name);
    BIO_free(bio);
}

/* PKCS#1 "RSA PUBLIC KEY" PEM and a self-signed certificate PEM for the same key. */
static void set_pkcs1_and_cert(lua_State *L, EVP_PKEY *k) {
    unsigned char *data = NULL;
    size_t n = 0;
    OSSL_ENCODER_CTX *ectx = OSSL_ENCODER_CTX_new_for_pkey(k, EVP_PKEY_PUBLIC_KEY, "PEM", "type-specific", NULL);
    assert_non_null(ectx);
    assert_int_equal(OSSL_ENCODER_to_data(ectx, &data, &n), 1);
    OSSL_ENCODER_CTX_free(ectx);
    lua_pushlstring(L, (const char *)data, n);
    lua_setglobal(L, "pkcs1_pub");
    OPENSSL_free(data);

    X509 *x = X509_new();
    assert_non_null(x);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, k);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC, (const unsigned char *)"t", -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(x));
    assert_true(X509_sign(x, k, EVP_sha256()) > 0);
    BIO *bio = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_X509(bio, x), 1);
    char *pem;
    long len = BIO_get_mem_data(bio, &pem);
    lua_pushlstring(L, pem, (size_t)len);
    lua_setglobal(L, "cert");
    BIO_free(bio);
    X509_free(x);
}

static void test_rs256(void **state) {
    lua_State *L = *state;
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    EVP_PKEY *other = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    EVP_PKEY *ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    assert_non_null(k); assert_non_null(other); assert_non_null(ec);
    set_pem(L, "priv", k, 1);
    set_pem(L, "pub", k, 0);
    set_pem(L, "other_pub", other, 0);
    set_pem(L, "ec_priv", ec, 1);
    set_pkcs1_and_cert(L, k);
    EVP_PKEY_free(k); EVP_PKEY_free(other); EVP_PKEY_free(ec);
    run(L,
        "local sig = assert(crypto.rs256_sign(priv, 'header.payload'))\n"
        "eq(#sig, 256)\n"
        /* PKCS#1 v1.5 is deterministic */
        "eq(crypto.rs256_sign(priv, 'header.payload'), sig)\n"
        "eq(crypto.rs256_verify(pub, 'header.payload', sig), true)\n"
        "eq(crypto.rs256_verify(pub, 'header.payloaD', sig), false)\n"
        "assert(pkcs1_pub:find('BEGIN RSA PUBLIC KEY', 1, true))\n"
        "eq(crypto.rs256_verify(pkcs1_pub, 'header.payload', sig), true, 'pkcs1 public key')\n"
        "eq(crypto.rs256_verify(cert, 'header.payload', sig), true, 'certificate')\n"
        "eq(crypto.rs256_verify(cert, 'header.payloaD', sig), false, 'certificate, changed')\n"
        "eq(crypto.rs256_verify(other_pub, 'header.payload', sig), false)\n"
        "local bent = sig:sub(1, 10) .. string.char(sig:byte(11) ~ 1) .. sig:sub(12)\n"
        "eq(crypto.rs256_verify(pub, 'header.payload', bent), false)\n"
        "eq(crypto.rs256_verify(pub, 'header.payload', ''), false)\n"
        "local s, err = crypto.rs256_sign('not a key', 'x'); eq(s, nil); eq(err, 'key')\n"
        "s, err = crypto.rs256_sign(pub, 'x'); eq(s, nil); eq(err, 'key')\n"
        "s, err = crypto.rs256_sign(ec_priv, 'x'); eq(s, nil); eq(err, 'key')\n"
        "s, err = crypto.rs256_verify('garbage', 'x', sig); eq(s, nil); eq(err, 'key')\n"
        "assert(not pcall(crypto.rs256_sign, nil, 'x'))\n");
}

/* ES256, key generation and JWKs: RFC 7515 A.3's published ES256 JWS verifies with the key built from its
 * JWK; generated keys sign, their JWK rebuilds the same public key; bad keys and points are refused. */
static void test_es256_jwk(void **state) {
    run(*state,
        "local jwk = {kty = 'EC', crv = 'P-256', x = 'f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU',"
        "             y = 'x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0'}\n"
        "local pub = assert(crypto.jwk_pem(jwk))\n"
        "eq(pub, '-----BEGIN PUBLIC KEY-----\\n"
        "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEf83OJ3D2xF1Bg8vub9tLe1gHMzV7\\n"
        "6e8Tus9uPHvRVEXH8UTNG72bfocs3+257rn0s2ldbqkLJK2KRiMohYjlrQ==\\n"
        "-----END PUBLIC KEY-----\\n', 'SPKI of the JWK')\n"
        "local input = 'eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFt"
        "cGxlLmNvbS9pc19yb290Ijp0cnVlfQ'\n"
        "local sig = crypto.unb64url('DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q')\n"
        "eq(crypto.es256_verify(pub, input, sig), true, 'RFC 7515 A.3')\n"
        "eq(crypto.es256_verify(pub, input .. 'x', sig), false, 'changed input')\n"
        "eq(crypto.es256_verify(pub, input, sig:sub(1, 63)), false, 'short signature')\n"
        "eq(crypto.es256_verify(pub, input, string.rep('\\0', 64)), false, 'zero signature')\n"
        "local j2 = assert(crypto.jwk(pub)); eq(j2.kty, 'EC'); eq(j2.crv, 'P-256'); eq(j2.x, jwk.x); eq(j2.y, jwk.y)\n"
        /* a generated P-256 key: fresh each time, signs 64-byte JWS signatures its own JWK verifies */
        "local k = assert(crypto.keygen('P-256'))\n"
        "assert(k:find('BEGIN PRIVATE KEY', 1, true))\n"
        "assert(k ~= crypto.keygen('P-256'))\n"
        "local kj = assert(crypto.jwk(k)); eq(kj.kty, 'EC'); eq(kj.d, nil, 'no private member')\n"
        "local s = assert(crypto.es256_sign(k, 'a.b')); eq(#s, 64)\n"
        "eq(crypto.es256_verify(crypto.jwk_pem(kj), 'a.b', s), true)\n"
        "eq(crypto.es256_verify(pub, 'a.b', s), false, 'another key')\n"
        /* RSA: the JWK of a generated key rebuilds a key that verifies its RS256 signatures */
        "local r = assert(crypto.keygen('RSA'))\n"
        "local rj = assert(crypto.jwk(r)); eq(rj.kty, 'RSA'); eq(rj.e, 'AQAB'); eq(#crypto.unb64url(rj.n), 256)\n"
        "eq(crypto.rs256_verify(assert(crypto.jwk_pem(rj)), 'm', crypto.rs256_sign(r, 'm')), true)\n"
        /* refusals: operational failures are nil, 'key'; misuse raises */
        "local v, err = crypto.es256_sign(r, 'x'); eq(v, nil); eq(err, 'key')\n"
        "v, err = crypto.es256_sign('junk', 'x'); eq(v, nil); eq(err, 'key')\n"
        "v, err = crypto.es256_verify(crypto.jwk_pem(rj), 'x', s); eq(v, nil); eq(err, 'key')\n"
        "v, err = crypto.jwk('junk'); eq(v, nil); eq(err, 'key')\n"
        "v, err = crypto.jwk_pem({kty = 'EC', crv = 'P-256', x = jwk.x, y = jwk.x}); eq(v, nil, 'point off the curve'); eq(err, 'key')\n"
        "v, err = crypto.jwk_pem({kty = 'EC', crv = 'P-384', x = jwk.x, y = jwk.y}); eq(v, nil); eq(err, 'key')\n"
        "v, err = crypto.jwk_pem({kty = 'EC', crv = 'P-256', x = jwk.x}); eq(v, nil); eq(err, 'key')\n"
        "v, err = crypto.jwk_pem({kty = 'EC', crv = 'P-256', x = '!!', y = jwk.y}); eq(v, nil); eq(err, 'key')\n"
        "v, err = crypto.jwk_pem({kty = 'oct', k = 'AAAA'}); eq(v, nil); eq(err, 'key')\n"
        "assert(not pcall(crypto.jwk_pem, 'x'))\n"
        "assert(not pcall(crypto.keygen, 'P-384'))\n"
        "assert(not pcall(crypto.keygen, 'RSA', 1024))\n");
}

static const char *TC16 =
    "K = unhex('feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308')\n"
    "P = unhex('d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
    "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39')\n"
    "A = unhex('feedfacedeadbeeffeedfacedeadbeefabaddad2')\n"
    "IV = unhex('cafebabefacedbaddecaf888')\n"
    "C = unhex('522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
    "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662')\n"
    "T = unhex('76fc6ece0f4e1768cddf8853bb2d551b')\n";

static void test_gcm_vector_c(void **state) {
    lua_State *L = *state;
    run(L, TC16);
    const char *names[] = {"K", "P", "A", "IV", "C", "T"};
    const unsigned char *v[6];
    size_t len[6];
    for (int i = 0; i < 6; i++) {
        lua_getglobal(L, names[i]);
        v[i] = (const unsigned char *)lua_tolstring(L, -1, &len[i]);
    }
    unsigned char out[64], tag[16], back[64];
    assert_int_equal(len[1], 60);
    assert_int_equal(crypto_gcm_seal(v[0], v[3], v[2], len[2], v[1], len[1], out, tag), 0);
    assert_memory_equal(out, v[4], 60);
    assert_memory_equal(tag, v[5], 16);
    assert_int_equal(crypto_gcm_open(v[0], v[3], v[2], len[2], out, 60, tag, back), 0);
    assert_memory_equal(back, v[1], 60);
    tag[0] ^= 1;
    assert_int_equal(crypto_gcm_open(v[0], v[3], v[2], len[2], out, 60, tag, back), -1);
    lua_settop(L, 0);
}

static void test_seal_open(void **state) {
    lua_State *L = *state;
    run(L, TC16);
    run(L,
        /* open() of the published vector laid out as nonce .. ct .. tag */
        "local sealed = IV .. C .. T\n"
        "eq(crypto.open(K, sealed, A), P, 'vector')\n"
        "local function fails(key, s, aad, what)\n"
        "  local p, err = crypto.open(key, s, aad); eq(p, nil, what); eq(err, 'auth', what)\n"
        "end\n"
        "fails(K, sealed, nil, 'missing aad')\n"
        "fails(K, sealed, A .. 'x', 'wrong aad')\n"
        "fails(string.rep('k', 32), sealed, A, 'wrong key')\n"
        "fails(K, IV .. C .. T:sub(1, 15) .. 'x', A, 'tag')\n"
        "fails(K, IV .. 'x' .. C:sub(2) .. T, A, 'ciphertext')\n"
        "fails(K, 'y' .. IV:sub(2) .. C .. T, A, 'nonce')\n"
        "fails(K, sealed:sub(1, 27), A, 'short')\n"
        "fails(K, '', A, 'empty')\n"
        /* round trips with random nonces */
        "local key = crypto.random(32)\n"
        "for _, pt in ipairs{'', 'x', 'secret token', string.rep('z', 100000)} do\n"
        "  local s1, s2 = crypto.seal(key, pt), crypto.seal(key, pt)\n"
        "  eq(#s1, 12 + #pt + 16); assert(s1 ~= s2, 'nonce must differ')\n"
        "  eq(crypto.open(key, s1), pt); eq(crypto.open(key, s2), pt)\n"
        "  local s3 = crypto.seal(key, pt, 'instance:1')\n"
        "  eq(crypto.open(key, s3, 'instance:1'), pt); eq(crypto.open(key, s3, 'instance:2'), nil)\n"
        "  if #pt >= 8 then assert(not s1:find(pt, 1, true)) end\n"
        "end\n"
        /* misuse raises */
        "assert(not pcall(crypto.seal, 'short', 'x'))\n"
        "assert(not pcall(crypto.open, string.rep('k', 33), sealed))\n"
        "assert(not pcall(crypto.seal, key))\n");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_sha256, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hmac_sha256_rfc4231, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hmac_sha1_rfc2202, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hex_equal_random, setup, teardown),
        cmocka_unit_test_setup_teardown(test_base64_rfc4648, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rs256, setup, teardown),
        cmocka_unit_test_setup_teardown(test_es256_jwk, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gcm_vector_c, setup, teardown),
        cmocka_unit_test_setup_teardown(test_seal_open, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scrypt_rfc7914, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
