// The kernels built with -mavx2 -mfma (BUILD.bazel); only called when the CPU reports both
// (pact_kernels.cc). FMA contraction stays off (-ffp-contract=off) to keep results identical
// to the generic build.
#define PACT_KERNEL_ISA avx2
#include "pact/quant/pact_kernels_impl.h"
