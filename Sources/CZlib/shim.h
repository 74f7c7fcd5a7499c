#ifndef TALLY_CZLIB_SHIM_H
#define TALLY_CZLIB_SHIM_H
#include <zlib.h>

/// inflateInit2 is a macro Swift cannot import; this wraps it.
static inline int tally_inflateInit2(z_streamp strm, int windowBits) {
    return inflateInit2(strm, windowBits);
}
#endif
