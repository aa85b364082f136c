/* fuzz_pdf.c — the PDF extractor (host/pdf.c: poppler in a forked, confined child) on fuzzed documents
 * (tests/fuzz/pdf.lua says why the fork is kept). */
#include "fuzz.h"

FUZZ_HOST_TARGET("pdf", "")
