#ifndef TALLY_CMEMORY_SHIM_H
#define TALLY_CMEMORY_SHIM_H
#include <stddef.h>
#if defined(__GLIBC__) || defined(__linux__)
#include <malloc.h>
#endif

/// Asks the CPU to start loading the cache line at `address` for a write soon. A hint only: it never faults, so an
/// address that is stale or out of range costs nothing but the hint. Swift has no prefetch of its own.
static inline void tally_prefetch(const void *address) { __builtin_prefetch(address, 1, 3); }

/// Returns the memory malloc holds free to the system (glibc's `malloc_trim`, which Swift's Glibc module leaves
/// out); a no-op elsewhere.
static inline void tally_release_free_memory(void) {
#if defined(__GLIBC__)
    malloc_trim(0);
#endif
}

/// Has malloc take blocks of `bytes` and more straight from the system and give them straight back when freed
/// (glibc's `M_MMAP_THRESHOLD`, which otherwise rises to the size of each big block freed); a no-op elsewhere.
static inline void tally_map_blocks_from(size_t bytes) {
#if defined(__GLIBC__)
    mallopt(M_MMAP_THRESHOLD, (int)bytes);
#endif
}
#endif
