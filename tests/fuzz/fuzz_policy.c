/* fuzz_policy.c — the policy loader (scripts/policy/load.lua) on fuzzed policy texts, and the engine on what loads
 * (tests/fuzz/policy.lua). */
#include "fuzz.h"

FUZZ_HOST_TARGET("policy", "")
