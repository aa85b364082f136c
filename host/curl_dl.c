/* curl_dl.c — loading libcurl at run time (see curl_dl.h for why). */
#include "curl_dl.h"

#include <dlfcn.h>
#include <stddef.h>

#define CURL_DL_DEFINE(ret, name, args) ret(*dl_##name) args;
CURL_DL_FUNCTIONS(CURL_DL_DEFINE)

const char *curl_dl_load(void)
{
    static void *lib;
    static const char *failure;
    if (lib || failure) return failure;
    void *h = dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL);
    if (!h) return failure = "cannot load libcurl.so.4 (apt-get install libcurl4)";
#define CURL_DL_RESOLVE(ret, name, args)                                          \
    if (!(*(void **)&dl_##name = dlsym(h, #name))) {                               \
        dlclose(h);                                                                \
        return failure = "libcurl.so.4 lacks " #name " (libcurl 7.84 or newer)";  \
    }
    CURL_DL_FUNCTIONS(CURL_DL_RESOLVE)
    lib = h;
    return NULL;
}
