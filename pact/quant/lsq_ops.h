// LSQ, Learned Step Size Quantization (Esser et al. 2019, arXiv:1902.08153), as a fused,
// autograd-aware LibTorch operation.
//
// With step s > 0 and the integer range [-Qn, Qp] (LsqRange):
//   Eq. 1  v_bar = round(clip(v / s, -Qn, Qp))
//   Eq. 2  v_hat = v_bar * s
//   Eq. 3  dv_hat/ds = -Qn                     where v / s <= -Qn
//                      round(v / s) - v / s    where -Qn < v / s < Qp
//                      Qp                      where v / s >= Qp
//   Eq. 5  dv_hat/dv = 1 where -Qn < v / s < Qp (STRICT: the straight-through estimator), else 0
// and, to balance the step's update against the weights' (Eq. 4's ratio R, Section 2.2), the
// step's gradient is scaled by g = 1 / sqrt(N * Qp) (N: weights per layer, or features per
// example for activations), which the caller computes and passes as `grad_scale`. So dL/dx =
// dL/dy on the strict inside, and dL/dstep = grad_scale * sum(dL/dy * dv_hat/ds).
// Boundaries, as Eq. 3 and 5 say: an element with v / s == Qp exactly passes no gradient to x and
// Qp (times its upstream gradient) to the step; v / s == -Qn likewise with -Qn. With the unsigned
// range (Qn = 0, for activations after a ReLU position) every x <= 0 gives y = 0 and no
// gradient at all: LSQ does the ReLU's job. The common Python formulation
// round_ste(clamp(x / s, -Qn, Qp)) * s differs from this only at v / s == -Qn or Qp exactly,
// where clamp's autograd passes the gradient to x (inclusive bounds) and gives the step 0.
//
// Floating point: the step is first rounded to x's dtype (after the guard, see Lsq); then, all
// in x's dtype, q = x / s (true division), c = clip(q, -Qn, Qp) (q replaced only when strictly
// outside, so NaN stays NaN and -0.0 stays -0.0; -Qn = 0 is +0.0, so with the unsigned range
// every x < 0 gives +0.0), r = round(c) with ties to even (torch.round) and y = r * s (no
// FMA). r - q is exact inside (|r - q| <= 0.5 and a multiple of q's ulp). The
// fused kernels, the composed fallback and the test reference (reference_ops.h) all compute
// exactly this, so forward values agree bit for bit.
// NaN inputs: y is NaN and the element passes no gradient to x or to the step. Upstream
// gradients are selected, not multiplied: an inf/NaN gradient where dL/dx is 0 gives exactly 0
// in dL/dx, and an element whose dv_hat/ds is 0 (NaN x, x <= 0 with Qn = 0, v / s exactly on a
// level) adds exactly 0 to the step's sum. The sum of dL/dy * dv_hat/ds is taken in double (each
// product in double, exact for float inputs) and multiplied by grad_scale in double; dL/dstep is
// then rounded to the step's dtype and shape.
//
// CPU float/double tensors run fused, vectorized kernels (lsq_kernels.h) under at::parallel_for:
// the forward reads x and writes y; the backward saves x (Eq. 3's r - q needs q = x / s itself,
// which per-element codes could not give) and, in one pass, writes dL/dx and sums fixed-size blocks
// in double, adding the blocks in order, so results are bitwise identical for any thread count
// and either kernel build. Outputs keep x's dense layout (e.g. channels-last; other strided
// inputs are made contiguous) and come from the buffer cache (buffer_cache.h). Other devices
// (CUDA) and dtypes (half, bfloat16) fall back to composed ATen ops with the same semantics
// (their sums use ATen's order; CPU half computes in float, which rounds to the same values).
#ifndef PACT_QUANT_LSQ_OPS_H_
#define PACT_QUANT_LSQ_OPS_H_

#include <torch/types.h>

#include <cstdint>
#include <utility>

namespace pact::quant {

// The integer range [-qn, qp] of the codes (Eq. 1's Qn and Qp).
struct LsqRange {
  int64_t qn;
  int64_t qp;
};

// {0, 2^bits - 1}, for activations (unsigned data); bits in [1, 16].
LsqRange LsqUnsignedRange(int64_t bits);
// {2^(bits - 1), 2^(bits - 1) - 1}, for weights (signed data); bits in [2, 16].
LsqRange LsqSignedRange(int64_t bits);

// LSQ with autograd. `step` is a one-element tensor (requires_grad as usual). The forward uses
// s = max(step, step_min) (the positivity guard; a NaN step takes step_min too) rounded to x's
// dtype, which must be > 0; the gradient reaches `step` unchanged through the guard, so a
// clamped step can still recover. dL/dstep = grad_scale * sum(dL/dy * dv_hat/ds),
// shaped and typed like `step` (Eq. 3 and the gradient scale above). range: 0 <= qn, qp <= 2^16 and
// qn + qp >= 1 (as the two functions above return).
torch::Tensor Lsq(const torch::Tensor& x, const torch::Tensor& step, LsqRange range,
                  double grad_scale, double step_min = 0.0);

// The paper's initial step (Section 2.1): 2 * mean(|x|) / sqrt(qp), the mean over all of x's
// elements taken in double. x must not be empty and qp >= 1. An all-zero x gives 0 (pass a step_min
// to Lsq).
double LsqInitialStep(const torch::Tensor& x, int64_t qp);

// The raw kernels (no autograd), exposed for tests and benchmarks. `step` is rounded to x's
// dtype and must then be > 0 (no guard). Outputs keep x's layout when x is dense (e.g.
// channels-last); other strided inputs are made contiguous first.
torch::Tensor LsqForwardKernel(const torch::Tensor& x, double step, LsqRange range);
// Returns {grad_x, sum} in one pass: sum is the UNSCALED sum of dL/dy * dv_hat/ds (multiply by
// grad_scale for dL/dstep), a 0-dim tensor of x's dtype, summed in a fixed order (deterministic
// for any thread count).
std::pair<torch::Tensor, torch::Tensor> LsqBackwardKernel(const torch::Tensor& grad_y,
                                                          const torch::Tensor& x, double step,
                                                          LsqRange range);

}  // namespace pact::quant

#endif  // PACT_QUANT_LSQ_OPS_H_
