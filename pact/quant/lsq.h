// LSQ layers (Esser et al. 2019, arXiv:1902.08153): the per-layer modules of the "lsq"
// activation and weight quantizers (lsq_options.proto), on the fused op of lsq_ops.h.
//
// Each holds its learned step as the parameter "step" and a buffer "step_initialized". A step
// left at 0 in the options (the paper's choice) starts at 2 * mean(|x|) / sqrt(Qp) (Sec. 2.1):
// an activation from its first batch in training mode, a weight transform from the weights at
// its first use. The buffer records that it happened, so a checkpoint, a resume or an
// --init-from that provides the step keeps it. The step's gradient is scaled by
// g = 1 / sqrt(N * Qp) (Sec. 2.2): N is the number of weights of the layer, or of features per
// example (elements of x over its first dimension) for an activation.
#ifndef PACT_QUANT_LSQ_H_
#define PACT_QUANT_LSQ_H_

#include <torch/types.h>

#include <memory>
#include <string>

#include "pact/quant/lsq_ops.h"
#include "pact/quant/quantizer.h"

namespace pact::quant {

// Replaces a ReLU position: the unsigned range [0, 2^bits - 1], so negative inputs give 0.
// While the QuantControl holds quantization off (warm-up) it is a plain ReLU.
class LsqActivation : public ActivationModule {
 public:
  // bits in [1, 16]; step_init > 0, or 0 = from the first training batch; step_min > 0.
  LsqActivation(int bits, double step_init, double step_min,
                std::shared_ptr<const QuantControl> control);
  torch::Tensor forward(const torch::Tensor& x) override;
  int bits() const override { return bits_; }
  std::string kind() const override { return "lsq"; }
  void pretty_print(std::ostream& stream) const override;
  LsqRange range() const { return range_; }
  double step_min() const { return step_min_; }

  torch::Tensor step;
  torch::Tensor step_initialized;

 private:
  int bits_;
  LsqRange range_;
  double step_min_;
  std::shared_ptr<const QuantControl> control_;
};

// A conv/linear layer's weights in the signed range [-2^(bits-1), 2^(bits-1) - 1].
class LsqWeight : public WeightQuantModule {
 public:
  // bits in [2, 16]; step_init > 0, or 0 = from the weights at the first forward.
  LsqWeight(int bits, double step_init, double step_min);
  torch::Tensor forward(const torch::Tensor& weight) override;
  void pretty_print(std::ostream& stream) const override;
  LsqRange range() const { return range_; }
  double step_min() const { return step_min_; }

  torch::Tensor step;
  torch::Tensor step_initialized;

 private:
  int bits_;
  LsqRange range_;
  double step_min_;
};

}  // namespace pact::quant

#endif  // PACT_QUANT_LSQ_H_
