// Pure-autograd reference implementations of PACT and DoReFa, for tests and benchmarks only.
//
// Built from composed ATen ops whose autograd formulas give the paper's gradients directly
// (no custom backward), so they check pact_ops.h independently:
//   - the clip is where(x >= alpha, alpha, clamp_min(x, 0)): clamp_min's backward passes the
//     gradient where x >= 0, and where() routes it to alpha exactly where x >= alpha (Eq. 3);
//   - round() uses the exact straight-through trick q + (y - y.detach()): the value of q
//     (adding an exact zero), the gradient of y;
//   - the alpha guard is clamp_min(alpha, alpha_min).detach() + (alpha - alpha.detach()).
// Values follow the floating-point recipe documented in pact_ops.h, so forward outputs match
// the fused ops bit for bit; gradient sums use ATen's reduction order.
#ifndef PACT_QUANT_REFERENCE_OPS_H_
#define PACT_QUANT_REFERENCE_OPS_H_

#include <torch/types.h>

#include <cstdint>

namespace pact::quant {

// Same contract as Pact() (pact_ops.h), for a finite alpha.
torch::Tensor ReferencePact(const torch::Tensor& x, const torch::Tensor& alpha, int64_t bits,
                            double alpha_min = 0.0);

// Same contract as DorefaWeight() (pact_ops.h).
torch::Tensor ReferenceDorefaWeight(const torch::Tensor& w, int64_t bits);

}  // namespace pact::quant

#endif  // PACT_QUANT_REFERENCE_OPS_H_
