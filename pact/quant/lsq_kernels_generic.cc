// The LSQ kernels for any x86-64 CPU (SSE2); see lsq_kernels_impl.h.
#define LSQ_KERNEL_ISA generic
#include "pact/quant/lsq_kernels_impl.h"
