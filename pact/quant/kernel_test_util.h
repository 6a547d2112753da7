// Test helpers for the fused kernels (pact_kernels.h).
#ifndef PACT_QUANT_KERNEL_TEST_UTIL_H_
#define PACT_QUANT_KERNEL_TEST_UTIL_H_

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "pact/quant/pact_kernels.h"

namespace pact::quant {

// Shapes the op tests run on: scalars, lane tails, more than one reduction block, more than
// one parallel task.
inline const std::vector<std::vector<int64_t>>& TestShapes() {
  static const auto* shapes = new std::vector<std::vector<int64_t>>{
      {}, {1}, {7}, {3, 5}, {2, 3, 17, 19}, {5000}, {2, 16, 33, 33}};
  return *shapes;
}

inline torch::Generator Rng(uint64_t seed) { return at::detail::createCPUGenerator(seed); }

inline torch::Tensor Randn(at::IntArrayRef shape, torch::ScalarType dtype, uint64_t seed) {
  return torch::randn(shape, Rng(seed), torch::dtype(dtype));
}

// Small integers in [-8, 8]: every summation order of their products with values on a coarse
// grid gives the same, exact, result.
inline torch::Tensor IntegerGrad(at::IntArrayRef shape, torch::ScalarType dtype, uint64_t seed) {
  return torch::randint(-8, 9, shape, Rng(seed), torch::dtype(dtype));
}

// Bit-for-bit equality (NaN payloads and signed zeros included).
inline bool SameBits(const torch::Tensor& a, const torch::Tensor& b) {
  if (a.sizes() != b.sizes() || a.scalar_type() != b.scalar_type()) return false;
  const torch::Tensor ac = a.contiguous();
  const torch::Tensor bc = b.contiguous();
  return std::memcmp(ac.data_ptr(), bc.data_ptr(), ac.numel() * ac.element_size()) == 0;
}

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
