#ifndef TALLY_CPREFETCH_SHIM_H
#define TALLY_CPREFETCH_SHIM_H
/// Asks the CPU to start loading the cache line at `address` for a write soon. A hint only: it never faults, so an
/// address that is stale or out of range costs nothing but the hint. Swift has no prefetch of its own.
static inline void tally_prefetch(const void *address) { __builtin_prefetch(address, 1, 3); }
#endif
