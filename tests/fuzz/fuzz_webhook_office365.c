/* fuzz_webhook_office365.c — the office365 connector's webhook entry (verifier and handler) on fuzzed requests
 * (tests/fuzz/webhook.lua says how an input becomes a request). */
#include "fuzz.h"

FUZZ_HOST_TARGET("webhook", "office365")
