// Quantized layers and the LayerBuilder that hands them to models.
//
// Models never construct conv/linear/activation modules directly: they ask a LayerBuilder for
// the layer at a "first", "middle" or "last" position, and the builder applies the recipe's
// quantizers and first/last policy (PACT paper Sec. 4: the first conv and the last linear keep
// full-precision weights; the activations right after the first layer and feeding the last
// layer keep PACT clipping without quantization) unless quantize_first_last is set.
#ifndef PACT_QUANT_LAYERS_H_
#define PACT_QUANT_LAYERS_H_

#include <torch/nn/module.h>
#include <torch/nn/options/conv.h>
#include <torch/nn/options/linear.h>
#include <torch/types.h>

#include <memory>
#include <string>
#include <vector>

#include "pact/quant/quantizer.h"

namespace pact::quant {

enum class LayerPosition { kFirst, kMiddle, kLast };

// Conv2d whose weights pass through a WeightQuantizer's transform on every forward; the float
// master weights are what the optimizer trains. Parameters are "weight" and "bias" (PyTorch
// names), plus "weight_quant.*" for a transform with learned state (LSQ's "weight_quant.step").
class QuantConv2dImpl : public torch::nn::Module {
 public:
  QuantConv2dImpl(const torch::nn::Conv2dOptions& options,
                  std::shared_ptr<const WeightQuantizer> quantizer,
                  std::shared_ptr<const QuantControl> control);
  torch::Tensor forward(const torch::Tensor& input);
  // Bits in effect (kFullPrecisionBits for FP).
  int weight_bits() const { return quantizer_->bits(); }
  // The weight quantizer ("dorefa", "lsq", "none") and this layer's transform (its state).
  const WeightQuantizer& quantizer() const { return *quantizer_; }
  const WeightQuantModule& weight_quant() const { return *weight_quant_; }
  const torch::nn::Conv2dOptions& options() const { return options_; }
  const std::vector<int64_t>& last_output_shape() const { return last_output_shape_; }
  // The quantized weights as used in forward (no grad).
  torch::Tensor QuantizedWeight() const;
  void pretty_print(std::ostream& stream) const override;

  torch::Tensor weight;
  torch::Tensor bias;  // undefined when options.bias() is false

 private:
  torch::nn::Conv2dOptions options_;
  std::shared_ptr<const WeightQuantizer> quantizer_;
  std::shared_ptr<WeightQuantModule> weight_quant_;
  std::shared_ptr<const QuantControl> control_;
  std::vector<int64_t> last_output_shape_;
};
TORCH_MODULE(QuantConv2d);

// Linear with quantized weights; see QuantConv2dImpl.
class QuantLinearImpl : public torch::nn::Module {
 public:
  QuantLinearImpl(const torch::nn::LinearOptions& options,
                  std::shared_ptr<const WeightQuantizer> quantizer,
                  std::shared_ptr<const QuantControl> control);
  torch::Tensor forward(const torch::Tensor& input);
  int weight_bits() const { return quantizer_->bits(); }
  const WeightQuantizer& quantizer() const { return *quantizer_; }
  const WeightQuantModule& weight_quant() const { return *weight_quant_; }
  const torch::nn::LinearOptions& options() const { return options_; }
  const std::vector<int64_t>& last_output_shape() const { return last_output_shape_; }
  torch::Tensor QuantizedWeight() const;
  void pretty_print(std::ostream& stream) const override;

  torch::Tensor weight;
  torch::Tensor bias;

 private:
  torch::nn::LinearOptions options_;
  std::shared_ptr<const WeightQuantizer> quantizer_;
  std::shared_ptr<WeightQuantModule> weight_quant_;
  std::shared_ptr<const QuantControl> control_;
  std::vector<int64_t> last_output_shape_;
};
TORCH_MODULE(QuantLinear);

// PACT activation holding the learnable clipping level "alpha" (one per layer).
class PactActivation : public ActivationModule {
 public:
  // bits in [0, 16], 0 = clipping only. alpha_min: positivity guard, 0 < alpha_min <=
  // alpha_init. init_percentile in (0, 100]: alpha starts, on the first forward in training
  // mode, at that percentile of its input (at least alpha_min); the buffer
  // "alpha_initialized" records that it did (so a checkpoint or --init-from that provides
  // alpha keeps it). 0: alpha_init, no buffer. Unchecked here: the "pact" quantizer's
  // validator checks recipe values.
  PactActivation(int bits, double alpha_init, double alpha_min,
                 std::shared_ptr<const QuantControl> control, double init_percentile = 0.0);
  torch::Tensor forward(const torch::Tensor& x) override;
  torch::Tensor ForwardBatchNorm(torch::nn::BatchNorm2dImpl& bn, const torch::Tensor& x,
                                 const torch::Tensor& residual = {}) override;
  int bits() const override { return bits_; }
  std::string kind() const override { return "pact"; }
  void pretty_print(std::ostream& stream) const override;
  // How many forwards found alpha below alpha_min and clamped it.
  int64_t guard_hits() const { return guard_hits_; }
  double alpha_min() const { return alpha_min_; }
  torch::Tensor clip_level() const override { return alpha; }

  torch::Tensor alpha;
  torch::Tensor alpha_initialized;  // 1 once set from data; undefined without init_percentile

 private:
  // The bits in effect (0 while the QuantControl holds quantization off); counts and logs
  // forwards that find alpha below alpha_min.
  int EffectiveBitsAndCheckAlpha();
  // Whether this forward must set alpha from its input first.
  bool NeedsDataInit() const;
  void InitAlphaFromData(const torch::Tensor& x);

  int bits_;
  double alpha_min_;
  double init_percentile_;
  std::shared_ptr<const QuantControl> control_;
  int64_t guard_hits_ = 0;
};

// The full-precision baseline.
class ReluActivation : public ActivationModule {
 public:
  torch::Tensor forward(const torch::Tensor& x) override;
  torch::Tensor ForwardBatchNorm(torch::nn::BatchNorm2dImpl& bn, const torch::Tensor& x,
                                 const torch::Tensor& residual = {}) override;
  int bits() const override { return kFullPrecisionBits; }
  std::string kind() const override { return "relu"; }
  void pretty_print(std::ostream& stream) const override;
};

// Identity weight transform (full precision).
class NoWeightQuantizer : public WeightQuantizer {
 public:
  std::shared_ptr<WeightQuantModule> Create() const override;
  int bits() const override { return kFullPrecisionBits; }
  std::string kind() const override { return "none"; }
};

// What a LayerBuilder makes.
enum class LayerKind { kConv, kLinear, kActivation };

// The quantizers of one layer, chosen per layer (layer_plan.h resolves them from a recipe).
struct LayerChoice {
  // Activations: the quantizer (null = relu) and whether it quantizes there (false = its full
  // precision behaviour, e.g. PACT clipping without rounding).
  std::shared_ptr<const ActivationQuantizer> activation;
  bool quantize = true;
  // Conv/linear: the weight quantizer (null = none).
  std::shared_ptr<const WeightQuantizer> weight;
};

class LayerBuilder {
 public:
  // Every layer gets these quantizers, except the first/last positions (kept at full precision
  // unless quantize_first_last). Null quantizers mean relu / none (full precision).
  LayerBuilder(std::shared_ptr<const ActivationQuantizer> activation,
               std::shared_ptr<const WeightQuantizer> weight, bool quantize_first_last);
  // Layer i (in the order this builder is asked for layers) gets choices[i]: a plan resolved
  // for a model built the same way before (layer_plan.h). Asking for more layers than the
  // plan has throws (c10::Error).
  explicit LayerBuilder(std::vector<LayerChoice> plan);

  // Full precision everywhere (ReLU, float weights).
  static std::shared_ptr<LayerBuilder> FullPrecision();

  QuantConv2d Conv(const torch::nn::Conv2dOptions& options, LayerPosition position) const;
  QuantLinear Linear(const torch::nn::LinearOptions& options, LayerPosition position) const;
  // The activation at a ReLU position. kFirst = right after the first layer, kLast = feeding
  // the last layer.
  std::shared_ptr<ActivationModule> Activation(LayerPosition position) const;

  // Shared by every layer built here: turning it off makes them run unquantized.
  const std::shared_ptr<QuantControl>& control() const { return control_; }

  // Every layer made so far, in order; naming them after the model registered them
  // (named_modules) is how a plan finds "layer1.0.conv1".
  struct Made {
    LayerKind kind;
    LayerPosition position;
    const torch::nn::Module* module;
  };
  const std::vector<Made>& made() const { return made_; }

 private:
  // The choice for the next layer (of `kind` at `position`), recording it in made_.
  LayerChoice Next(LayerKind kind, LayerPosition position) const;

  std::shared_ptr<const ActivationQuantizer> activation_;
  std::shared_ptr<const WeightQuantizer> weight_;
  std::shared_ptr<const WeightQuantizer> full_precision_;
  bool quantize_first_last_ = false;
  std::vector<LayerChoice> plan_;
  bool planned_ = false;
  std::shared_ptr<QuantControl> control_;
  // Bookkeeping, not behaviour: models take a const builder.
  mutable std::vector<Made> made_;
};

// Every ActivationModule::clip_level of `module`, in module-tree order (for lambda_alpha and
// for excluding them from weight decay).
std::vector<torch::Tensor> CollectAlphas(torch::nn::Module& module);

}  // namespace pact::quant

#endif  // PACT_QUANT_LAYERS_H_
