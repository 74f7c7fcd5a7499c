#ifndef TALLY_CDEFLATE_SHIM_H
#define TALLY_CDEFLATE_SHIM_H
#include <libdeflate.h>
#endif
