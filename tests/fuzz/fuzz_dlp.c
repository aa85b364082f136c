/* fuzz_dlp.c — the DLP extractors (zip/docx/xlsx/pptx through host/zip.c) and detectors on fuzzed files
 * (tests/fuzz/dlp.lua). */
#include "fuzz.h"

FUZZ_HOST_TARGET("dlp", "")
