// Quantizer interfaces and their registries.
//
// A recipe's `quantization { activation { pact { bits: 4 } } weight { dorefa { bits: 4 } } }`
// selects an ActivationQuantizer ("pact", "lsq", "relu") and a WeightQuantizer ("dorefa", "lsq",
// "none") by name. The LayerBuilder (layers.h) asks them for the modules of every activation
// position and the weight transform of every conv/linear.
#ifndef PACT_QUANT_QUANTIZER_H_
#define PACT_QUANT_QUANTIZER_H_

#include <torch/nn/module.h>
#include <torch/types.h>

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "pact/core/registry.h"
#include "pact/quant/quantizer_spec.pb.h"

namespace torch::nn {
class BatchNorm2dImpl;
}  // namespace torch::nn

namespace pact::quant {

// Bits reported for full precision.
inline constexpr int kFullPrecisionBits = 32;

// Shared, run-time switch for the quantizers of one model. The trainer turns quantization off
// during warm-up (the paper's Option B: clipping without quantization) and on afterwards.
class QuantControl {
 public:
  bool enabled() const { return enabled_.load(std::memory_order_relaxed); }
  void set_enabled(bool enabled) { enabled_.store(enabled, std::memory_order_relaxed); }

 private:
  std::atomic<bool> enabled_{true};
};

// An activation-position module (where the FP network has a ReLU).
class ActivationModule : public torch::nn::Module {
 public:
  virtual torch::Tensor forward(const torch::Tensor& x) = 0;
  // forward(bn(x) + residual) (`residual` may be undefined), updating bn's running statistics
  // as bn.forward does. Models call this wherever a BatchNorm2d feeds the activation. The
  // default composes the modules; PACT and ReLU override it with one fused kernel per
  // direction (bn_act_ops.h), which saves several passes over the tensor.
  virtual torch::Tensor ForwardBatchNorm(torch::nn::BatchNorm2dImpl& bn, const torch::Tensor& x,
                                         const torch::Tensor& residual = {});
  // Effective bits while quantization is on; 0 = clipping only; kFullPrecisionBits = FP.
  virtual int bits() const = 0;
  // The registry key that made it ("pact", "relu").
  virtual std::string kind() const = 0;
  // The learned clipping level (PACT's alpha), a parameter the trainer regularizes with
  // lambda_alpha and keeps out of weight decay; undefined for an activation without one.
  virtual torch::Tensor clip_level() const { return {}; }
  // Output shape of the last forward (empty before the first); for model summaries.
  const std::vector<int64_t>& last_output_shape() const { return last_output_shape_; }

 protected:
  std::vector<int64_t> last_output_shape_;
};

class ActivationQuantizer {
 public:
  virtual ~ActivationQuantizer() = default;
  // The module for one activation position. `quantize` is false where the first/last policy
  // keeps full precision (PACT then clips with a learnable alpha but does not round).
  virtual std::shared_ptr<ActivationModule> Create(
      bool quantize, std::shared_ptr<const QuantControl> control) const = 0;
};

// The weight transform of one conv/linear layer, applied to its float master weights in every
// forward (differentiable w.r.t. them, STE where rounding). A module so that a quantizer with
// learned per-layer state (LSQ's step size) trains and checkpoints it with the layer: the
// layer registers a transform that has parameters or buffers as its child "weight_quant";
// stateless ones (DoReFa, none) stay out of the module tree.
class WeightQuantModule : public torch::nn::Module {
 public:
  virtual torch::Tensor forward(const torch::Tensor& weight) = 0;
};

class WeightQuantizer {
 public:
  virtual ~WeightQuantizer() = default;
  // The transform for one layer (a new module per call for stateful quantizers).
  virtual std::shared_ptr<WeightQuantModule> Create() const = 0;
  // kFullPrecisionBits for full precision.
  virtual int bits() const = 0;
  virtual std::string kind() const = 0;
};

// Quantizers need nothing beyond their options.
struct QuantizerContext {};

using ActivationQuantizerRegistry =
    ComponentRegistry<ActivationQuantizerSpec, std::shared_ptr<const ActivationQuantizer>,
                      QuantizerContext>;
using WeightQuantizerRegistry =
    ComponentRegistry<WeightQuantizerSpec, std::shared_ptr<const WeightQuantizer>,
                      QuantizerContext>;

ActivationQuantizerRegistry& GetActivationQuantizerRegistry();
WeightQuantizerRegistry& GetWeightQuantizerRegistry();

// PACT_REGISTER_*_QUANTIZER(name, OptionsType, factory[, validator]); see registry.h.
#define PACT_REGISTER_ACTIVATION_QUANTIZER(name, OptionsType, ...)                            \
  PACT_REGISTER_COMPONENT(::pact::quant::GetActivationQuantizerRegistry(), name, OptionsType, \
                          __VA_ARGS__)
#define PACT_REGISTER_WEIGHT_QUANTIZER(name, OptionsType, ...)                            \
  PACT_REGISTER_COMPONENT(::pact::quant::GetWeightQuantizerRegistry(), name, OptionsType, \
                          __VA_ARGS__)

}  // namespace pact::quant

#endif  // PACT_QUANT_QUANTIZER_H_
