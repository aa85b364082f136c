/* test_geoip.c — the geoip module on databases written by tests/mmdb_writer.lua: lookups (IPv4, IPv6,
 * a split network), misses, a record without a location, malformed addresses, unopenable files, lookup
 * errors (IPv6 in an IPv4 database, a corrupt record), metadata, and closed or collected handles. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "host.h"
#include "lua_harness.h"

int luaopen_geoip(lua_State *L);

/* mmdb = the writer; PATH = a database of a few cities; V4 = an IPv4-only one with a corrupt record */
static const char *prelude =
    "mmdb = dofile('" CACHOST_ROOT "/tests/mmdb_writer.lua')\n"
    "local C = mmdb.CITIES\n"
    "PATH = os.tmpname(); V4 = os.tmpname()\n"
    "mmdb.write(PATH, { record_size = 28, networks = {\n"
    "  {'81.2.69.0/24', mmdb.city(C.paris)}, {'81.2.69.128/25', mmdb.city(C.versailles)},\n"
    "  {'2001:db8::/32', mmdb.city(C.tokyo)}, {'10.0.0.0/8', {country = {iso_code = 'ZZ'}}} } })\n"
    "mmdb.write(V4, { ip_version = 4, database_type = 'Test-V4', build_epoch = 1234, networks = {\n"
    "  {'81.2.69.0/24', mmdb.city(C.paris)},\n"
    "  {'5.5.5.0/24', {location = {latitude = mmdb.raw('\\x63\\0\\0\\0'), longitude = 1.5}}} } })\n";

static int setup(void **state) { return harness_open(state, "geoip", luaopen_geoip, prelude); }

static int teardown_files(void **state) {
    run(*state, "os.remove(PATH); os.remove(V4)");
    return teardown(state);
}

static void test_lookup(void **state) {
    run(*state,
        "local db = assert(geoip.open(PATH))\n"
        "local r = assert(db:lookup('81.2.69.5'))\n"
        "eq(r.lat, 48.8566, 'lat'); eq(r.lon, 2.3522, 'lon'); eq(r.accuracy_km, 20, 'accuracy')\n"
        "eq(math.type(r.accuracy_km), 'integer', 'accuracy type')\n"
        "eq(r.city, 'Paris', 'city'); eq(r.country, 'FR', 'country'); eq(r.subdivision, 'IDF', 'subdivision')\n"
        "eq(db:lookup('81.2.69.129').city, 'Versailles', 'the more specific network')\n"
        "eq(db:lookup('81.2.69.127').city, 'Paris', 'the rest of the /24')\n"
        "r = assert(db:lookup('2001:db8:ffff::1'))\n"
        "eq(r.city, 'Tokyo', 'ipv6'); eq(r.subdivision, '13', 'ipv6 subdivision'); eq(r.lon, 139.6503, 'ipv6 lon')\n"
        /* a record without location or city: only what is there */
        "r = assert(db:lookup('10.200.0.1'))\n"
        "eq(r.country, 'ZZ', 'country only'); eq(r.lat, nil, 'no lat'); eq(r.city, nil, 'no city')\n"
        "eq(r.subdivision, nil, 'no subdivision')\n"
        "local m = db:metadata()\n"
        "eq(m.database_type, 'GeoLite2-City', 'type'); eq(m.build_epoch, 1700000000, 'epoch')\n"
        "eq(m.ip_version, 6, 'ip version'); eq(m.record_size, 28, 'record size')\n"
        "db:close()\n");
}

static void test_miss_and_bad_address(void **state) {
    run(*state,
        "local db = assert(geoip.open(PATH))\n"
        "local r, err = db:lookup('1.1.1.1'); eq(r, nil, 'miss'); eq(err, nil, 'a miss is no error')\n"
        "r, err = db:lookup('2001:db9::1'); eq(r, nil, 'ipv6 miss'); eq(err, nil, 'ipv6 miss err')\n"
        "for _, bad in ipairs{'', 'x', '127.1', '0x7f.0.0.1', '1.2.3.4.5', '256.1.1.1', '::1::2', 'localhost',\n"
        "                     '1.2.3.4 ', 'fe80::1%lo'} do\n"
        "  r, err = db:lookup(bad); eq(r, nil, bad); eq(err, 'bad_address', bad)\n"
        "end\n"
        "assert(not pcall(db.lookup, db), 'missing ip raises')\n"
        "assert(not pcall(db.lookup, db, {}), 'table ip raises')\n"
        "assert(not pcall(db.lookup, {}, '1.1.1.1'), 'not a db raises')\n"
        "db:close()\n");
}

static void test_lookup_errors(void **state) {
    run(*state,
        "local db = assert(geoip.open(V4))\n"
        "eq(db:lookup('81.2.69.5').city, 'Paris', 'ipv4 db')\n"
        "local r, err = db:lookup('2001:db8::1'); eq(r, nil, 'ipv6 in v4')\n"
        "eq(err, 'geoip: You attempted to look up an IPv6 address in an IPv4-only database', 'v6 err')\n"
        "r, err = db:lookup('5.5.5.5'); eq(r, nil, 'corrupt record')\n"
        "assert(err:match('^geoip: The MaxMind DB file\\'s data section contains bad data'), err)\n"
        "local m = db:metadata(); eq(m.ip_version, 4, 'v4'); eq(m.database_type, 'Test-V4', 'type')\n"
        "eq(m.build_epoch, 1234, 'epoch')\n"
        "db:close()\n");
}

static void test_bad_path(void **state) {
    run(*state,
        "local db, err = geoip.open('/nonexistent/GeoLite2-City.mmdb'); eq(db, nil, 'missing')\n"
        "eq(err, 'geoip: Error opening the specified MaxMind DB file: /nonexistent/GeoLite2-City.mmdb "
        "(No such file or directory)', 'missing err')\n"
        "local junk = os.tmpname(); local f = io.open(junk, 'wb'); f:write(('x'):rep(1000)); f:close()\n"
        "db, err = geoip.open(junk); os.remove(junk); eq(db, nil, 'junk')\n"
        "assert(err:match('^geoip: The MaxMind DB file contains invalid metadata: '), err)\n"
        /* a metadata marker with nothing valid after it */
        "f = io.open(junk, 'wb'); f:write(('\\0'):rep(64) .. '\\xAB\\xCD\\xEFMaxMind.com\\xe0'); f:close()\n"
        "db, err = geoip.open(junk); os.remove(junk); eq(db, nil, 'empty metadata')\n"
        "assert(err:match('^geoip: '), err)\n"
        "db, err = geoip.open('/'); eq(db, nil, 'a directory'); assert(err:match('^geoip: '), err)\n"
        "assert(not pcall(geoip.open), 'no path raises')\n");
}

static void test_closed(void **state) {
    run(*state,
        "local db = assert(geoip.open(PATH))\n"
        "eq(tostring(db), 'geoip.db', 'open')\n"
        "db:close(); db:close()\n"
        "eq(tostring(db), 'geoip.db (closed)', 'closed')\n"
        "local ok, err = pcall(db.lookup, db, '81.2.69.5'); eq(ok, false, 'lookup on closed')\n"
        "assert(err:match('closed database'), err)\n"
        "ok, err = pcall(db.metadata, db); eq(ok, false, 'metadata on closed')\n"
        /* <close> and collection release the mapping (ASan/LSan would see a leak) */
        "do local c <close> = assert(geoip.open(PATH)); eq(c:lookup('81.2.69.5').city, 'Paris', 'close var') end\n"
        "for i = 1, 50 do assert(geoip.open(PATH)) end\n"
        "collectgarbage(); collectgarbage()\n"
        "local kept = assert(geoip.open(PATH))\n"    /* left for lua_close to collect */
        "_G.kept = kept\n");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_lookup, setup, teardown_files),
        cmocka_unit_test_setup_teardown(test_miss_and_bad_address, setup, teardown_files),
        cmocka_unit_test_setup_teardown(test_lookup_errors, setup, teardown_files),
        cmocka_unit_test_setup_teardown(test_bad_path, setup, teardown_files),
        cmocka_unit_test_setup_teardown(test_closed, setup, teardown_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
