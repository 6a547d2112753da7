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

}  // namespace pact::quant
