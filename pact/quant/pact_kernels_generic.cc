// The kernels for any x86-64 CPU (SSE2); see pact_kernels_impl.h.
#define PACT_KERNEL_ISA generic
#include "pact/quant/pact_kernels_impl.h"
