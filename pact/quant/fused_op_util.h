// Helpers shared by the fused CPU ops (pact_ops.cc, lsq_ops.cc): how they walk a tensor, line
// an upstream gradient up with it, and sum blocks in a fixed order. Internal to pact/quant.
//
// Include only from translation units compiled with -fopenmp: at::parallel_for is a header
// template that runs on one thread otherwise (see :pact_ops in BUILD.bazel).
#ifndef PACT_QUANT_FUSED_OP_UTIL_H_
#define PACT_QUANT_FUSED_OP_UTIL_H_

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "pact/quant/pact_kernels.h"

namespace pact::quant::internal {

// Elements per parallel task for elementwise loops (ATen's own grain, at::internal::GRAIN_SIZE).
inline constexpr int64_t kGrain = 32768;
inline constexpr int64_t kBlocksPerTask = kGrain / kernels::kReduceBlock;

// `value` rounded to `dtype`, as ATen rounds a double scalar operand.
inline double RoundToDtype(double value, torch::ScalarType dtype) {
  switch (dtype) {
    case torch::kDouble:
      return value;
    case torch::kFloat:
      return static_cast<float>(value);
    default:
      return torch::scalar_tensor(value, torch::dtype(dtype)).item<double>();
  }
}

// A layout the kernels can walk linearly: every element exactly once, in memory order.
inline torch::Tensor Dense(const torch::Tensor& t) {
  return t.is_non_overlapping_and_dense() ? t : t.contiguous();
}

// An upstream gradient lined up element for element with a dense tensor of `sizes` and
// `strides`: either a tensor with those strides (copied into them if needed) or, for a gradient
// expanded from one value (what sum().backward() sends), that value broadcast without
// materializing it.
struct AlignedGrad {
  torch::Tensor tensor;
  bool broadcast = false;
};

inline AlignedGrad AlignGrad(const torch::Tensor& grad, torch::IntArrayRef sizes,
                             torch::IntArrayRef strides, torch::ScalarType dtype) {
  TORCH_CHECK(grad.sizes() == sizes, "gradient shape ", grad.sizes(),
              " does not match the forward's ", sizes);
  torch::Tensor g = grad.device().is_cpu() ? grad : grad.cpu();
  if (g.scalar_type() != dtype) g = g.to(dtype);
  const torch::IntArrayRef grad_strides = g.strides();
  const bool broadcast = g.numel() > 0 && std::all_of(grad_strides.begin(), grad_strides.end(),
                                                      [](int64_t s) { return s == 0; });
  if (broadcast || grad_strides == strides) return {g, broadcast};
  torch::Tensor aligned = at::empty_strided(sizes, strides, g.options());
  aligned.copy_(g);
  return {aligned, false};
}

// Runs fn(begin, end) on the blocks [b * kReduceBlock, (b + 1) * kReduceBlock) of [0, n) in
// parallel and returns the block results in block order. The caller combines them in that
// order, so a sum never depends on how many threads ran.
template <typename Result, typename Fn>
std::vector<Result> MapBlocks(int64_t n, const Fn& fn) {
  const int64_t blocks = (n + kernels::kReduceBlock - 1) / kernels::kReduceBlock;
  std::vector<Result> results(blocks);
  at::parallel_for(0, blocks, kBlocksPerTask, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) {
      results[b] = fn(b * kernels::kReduceBlock, std::min(n, (b + 1) * kernels::kReduceBlock));
    }
  });
  return results;
}

inline double SumInOrder(const std::vector<double>& values) {
  double sum = 0.0;
  for (double v : values) sum += v;
  return sum;
}

}  // namespace pact::quant::internal

#endif  // PACT_QUANT_FUSED_OP_UTIL_H_
