// The LSQ kernels built with -mavx2 -mfma (BUILD.bazel); only called when the CPU reports both
// (lsq_kernels.cc follows pact_kernels.cc's check). FMA contraction stays off
// (-ffp-contract=off) to keep results identical to the generic build.
#define LSQ_KERNEL_ISA avx2
#include "pact/quant/lsq_kernels_impl.h"
