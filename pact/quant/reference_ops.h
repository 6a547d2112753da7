// Pure-autograd reference implementations of PACT, DoReFa and LSQ, for tests and benchmarks
// only.
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
//
// LSQ (lsq_ops.h) is y = y_val - (0 - (x_part + s_part)), where
//   - y_val = round(clip(x / s, -Qn, Qp)) * s on detached values, the clip written with where()
//     so that q is replaced only when strictly outside (NaN and -0.0 stay, as in the kernels);
//   - x_part = where(inside, x, 0) - where(inside, x.detach(), 0): value +0, and where()'s
//     backward selects the gradient, so dL/dx is exactly dL/dy on the strict inside (Eq. 5) and
//     +0.0 elsewhere, whatever dL/dy holds there;
//   - s_part = where(d != 0, (s * gs - (s * gs).detach()) * d, 0) with d Eq. 3's dv_hat/ds
//     (detached), so dL/ds = gs * sum(dL/dy * d) over the elements with d != 0;
//   - 0 - (...) is +0.0 whatever the sign of the zero inside, and y_val - (+0.0) is y_val bit for
//     bit (-0.0 included, which adding a +0.0 would turn into +0.0), while the two negations
//     pass dL/dy through exactly.
#ifndef PACT_QUANT_REFERENCE_OPS_H_
#define PACT_QUANT_REFERENCE_OPS_H_

#include <torch/types.h>

#include <cstdint>

#include "pact/quant/lsq_ops.h"

namespace pact::quant {

// Same contract as Pact() (pact_ops.h), for a finite alpha.
torch::Tensor ReferencePact(const torch::Tensor& x, const torch::Tensor& alpha, int64_t bits,
                            double alpha_min = 0.0);

// Same contract as DorefaWeight() (pact_ops.h).
torch::Tensor ReferenceDorefaWeight(const torch::Tensor& w, int64_t bits);

// Same contract as Lsq() (lsq_ops.h), for a finite step; dL/dstep is summed and scaled in x's
// dtype (ATen's order), not in double.
torch::Tensor ReferenceLsq(const torch::Tensor& x, const torch::Tensor& step, LsqRange range,
                           double grad_scale, double step_min = 0.0);

}  // namespace pact::quant

#endif  // PACT_QUANT_REFERENCE_OPS_H_
