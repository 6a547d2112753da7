// PACT and DoReFa as fused, autograd-aware LibTorch operations.
//
// PACT (Choi et al. 2018, arXiv:1805.06085):
//   Eq. 1  y   = clip(x, 0, alpha) = 0.5 * (|x| - |x - alpha| + alpha)
//   Eq. 2  y_q = round(y * (2^k - 1) / alpha) * alpha / (2^k - 1)
//   Eq. 3  dy_q/dalpha = 1 where x >= alpha, else 0   (the STE treats round() as identity,
//          so the (2^k - 1)/alpha scale is not differentiated)
//          dy_q/dx = 1 where 0 <= x < alpha, else 0
// Boundaries: x == 0 passes gradient to x (it is inside [0, alpha)); x == alpha passes its
// gradient to alpha and none to x. bits == 0: clipping only (Eq. 1, no rounding).
// Floating point: alpha is first rounded to x's dtype; then scale = (2^k - 1) / alpha and
// step = alpha / (2^k - 1) are computed in double and rounded to x's dtype, and
// y_q = round(y * scale) * step in x's dtype, round half to even (torch.round). The fused
// kernels, the composed fallback and the test reference all compute exactly this.
// NaN inputs: y is NaN and the NaN element passes no gradient to x or alpha. Upstream gradients
// are selected, not multiplied: an inf/NaN gradient at a masked-out element gives exactly 0.
//
// DoReFa weights (Zhou et al. 2016, Eq. 9), used by PACT for weights:
//   w_q = 2 * quantize_k(tanh(w) / (2 * max|tanh(w)|) + 0.5) - 1,
//   quantize_k(a) = round((2^k - 1) * a) / (2^k - 1),
// one max per tensor (per layer). The gradient is that of the un-rounded expression (STE),
// including the dependence of max|tanh(w)| on w; like autograd's max(), that part is split
// evenly among the elements tied at the max. bits 0 or 32: identity. An all-zero w gives NaN
// (0 / 0) and any NaN in w makes every output NaN, as the composed expression does.
//
// CPU float/double tensors run fused, vectorized kernels (pact_kernels.h) under
// at::parallel_for; every reduction (dL/dalpha, max|tanh w|, the DoReFa dot product) sums
// fixed-size blocks in double and adds the blocks in order, so results are bitwise identical
// for any thread count. Other devices (CUDA) and dtypes fall back to composed ATen ops with the
// same semantics (their sums use ATen's own order). The fused path takes its outputs (y, the
// codes, dL/dx) from the buffer cache (buffer_cache.h), so a step that repeats reuses the
// addresses, and the cached lines, of the step before.
#ifndef PACT_QUANT_PACT_OPS_H_
#define PACT_QUANT_PACT_OPS_H_

#include <torch/types.h>

#include <cstdint>
#include <utility>
#include <vector>

namespace pact::quant {

// PACT activation with autograd. `alpha` is a one-element tensor (requires_grad as usual).
// The forward uses max(alpha, alpha_min) (the positivity guard; a NaN alpha also takes
// alpha_min); the gradient reaches alpha unchanged through the guard, so a clamped alpha can
// still recover. The effective alpha must be > 0. On the fused path the backward keeps 2 bits
// per element (PactCodes) instead of x.
torch::Tensor Pact(const torch::Tensor& x, const torch::Tensor& alpha, int64_t bits,
                   double alpha_min = 0.0);

// The alpha PACT's forward uses on inputs of `dtype`: max(alpha, alpha_min) (a NaN alpha takes
// alpha_min too), rounded to dtype. Checks that alpha has one element, bits is in [0, 16] and
// the result is > 0. Pact and the fused BatchNorm + PACT op (bn_act_ops.h) share it.
double PactForwardAlpha(const torch::Tensor& alpha, int64_t bits, double alpha_min,
                        torch::ScalarType dtype);

// DoReFa weight quantization with the straight-through gradient.
torch::Tensor DorefaWeight(const torch::Tensor& w, int64_t bits);

// The raw kernels (no autograd), exposed for tests and benchmarks. Outputs keep x's layout
// when x is dense (e.g. channels-last); other strided inputs are made contiguous first.
torch::Tensor PactForwardKernel(const torch::Tensor& x, double alpha, int64_t bits);
// Returns {grad_x, grad_alpha} in one pass; grad_alpha is a 0-dim tensor of x's dtype,
// summed in a fixed order (deterministic for any thread count).
std::pair<torch::Tensor, torch::Tensor> PactBackwardKernel(const torch::Tensor& grad_y,
                                                           const torch::Tensor& x, double alpha);

// What the fused PACT forward saves for its backward instead of x: 2 bits per element
// (kernels::PactMaskWord, a sixteenth of a float tensor's memory), packed in y's memory order,
// and y's geometry, which the upstream gradient is lined up with.
struct PactCodes {
  torch::Tensor words;  // uint8, 2 * kernels::PactMaskWords(numel) bytes
  std::vector<int64_t> sizes;
  std::vector<int64_t> strides;
};

// The fused forward that also returns the codes the backward needs: {y, codes}. CPU float or
// double only (see UsesFusedKernels).
std::pair<torch::Tensor, PactCodes> PactForwardWithCodesKernel(const torch::Tensor& x, double alpha,
                                                               int64_t bits);
// The backward from those codes: {grad_x, grad_alpha}, as PactBackwardKernel.
std::pair<torch::Tensor, torch::Tensor> PactBackwardFromCodesKernel(const torch::Tensor& grad_y,
                                                                    const PactCodes& codes);
// The codes as one kernels::kCode* byte per element, in y's layout (for tests and debugging).
torch::Tensor UnpackPactCodes(const PactCodes& codes);

// Outputs of at least this many bytes (y in the forward with codes, grad_x in the backward) are
// written with non-temporal stores: they cannot stay in the last-level cache anyway, and a
// normal store would first read each line in. Negative: the default, cpu0's L3 size (sysfs;
// 32 MiB when unknown). Values are the same either way. For tests and benchmarks; returns the
// previous setting.
int64_t SetPactStreamingBytes(int64_t bytes);

// True when `t` takes the fused kernels (a strided CPU float or double tensor); otherwise the
// ops above run composed ATen ops.
bool UsesFusedKernels(const torch::Tensor& t);

}  // namespace pact::quant

#endif  // PACT_QUANT_PACT_OPS_H_
