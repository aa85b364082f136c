/* fuzz_webhook_box.c — the box connector's webhook entry (verifier and handler) on fuzzed requests
 * (tests/fuzz/webhook.lua says how an input becomes a request). */
#include "fuzz.h"

FUZZ_HOST_TARGET("webhook", "box")
