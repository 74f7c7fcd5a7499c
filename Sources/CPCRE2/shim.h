#ifndef TALLY_CPCRE2_SHIM_H
#define TALLY_CPCRE2_SHIM_H
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

/// PCRE2_ZERO_TERMINATED and PCRE2_UNSET overflow Int when imported; expose them as functions.
static inline PCRE2_SIZE tally_pcre2_zero_terminated(void) { return PCRE2_ZERO_TERMINATED; }
static inline PCRE2_SIZE tally_pcre2_unset(void) { return PCRE2_UNSET; }
#endif
