/* dl.h — a library loaded when the module that needs it first runs, not when the process starts.
 *
 * libcurl, libpq and poppler-glib each drag in tens of libraries (GnuTLS, Kerberos, LDAP, glib, cairo...)
 * whose loading alone would cost every start, `cachost version` included.  Their headers are used at build
 * time only; the functions a module calls are listed in an X-macro, X(ret, name, args) each, and called
 * through pointers dl_<name> that dl_load() fills:
 *
 *   #define FOO_FUNCTIONS(X) X(int, foo_open, (const char *)) ...
 *   FOO_FUNCTIONS(DL_POINTER)
 *   static const struct dl_symbol foo_symbols[] = {FOO_FUNCTIONS(DL_SYMBOL)};
 *   static struct dl_library foo = {.soname = "libfoo.so.1", .install = "apt-get install libfoo1",
 *                                   .version = "libfoo 1.2 or newer"};
 *   ... why = dl_load(&foo, foo_symbols, DL_COUNT(foo_symbols)) ... */
#ifndef CACHOST_DL_H
#define CACHOST_DL_H

#include <stddef.h>

#define DL_POINTER(ret, name, args) ret(*dl_##name) args;
#define DL_SYMBOL(ret, name, args) {#name, (void **)&dl_##name},
#define DL_COUNT(symbols) (sizeof(symbols) / sizeof *(symbols))

struct dl_symbol { const char *name; void **slot; };

/* soname, how to install it, the oldest version with every function listed; then dl_load's own state */
struct dl_library {
    const char *soname, *install, *version;
    void *handle;
    const char *failure;
    char why[192];
};

/* Opens lib->soname once and fills every slot (dlsym on the handle also searches its dependencies).
 * -> NULL, or a message saying why it could not be loaded (the same message on every later call). */
const char *dl_load(struct dl_library *lib, const struct dl_symbol *symbols, size_t n);

#endif
