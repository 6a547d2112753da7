#include "pact/quant/reference_ops.h"

#include <torch/torch.h>

#include <cmath>

namespace pact::quant {
namespace {

double Levels(int64_t bits) { return std::ldexp(1.0, static_cast<int>(bits)) - 1.0; }

// `value`'s forward, `grad_source`'s gradient.
torch::Tensor StraightThrough(const torch::Tensor& value, const torch::Tensor& grad_source) {
  return value.detach() + (grad_source - grad_source.detach());
}

}  // namespace

torch::Tensor ReferencePact(const torch::Tensor& x, const torch::Tensor& alpha, int64_t bits,
                            double alpha_min) {
  const torch::Tensor alpha_x = alpha.to(x.scalar_type()).reshape({});
  const torch::Tensor a = StraightThrough(torch::clamp_min(alpha_x, alpha_min), alpha_x);
  const torch::Tensor above = x.detach() >= a.detach();
  const torch::Tensor y = torch::where(above, a, torch::clamp_min(x, 0.0));
  if (bits == 0) return y;
  // Eq. 2 with the scale held constant (not differentiated, as in the paper).
  const double alpha_value = a.item<double>();
  const double levels = Levels(bits);
  const torch::Tensor q =
      torch::round(y.detach() * (levels / alpha_value)) * (alpha_value / levels);
  return StraightThrough(q, y);
}

torch::Tensor ReferenceDorefaWeight(const torch::Tensor& w, int64_t bits) {
  if (bits == 0 || bits == 32) return w;
  const torch::Tensor t = torch::tanh(w);
  const torch::Tensor a = t / (2 * t.abs().max()) + 0.5;
  const double levels = Levels(bits);
  // A device-tensor divisor keeps true division on CUDA too (see ComposedDorefa).
  const torch::Tensor q =
      torch::round(a.detach() * levels) / torch::scalar_tensor(levels, a.options());
  return 2 * StraightThrough(q, a) - 1;
}

torch::Tensor ReferenceLsq(const torch::Tensor& x, const torch::Tensor& step, LsqRange range,
                           double grad_scale, double step_min) {
  const torch::Tensor step_x = step.to(x.scalar_type()).reshape({});
  const torch::Tensor s = StraightThrough(torch::clamp_min(step_x, step_min), step_x);
  const torch::Tensor sd = s.detach();
  const torch::Tensor xd = x.detach();
  const torch::Tensor zero = torch::zeros({}, x.options());
  // -Qn negated as an integer: +0.0 for Qn = 0, as in the kernels (x < 0 gives y = +0.0).
  const torch::Tensor lo = torch::scalar_tensor(static_cast<double>(-range.qn), x.options());
  const torch::Tensor hi = torch::scalar_tensor(static_cast<double>(range.qp), x.options());
  // Eq. 1 and 2, on detached values.
  const torch::Tensor q = xd / sd;
  const torch::Tensor c = torch::where(q < lo, lo, torch::where(q > hi, hi, q));
  const torch::Tensor r = torch::round(c);
  const torch::Tensor y_val = r * sd;
  // Eq. 5: the straight-through gradient on the strict inside.
  const torch::Tensor inside = (q > lo) & (q < hi);
  const torch::Tensor x_part = torch::where(inside, x, zero) - torch::where(inside, xd, zero);
  // Eq. 3: outside and not NaN, c is -Qn or Qp.
  const torch::Tensor d = torch::where(inside, r - q, torch::where(torch::isnan(q), zero, c));
  const torch::Tensor scaled = s * grad_scale;
  const torch::Tensor s_part = torch::where(d != 0, (scaled - scaled.detach()) * d, zero);
  return y_val - (zero - (x_part + s_part));
}

}  // namespace pact::quant
