// Test helpers for the fused kernels (pact_kernels.h).
#ifndef PACT_QUANT_KERNEL_TEST_UTIL_H_
#define PACT_QUANT_KERNEL_TEST_UTIL_H_

#include <ATen/Parallel.h>

#include "pact/quant/pact_kernels.h"

namespace pact::quant {

// Restores the intra-op thread count and the kernel ISA that a test changes.
class ScopedThreadsAndIsa {
 public:
  ScopedThreadsAndIsa() : threads_(at::get_num_threads()), isa_(kernels::ActiveKernelIsa()) {}
  ~ScopedThreadsAndIsa() {
    at::set_num_threads(threads_);
    kernels::SetKernelIsa(isa_);
  }

 private:
  int threads_;
  kernels::KernelIsa isa_;
};

}  // namespace pact::quant

#endif  // PACT_QUANT_KERNEL_TEST_UTIL_H_
