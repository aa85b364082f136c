/* fuzz_client.c — what scripts/sdk/client.lua makes of a provider's answer: Link header, listing shape, redaction
 * of error bodies (tests/fuzz/client.lua). */
#include "fuzz.h"

FUZZ_HOST_TARGET("client", "")
