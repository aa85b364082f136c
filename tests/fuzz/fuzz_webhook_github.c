/* fuzz_webhook_github.c — the github connector's webhook entry (verifier and handler) on fuzzed requests
 * (tests/fuzz/webhook.lua says how an input becomes a request). */
#include "fuzz.h"

FUZZ_HOST_TARGET("webhook", "github")
