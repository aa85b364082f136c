/* pq_dl.c — loading libpq at run time (see pq_dl.h and dl.h for why). */
#include "pq_dl.h"

#include "dl.h"

PQ_DL_FUNCTIONS(DL_POINTER)

const char *pq_dl_load(void)
{
    static const struct dl_symbol symbols[] = {PQ_DL_FUNCTIONS(DL_SYMBOL)};
    static struct dl_library pq = {.soname = "libpq.so.5", .install = "apt-get install libpq5",
                                   .version = "libpq 14 or newer"};
    return dl_load(&pq, symbols, DL_COUNT(symbols));
}
