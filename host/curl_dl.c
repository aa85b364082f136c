/* curl_dl.c — loading libcurl at run time (see curl_dl.h and dl.h for why). */
#include "curl_dl.h"

#include "dl.h"

CURL_DL_FUNCTIONS(DL_POINTER)

const char *curl_dl_load(void)
{
    static const struct dl_symbol symbols[] = {CURL_DL_FUNCTIONS(DL_SYMBOL)};
    static struct dl_library curl = {.soname = "libcurl.so.4", .install = "apt-get install libcurl4",
                                     .version = "libcurl 7.84 or newer"};
    return dl_load(&curl, symbols, DL_COUNT(symbols));
}
