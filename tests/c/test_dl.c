/* test_dl.c — dl_load (host/dl.h): a library loaded at run time fills every pointer, and a library or a
 * function that is missing gives a message naming it and what to do, the same one on every later call. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "dl.h"

/* zlib: linked into cachost already, so loading it costs nothing and is always there */
#define Z_FUNCTIONS(X) X(const char *, zlibVersion, (void)) \
    X(unsigned long, crc32, (unsigned long, const unsigned char *, unsigned))
Z_FUNCTIONS(DL_POINTER)

static void test_loads_and_fills_every_pointer(void **state) {
    (void)state;
    static const struct dl_symbol symbols[] = {Z_FUNCTIONS(DL_SYMBOL)};
    struct dl_library z = {.soname = "libz.so.1", .install = "apt-get install zlib1g", .version = "zlib 1.2"};
    assert_null(dl_load(&z, symbols, DL_COUNT(symbols)));
    assert_non_null(z.handle);
    assert_true(dl_zlibVersion()[0] == '1');
    assert_int_equal(dl_crc32(0, (const unsigned char *)"123456789", 9), 0xCBF43926UL);   /* the CRC-32 check value */
    assert_null(dl_load(&z, symbols, DL_COUNT(symbols)));                                  /* once loaded, loaded */
}

static void test_a_missing_library_says_what_to_install(void **state) {
    (void)state;
    static const struct dl_symbol symbols[] = {Z_FUNCTIONS(DL_SYMBOL)};
    struct dl_library none = {.soname = "libcachost-absent.so.9", .install = "apt-get install absent9", .version = "-"};
    const char *why = dl_load(&none, symbols, DL_COUNT(symbols));
    assert_string_equal(why, "cannot load libcachost-absent.so.9 (apt-get install absent9)");
    assert_ptr_equal(dl_load(&none, symbols, DL_COUNT(symbols)), why);   /* not tried again */
    assert_null(none.handle);
}

static void test_a_missing_function_names_it_and_the_version_needed(void **state) {
    (void)state;
    void (*dl_absent)(void) = NULL;
    const struct dl_symbol symbols[] = {{"zlibVersion", (void **)&dl_zlibVersion}, {"cachost_absent", (void **)&dl_absent}};
    struct dl_library z = {.soname = "libz.so.1", .install = "apt-get install zlib1g", .version = "zlib 9.9 or newer"};
    const char *why = dl_load(&z, symbols, DL_COUNT(symbols));
    assert_string_equal(why, "libz.so.1 lacks cachost_absent (zlib 9.9 or newer)");
    assert_null(z.handle);
    assert_null(dl_absent);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loads_and_fills_every_pointer),
        cmocka_unit_test(test_a_missing_library_says_what_to_install),
        cmocka_unit_test(test_a_missing_function_names_it_and_the_version_needed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
