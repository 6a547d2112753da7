// The portable integer kernels compiled for AVX2 (int_kernels_portable_impl.h), for CPUs without
// AVX-512 VNNI; only called after int_kernels.cc checked the CPU.
#define INT_KERNELS_ISA avx2
#define INT_KERNELS_NAME "avx2"
#include "pact/deploy/int_kernels_portable_impl.h"
