// The portable integer kernels for any CPU (int_kernels_portable_impl.h).
#define INT_KERNELS_ISA generic
#define INT_KERNELS_NAME "generic"
#include "pact/deploy/int_kernels_portable_impl.h"
