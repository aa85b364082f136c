/* dl.c — loading a library at run time (see dl.h for why). */
#include "dl.h"

#include <dlfcn.h>
#include <stdio.h>

const char *dl_load(struct dl_library *lib, const struct dl_symbol *symbols, size_t n)
{
    if (lib->handle || lib->failure) return lib->failure;
    void *h = dlopen(lib->soname, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        snprintf(lib->why, sizeof lib->why, "cannot load %s (%s)", lib->soname, lib->install);
        return lib->failure = lib->why;
    }
    for (size_t i = 0; i < n; i++) {
        if (!(*symbols[i].slot = dlsym(h, symbols[i].name))) {
            dlclose(h);
            snprintf(lib->why, sizeof lib->why, "%s lacks %s (%s)", lib->soname, symbols[i].name, lib->version);
            return lib->failure = lib->why;
        }
    }
    lib->handle = h;
    return NULL;
}
