#include "pact/quant/lsq_ops.h"

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/autograd.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "pact/quant/buffer_cache.h"
#include "pact/quant/fused_op_util.h"
#include "pact/quant/lsq_kernels.h"
#include "pact/quant/pact_kernels.h"

namespace pact::quant {
namespace {

using internal::AlignedGrad;
using internal::AlignGrad;
using internal::Dense;
using internal::kGrain;
using internal::MapBlocks;
using internal::RoundToDtype;
using internal::SumInOrder;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// The largest Qn or Qp: 16-bit codes, far below the 2^23 limit of the kernels' rounding.
constexpr int64_t kMaxLevel = int64_t{1} << 16;

void CheckRange(LsqRange range) {
  TORCH_CHECK(range.qn >= 0 && range.qp >= 0 && range.qn <= kMaxLevel && range.qp <= kMaxLevel &&
                  range.qn + range.qp >= 1,
              "LSQ range [-", range.qn, ", ", range.qp,
              "] must have 0 <= qn, qp <= 65536 and at least two levels");
}

// The step in x's dtype; must stay positive after rounding.
double LsqStep(double step, torch::ScalarType dtype) {
  const double rounded = RoundToDtype(step, dtype);
  TORCH_CHECK(rounded > 0, "LSQ step must be > 0 (after the step_min guard), got ", step);
  return rounded;
}

// The step Lsq's forward uses: max(step, step_min) (a NaN step takes step_min too), in dtype.
double LsqForwardStep(const torch::Tensor& step, double step_min, torch::ScalarType dtype) {
  TORCH_CHECK(step.defined() && step.numel() == 1, "LSQ step must have one element, got ",
              step.defined() ? step.numel() : 0);
  const double value = step.item<double>();
  return LsqStep(value >= step_min ? value : step_min, dtype);
}

bool UsesLsqKernels(const torch::Tensor& t) {
  return t.device().is_cpu() && t.layout() == torch::kStrided &&
         (t.scalar_type() == torch::kFloat || t.scalar_type() == torch::kDouble);
}

// ---------------------------------------------------------------------------------------------
// Composed ATen versions: the fallback for devices and dtypes without fused kernels (CUDA, half,
// bfloat16). Same operations as the kernels, in x's dtype.

// q = x / s, divided by a tensor on x's device: ATen's CUDA division by a CPU scalar multiplies
// by its reciprocal, which can land one ulp away from true division (see pact_ops.cc).
struct ComposedCodes {
  torch::Tensor q;  // x / s
  torch::Tensor c;  // clip(q, -qn, qp), q kept unless strictly outside (NaN, -0.0 stay)
};

ComposedCodes ComposedLsqCodes(const torch::Tensor& x, double s, LsqRange range) {
  const torch::Tensor q = x / torch::scalar_tensor(s, x.options());
  // -Qn negated as an integer: +0.0 for Qn = 0, as in the kernels (x < 0 gives y = +0.0).
  const torch::Tensor lo = torch::scalar_tensor(static_cast<double>(-range.qn), x.options());
  const torch::Tensor hi = torch::scalar_tensor(static_cast<double>(range.qp), x.options());
  return {q, torch::where(q < lo, lo, torch::where(q > hi, hi, q))};
}

// ATen 1.13 has no CPU round() for half. In float every operation here rounds to the same half
// value as half arithmetic would (x / s: float has more than 2 * 11 + 2 bits, so rounding twice
// is harmless; round(), r - q and r * s are exact in float), so the fallback computes in float.
bool IsCpuHalf(const torch::Tensor& x) {
  return x.device().is_cpu() && x.scalar_type() == torch::kHalf;
}

torch::Tensor ComposedLsqForward(const torch::Tensor& x, double s, LsqRange range) {
  if (IsCpuHalf(x)) return ComposedLsqForward(x.to(torch::kFloat), s, range).to(torch::kHalf);
  return torch::round(ComposedLsqCodes(x, s, range).c) * torch::scalar_tensor(s, x.options());
}

// {grad_x, sum} with the sum as a 0-dim double tensor on x's device.
std::pair<torch::Tensor, torch::Tensor> ComposedLsqBackward(const torch::Tensor& grad_y,
                                                            const torch::Tensor& x, double s,
                                                            LsqRange range) {
  if (IsCpuHalf(x)) {
    auto [grad_x, sum] = ComposedLsqBackward(grad_y, x.to(torch::kFloat), s, range);
    return {grad_x.to(torch::kHalf), sum};
  }
  const auto [q, c] = ComposedLsqCodes(x, s, range);
  const torch::Tensor g = grad_y.to(x.scalar_type());
  const torch::Tensor zero = torch::zeros({}, g.options());
  const torch::Tensor inside = (q > static_cast<double>(-range.qn)) & (q < range.qp);
  const torch::Tensor grad_x = torch::where(inside, g, zero);
  const torch::Tensor d =
      torch::where(inside, torch::round(c) - q, torch::where(torch::isnan(q), zero, c));
  const torch::Tensor g_kept = torch::where(d != 0, g, zero).to(torch::kDouble);
  return {grad_x, (g_kept * d.to(torch::kDouble)).sum()};
}

// ---------------------------------------------------------------------------------------------
// Fused CPU paths. `src` is dense (Dense()).

torch::Tensor FusedLsqForward(const torch::Tensor& src, double s, LsqRange range) {
  // src's (dense) strides; the cache keeps y at a stable, likely still cached, address.
  torch::Tensor y = EmptyFromBufferCache(src.sizes(), src.strides(), src.scalar_type());
  const int64_t n = src.numel();
  AT_DISPATCH_FLOATING_TYPES(src.scalar_type(), "lsq_forward", [&] {
    const auto& k = kernels::ActiveLsqKernels().get<scalar_t>();
    const scalar_t* xp = src.data_ptr<scalar_t>();
    scalar_t* yp = y.data_ptr<scalar_t>();
    const auto step = static_cast<scalar_t>(s);
    const auto lo = static_cast<scalar_t>(-range.qn);
    const auto hi = static_cast<scalar_t>(range.qp);
    at::parallel_for(0, n, kGrain, [&](int64_t begin, int64_t end) {
      k.lsq_forward(xp + begin, yp + begin, end - begin, step, lo, hi);
    });
  });
  return y;
}

// {grad_x, the unscaled sum}.
std::pair<torch::Tensor, double> FusedLsqBackward(const torch::Tensor& grad_y,
                                                  const torch::Tensor& src, double s,
                                                  LsqRange range) {
  const AlignedGrad g = AlignGrad(grad_y, src.sizes(), src.strides(), src.scalar_type());
  torch::Tensor grad_x = EmptyFromBufferCache(src.sizes(), src.strides(), src.scalar_type());
  double sum = 0.0;
  AT_DISPATCH_FLOATING_TYPES(src.scalar_type(), "lsq_backward", [&] {
    const auto& k = kernels::ActiveLsqKernels().get<scalar_t>();
    const scalar_t* gp = g.tensor.data_ptr<scalar_t>();
    const scalar_t* xp = src.data_ptr<scalar_t>();
    scalar_t* gxp = grad_x.data_ptr<scalar_t>();
    const auto step = static_cast<scalar_t>(s);
    const auto lo = static_cast<scalar_t>(-range.qn);
    const auto hi = static_cast<scalar_t>(range.qp);
    sum = SumInOrder(MapBlocks<double>(src.numel(), [&](int64_t b, int64_t e) {
      return k.lsq_backward(g.broadcast ? gp : gp + b, g.broadcast, xp + b, gxp + b, e - b, step,
                            lo, hi);
    }));
  });
  return {grad_x, sum};
}

// {grad_x, the unscaled sum as a 0-dim double tensor on x's device}, either path.
std::pair<torch::Tensor, torch::Tensor> LsqBackwardImpl(const torch::Tensor& grad_y,
                                                        const torch::Tensor& x, double s,
                                                        LsqRange range) {
  if (!UsesLsqKernels(x)) return ComposedLsqBackward(grad_y, x, s, range);
  auto [grad_x, sum] = FusedLsqBackward(grad_y, Dense(x), s, range);
  return {grad_x, torch::scalar_tensor(sum, torch::kDouble)};
}

// LSQ autograd function. Saves x (the dense copy on the fused path, so a strided input is copied
// once); the backward recomputes x / s, which costs less than writing and reading codes.
struct LsqFunction : public torch::autograd::Function<LsqFunction> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& step, int64_t qn, int64_t qp, double grad_scale,
                               double step_eff) {
    const LsqRange range{qn, qp};
    ctx->saved_data["step"] = step_eff;
    ctx->saved_data["qn"] = qn;
    ctx->saved_data["qp"] = qp;
    ctx->saved_data["grad_scale"] = grad_scale;
    ctx->saved_data["step_like"] = step.detach();  // device, dtype and shape of dL/dstep
    if (UsesLsqKernels(x)) {
      const torch::Tensor src = Dense(x);
      ctx->save_for_backward({src});
      return FusedLsqForward(src, step_eff, range);
    }
    ctx->save_for_backward({x});
    return ComposedLsqForward(x, step_eff, range);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const torch::Tensor x = ctx->get_saved_variables()[0];
    const LsqRange range{ctx->saved_data["qn"].toInt(), ctx->saved_data["qp"].toInt()};
    auto [grad_x, sum] = LsqBackwardImpl(grads[0], x, ctx->saved_data["step"].toDouble(), range);
    // The gradient scale in double, then one rounding to the step's dtype.
    const torch::Tensor like = ctx->saved_data["step_like"].toTensor();
    const torch::Tensor grad_step =
        (sum * ctx->saved_data["grad_scale"].toDouble()).to(like.options()).reshape(like.sizes());
    return {grad_x, grad_step, torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

LsqRange LsqUnsignedRange(int64_t bits) {
  TORCH_CHECK(bits >= 1 && bits <= 16, "LSQ unsigned bits must be in [1, 16], got ", bits);
  return {0, (int64_t{1} << bits) - 1};
}

LsqRange LsqSignedRange(int64_t bits) {
  TORCH_CHECK(bits >= 2 && bits <= 16, "LSQ signed bits must be in [2, 16], got ", bits);
  return {int64_t{1} << (bits - 1), (int64_t{1} << (bits - 1)) - 1};
}

torch::Tensor LsqForwardKernel(const torch::Tensor& x, double step, LsqRange range) {
  CheckRange(range);
  const double s = LsqStep(step, x.scalar_type());
  if (!UsesLsqKernels(x)) return ComposedLsqForward(x, s, range);
  return FusedLsqForward(Dense(x), s, range);
}

std::pair<torch::Tensor, torch::Tensor> LsqBackwardKernel(const torch::Tensor& grad_y,
                                                          const torch::Tensor& x, double step,
                                                          LsqRange range) {
  CheckRange(range);
  const double s = LsqStep(step, x.scalar_type());
  auto [grad_x, sum] = LsqBackwardImpl(grad_y, x, s, range);
  return {grad_x, sum.to(x.scalar_type())};
}

torch::Tensor Lsq(const torch::Tensor& x, const torch::Tensor& step, LsqRange range,
                  double grad_scale, double step_min) {
  CheckRange(range);
  TORCH_CHECK(std::isfinite(grad_scale), "LSQ grad_scale must be finite, got ", grad_scale);
  const double step_eff = LsqForwardStep(step, step_min, x.scalar_type());
  if (torch::GradMode::is_enabled() && (x.requires_grad() || step.requires_grad())) {
    return LsqFunction::apply(x, step, range.qn, range.qp, grad_scale, step_eff);
  }
  return UsesLsqKernels(x) ? FusedLsqForward(Dense(x), step_eff, range)
                           : ComposedLsqForward(x, step_eff, range);
}

double LsqInitialStep(const torch::Tensor& x, int64_t qp) {
  TORCH_CHECK(x.numel() > 0, "LsqInitialStep needs a non-empty tensor");
  TORCH_CHECK(qp >= 1, "LsqInitialStep needs qp >= 1, got ", qp);
  torch::NoGradGuard no_grad;
  const double mean_abs = x.to(torch::kDouble).abs().mean().item<double>();
  return 2.0 * mean_abs / std::sqrt(static_cast<double>(qp));
}

}  // namespace pact::quant
