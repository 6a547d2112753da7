// BatchNorm2d followed by ReLU or PACT (optionally after a residual add), fused.
//
// In ResNet-style networks every conv is followed by bn -> (+ shortcut) -> activation. Run as
// separate ATen ops that is five passes over the tensor in forward (BN statistics, BN
// normalize, add, activation; ATen's statistics take two) and four in backward (activation
// mask, BN reduction, BN input gradient, plus the add's gradient accumulation), each allocating
// a tensor the size of the activation. The fused op makes two passes each way:
//   forward:  per-channel mean/variance in one pass (double sums, shifted by a value of the
//             channel so E[x^2] - E[x]^2 cannot cancel), then
//             y = act(x * scale + shift [+ residual]) with a 1-byte code per element (PACT
//             Eq. 1-2; ReLU: y = max(z, 0));
//   backward: g' = g masked by the codes (PACT Eq. 3 / ReLU), one pass for the per-channel sums
//             (sum g', sum (x - mean) g', and dL/dalpha = sum of g over z >= alpha), writing g'
//             only when the residual needs it, then one pass for the input gradient.
// The formulas and operation order are ATen's (batch_norm_cpu_transform_input and
// batch_norm_backward_cpu): scale = invstd * weight, shift = bias - mean * scale,
// dx = (g' - mean(g') - (x - mean) * k) * invstd * weight with k = sum((x - mean) g') * invstd^2
// / M; the running statistics are updated exactly as torch::nn::BatchNorm2d::forward does
// (momentum or cumulative average, unbiased variance, num_batches_tracked). Values agree with
// the composed modules to float rounding (the reductions sum in a different order); all
// sums use a fixed order, so results are bitwise identical for any thread count.
//
// The fused path covers strided CPU float/double tensors that are dense in NCHW or in
// channels-last (NHWC, what the trainer feeds the models: oneDNN's convolutions are fastest
// there) with an affine BatchNorm, in training mode (batch statistics) or, without autograd, in
// eval mode (running statistics). Anything else (CUDA, other strides, eval with gradients, ...)
// runs the composed modules, with the same semantics.
//
// Why fuse: in the composed modules the activation is a pass of its own, and ATen's ReLU
// backward is their slow part. It pays most in FP32 models and in the eval forward; in W4A4
// models the PACT op was fused already. Speed-ups measured with pact_benchmark
// (BM_BatchNormActivation) and //tools:train_benchmark --fuse_bn_act=true/false are in README.md
// (Benchmarks).
#ifndef PACT_QUANT_BN_ACT_OPS_H_
#define PACT_QUANT_BN_ACT_OPS_H_

#include <torch/types.h>

#include <cstdint>

namespace torch::nn {
class BatchNorm2dImpl;
}  // namespace torch::nn

namespace pact::quant {

// The activation after the BatchNorm.
struct FusedActivation {
  enum class Kind { kRelu, kPact };
  Kind kind = Kind::kRelu;
  // PACT only: the learnable one-element alpha, its positivity guard (pact_ops.h's Pact) and
  // the bits (0 = clipping only).
  torch::Tensor alpha;
  double alpha_min = 0.0;
  int64_t bits = 0;
};

// act(bn(x) + residual); `residual` may be undefined (then act(bn(x))). Updates bn's running
// statistics as bn.forward(x) would.
torch::Tensor BatchNormActivation(torch::nn::BatchNorm2dImpl& bn, const torch::Tensor& x,
                                  const torch::Tensor& residual, const FusedActivation& act);

// Whether BatchNormActivation takes the fused kernels for these arguments (else composed).
bool BatchNormActivationIsFused(const torch::nn::BatchNorm2dImpl& bn, const torch::Tensor& x,
                                const torch::Tensor& residual);

// Process-wide switch, on by default: off makes BatchNormActivation always compose the
// modules (for A/B benchmarks and tests). Not meant to be flipped while ops run.
void SetBatchNormActivationFusion(bool enabled);
bool BatchNormActivationFusion();

}  // namespace pact::quant

#endif  // PACT_QUANT_BN_ACT_OPS_H_
