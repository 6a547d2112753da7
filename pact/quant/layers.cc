#include "pact/quant/layers.h"

#include <ATen/ops/mkldnn_linear.h>
#include <ATen/ops/mkldnn_linear_backward_input.h>
#include <ATen/ops/mkldnn_linear_backward_weights.h>
#include <torch/torch.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <ostream>
#include <utility>

#include "glog/logging.h"
#include "pact/quant/bn_act_ops.h"
#include "pact/quant/pact_ops.h"

namespace pact::quant {
namespace {

// PyTorch's default init for conv/linear (kaiming_uniform with a = sqrt(5), bias
// U(-1/sqrt(fan_in), 1/sqrt(fan_in))), so FP baselines match Python runs.
void ResetLikeTorch(torch::Tensor& weight, torch::Tensor& bias) {
  torch::NoGradGuard no_grad;
  torch::nn::init::kaiming_uniform_(weight, std::sqrt(5.0));
  if (bias.defined()) {
    const auto fan = torch::nn::init::_calculate_fan_in_and_fan_out(weight);
    const double bound = 1.0 / std::sqrt(static_cast<double>(std::get<0>(fan)));
    torch::nn::init::uniform_(bias, -bound, bound);
  }
}

bool QuantizationOn(const std::shared_ptr<const QuantControl>& control) {
  return control == nullptr || control->enabled();
}

// y = x w^T through oneDNN's inner product (forward, backward data, backward weights); the bias
// is added outside (LibTorch 1.13's C++ autograd Functions take no undefined tensor inputs).
// torch::linear on CPU runs on the BLAS LibTorch was built with; Debian's is the generic
// reference BLAS, so an FC layer such as Fashion ConvNet's fc1 (1568 x 128) costs
// far more of a training step through it than through oneDNN (figures in README.md, Benchmarks).
// Same math; only the summation order differs (float rounding).
class MkldnnLinearFunction : public torch::autograd::Function<MkldnnLinearFunction> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& w) {
    const torch::Tensor x_mkldnn = x.contiguous().to_mkldnn();
    const torch::Tensor w_dense = w.contiguous();
    ctx->saved_data["x"] = x_mkldnn;
    ctx->save_for_backward({w_dense});
    return at::mkldnn_linear(x_mkldnn, w_dense, c10::nullopt).to_dense();
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const torch::Tensor x_mkldnn = ctx->saved_data["x"].toTensor();
    const torch::Tensor w = ctx->get_saved_variables()[0];
    const torch::Tensor g = grads[0].contiguous().to_mkldnn();
    torch::Tensor grad_x, grad_w;
    if (ctx->needs_input_grad(0)) {
      grad_x = at::mkldnn_linear_backward_input(x_mkldnn.sizes(), g, w).to_dense();
    }
    if (ctx->needs_input_grad(1)) {
      grad_w = std::get<0>(at::mkldnn_linear_backward_weights(g, x_mkldnn, w, false));
    }
    return {grad_x, grad_w};
  }
};

class IdentityWeight : public WeightQuantModule {
 public:
  torch::Tensor forward(const torch::Tensor& weight) override { return weight; }
};

// The layer's weight transform; one with parameters or buffers becomes the child
// "weight_quant", so that it trains, moves and checkpoints with the layer.
std::shared_ptr<WeightQuantModule> MakeWeightQuant(torch::nn::Module& layer,
                                                   const WeightQuantizer& quantizer) {
  std::shared_ptr<WeightQuantModule> transform = quantizer.Create();
  TORCH_CHECK(transform != nullptr, "weight quantizer '", quantizer.kind(), "' made no transform");
  if (!transform->parameters().empty() || !transform->buffers().empty()) {
    layer.register_module("weight_quant", transform);
  }
  return transform;
}

bool UseMkldnnLinear(const torch::Tensor& x, const torch::Tensor& w) {
  return at::hasMKLDNN() && at::globalContext().userEnabledMkldnn() && x.device().is_cpu() &&
         x.scalar_type() == torch::kFloat && w.scalar_type() == torch::kFloat && x.dim() == 2 &&
         x.size(0) > 0 && !x.is_mkldnn();
}

}  // namespace

QuantConv2dImpl::QuantConv2dImpl(const torch::nn::Conv2dOptions& options,
                                 std::shared_ptr<const WeightQuantizer> quantizer,
                                 std::shared_ptr<const QuantControl> control)
    : options_(options),
      quantizer_(quantizer ? std::move(quantizer) : std::make_shared<NoWeightQuantizer>()),
      weight_quant_(MakeWeightQuant(*this, *quantizer_)),
      control_(std::move(control)) {
  TORCH_CHECK(options_.in_channels() % options_.groups() == 0 &&
                  options_.out_channels() % options_.groups() == 0,
              "conv channels must be divisible by groups");
  std::vector<int64_t> shape = {options_.out_channels(),
                                options_.in_channels() / options_.groups()};
  for (int64_t k : *options_.kernel_size()) shape.push_back(k);
  weight = register_parameter("weight", torch::empty(shape));
  if (options_.bias()) bias = register_parameter("bias", torch::empty({options_.out_channels()}));
  ResetLikeTorch(weight, bias);
}

torch::Tensor QuantConv2dImpl::QuantizedWeight() const {
  torch::NoGradGuard no_grad;
  return QuantizationOn(control_) ? weight_quant_->forward(weight) : weight;
}

torch::Tensor QuantConv2dImpl::forward(const torch::Tensor& input) {
  const torch::Tensor w = QuantizationOn(control_) ? weight_quant_->forward(weight) : weight;
  torch::Tensor out;
  if (const auto* pad = c10::get_if<torch::ExpandingArray<2>>(&options_.padding())) {
    out = torch::conv2d(input, w, bias, *options_.stride(), **pad, *options_.dilation(),
                        options_.groups());
  } else if (c10::holds_alternative<torch::enumtype::kValid>(options_.padding())) {
    const std::array<int64_t, 2> zero = {0, 0};
    out = torch::conv2d(input, w, bias, *options_.stride(), zero, *options_.dilation(),
                        options_.groups());
  } else {
    out = torch::conv2d(input, w, bias, *options_.stride(), "same", *options_.dilation(),
                        options_.groups());
  }
  last_output_shape_ = out.sizes().vec();
  return out;
}

void QuantConv2dImpl::pretty_print(std::ostream& stream) const {
  stream << "QuantConv2d(" << options_.in_channels() << ", " << options_.out_channels()
         << ", kernel_size=" << options_.kernel_size() << ", stride=" << options_.stride()
         << ", groups=" << options_.groups() << ", bias=" << options_.bias()
         << ", weight=" << quantizer_->kind() << "/" << quantizer_->bits() << "b)";
}

QuantLinearImpl::QuantLinearImpl(const torch::nn::LinearOptions& options,
                                 std::shared_ptr<const WeightQuantizer> quantizer,
                                 std::shared_ptr<const QuantControl> control)
    : options_(options),
      quantizer_(quantizer ? std::move(quantizer) : std::make_shared<NoWeightQuantizer>()),
      weight_quant_(MakeWeightQuant(*this, *quantizer_)),
      control_(std::move(control)) {
  weight =
      register_parameter("weight", torch::empty({options_.out_features(), options_.in_features()}));
  if (options_.bias()) bias = register_parameter("bias", torch::empty({options_.out_features()}));
  ResetLikeTorch(weight, bias);
}

torch::Tensor QuantLinearImpl::QuantizedWeight() const {
  torch::NoGradGuard no_grad;
  return QuantizationOn(control_) ? weight_quant_->forward(weight) : weight;
}

torch::Tensor QuantLinearImpl::forward(const torch::Tensor& input) {
  const torch::Tensor w = QuantizationOn(control_) ? weight_quant_->forward(weight) : weight;
  torch::Tensor out;
  if (UseMkldnnLinear(input, w)) {
    out = MkldnnLinearFunction::apply(input, w);
    if (bias.defined()) out = out + bias;
  } else {
    out = torch::linear(input, w, bias);
  }
  last_output_shape_ = out.sizes().vec();
  return out;
}

void QuantLinearImpl::pretty_print(std::ostream& stream) const {
  stream << "QuantLinear(in_features=" << options_.in_features()
         << ", out_features=" << options_.out_features() << ", bias=" << options_.bias()
         << ", weight=" << quantizer_->kind() << "/" << quantizer_->bits() << "b)";
}

PactActivation::PactActivation(int bits, double alpha_init, double alpha_min,
                               std::shared_ptr<const QuantControl> control, double init_percentile)
    : bits_(bits),
      alpha_min_(alpha_min),
      init_percentile_(init_percentile),
      control_(std::move(control)) {
  alpha = register_parameter("alpha", torch::full({1}, alpha_init));
  if (init_percentile_ > 0) {
    alpha_initialized = register_buffer("alpha_initialized", torch::zeros({1}));
  }
}

bool PactActivation::NeedsDataInit() const {
  return alpha_initialized.defined() && is_training() && alpha_initialized.item<float>() == 0.0f;
}

void PactActivation::InitAlphaFromData(const torch::Tensor& x) {
  torch::NoGradGuard no_grad;
  const torch::Tensor flat = x.detach().reshape({-1}).to(torch::kFloat);
  const int64_t n = flat.numel();
  if (n == 0) return;
  // The k-th smallest value, k = ceil(p% of n): kthvalue, unlike quantile, has no size limit.
  const int64_t k = std::clamp<int64_t>(
      static_cast<int64_t>(std::ceil(init_percentile_ / 100.0 * static_cast<double>(n))), 1, n);
  const double value = std::get<0>(flat.cpu().kthvalue(k)).item<double>();
  alpha.fill_(value >= alpha_min_ ? value : alpha_min_);  // NaN takes alpha_min too
  alpha_initialized.fill_(1.0f);
  VLOG(1) << "PACT alpha set from the first batch: " << init_percentile_ << "th percentile "
          << value << " of " << n << " values";
}

int PactActivation::EffectiveBitsAndCheckAlpha() {
  const double value = alpha.item<double>();
  if (!(value >= alpha_min_)) {  // also catches NaN
    ++guard_hits_;
    LOG_EVERY_N(WARNING, 100) << "PACT alpha " << value << " below alpha_min " << alpha_min_
                              << ": clamped in forward (" << guard_hits_ << " times in this layer)";
  }
  return QuantizationOn(control_) ? bits_ : 0;
}

torch::Tensor PactActivation::forward(const torch::Tensor& x) {
  if (NeedsDataInit()) InitAlphaFromData(x);
  const int bits = EffectiveBitsAndCheckAlpha();
  torch::Tensor y = Pact(x, alpha, bits, alpha_min_);
  last_output_shape_ = y.sizes().vec();
  return y;
}

torch::Tensor PactActivation::ForwardBatchNorm(torch::nn::BatchNorm2dImpl& bn,
                                               const torch::Tensor& x,
                                               const torch::Tensor& residual) {
  if (NeedsDataInit()) {
    // The fused op never materializes bn(x) + residual, which the percentile needs: compose
    // this once.
    return ActivationModule::ForwardBatchNorm(bn, x, residual);
  }
  FusedActivation act;
  act.kind = FusedActivation::Kind::kPact;
  act.bits = EffectiveBitsAndCheckAlpha();
  act.alpha = alpha;
  act.alpha_min = alpha_min_;
  torch::Tensor y = BatchNormActivation(bn, x, residual, act);
  last_output_shape_ = y.sizes().vec();
  return y;
}

void PactActivation::pretty_print(std::ostream& stream) const {
  stream << "PactActivation(bits=" << bits_ << ", alpha_min=" << alpha_min_;
  if (init_percentile_ > 0) stream << ", alpha_init_percentile=" << init_percentile_;
  stream << ")";
}

torch::Tensor ReluActivation::forward(const torch::Tensor& x) {
  torch::Tensor y = torch::relu(x);
  last_output_shape_ = y.sizes().vec();
  return y;
}

torch::Tensor ReluActivation::ForwardBatchNorm(torch::nn::BatchNorm2dImpl& bn,
                                               const torch::Tensor& x,
                                               const torch::Tensor& residual) {
  torch::Tensor y = BatchNormActivation(bn, x, residual, FusedActivation{});
  last_output_shape_ = y.sizes().vec();
  return y;
}

void ReluActivation::pretty_print(std::ostream& stream) const { stream << "ReluActivation()"; }

std::shared_ptr<WeightQuantModule> NoWeightQuantizer::Create() const {
  return std::make_shared<IdentityWeight>();
}

LayerBuilder::LayerBuilder(std::shared_ptr<const ActivationQuantizer> activation,
                           std::shared_ptr<const WeightQuantizer> weight, bool quantize_first_last)
    : activation_(std::move(activation)),
      weight_(weight ? std::move(weight) : std::make_shared<NoWeightQuantizer>()),
      full_precision_(std::make_shared<NoWeightQuantizer>()),
      quantize_first_last_(quantize_first_last),
      control_(std::make_shared<QuantControl>()) {}

LayerBuilder::LayerBuilder(std::vector<LayerChoice> plan)
    : full_precision_(std::make_shared<NoWeightQuantizer>()),
      plan_(std::move(plan)),
      planned_(true),
      control_(std::make_shared<QuantControl>()) {}

std::shared_ptr<LayerBuilder> LayerBuilder::FullPrecision() {
  return std::make_shared<LayerBuilder>(nullptr, nullptr, /*quantize_first_last=*/false);
}

LayerChoice LayerBuilder::Next(LayerKind kind, LayerPosition position) const {
  const size_t index = made_.size();
  made_.push_back({kind, position, nullptr});
  if (planned_) {
    TORCH_CHECK(index < plan_.size(), "the model asked for more layers than its plan has (",
                plan_.size(), "): it must build the same layers every time");
    return plan_[index];
  }
  LayerChoice choice;
  const bool quantized = quantize_first_last_ || position == LayerPosition::kMiddle;
  choice.activation = activation_;
  choice.quantize = quantized;
  choice.weight = quantized ? weight_ : full_precision_;
  return choice;
}

QuantConv2d LayerBuilder::Conv(const torch::nn::Conv2dOptions& options,
                               LayerPosition position) const {
  QuantConv2d conv(options, Next(LayerKind::kConv, position).weight, control_);
  made_.back().module = conv.get();
  return conv;
}

QuantLinear LayerBuilder::Linear(const torch::nn::LinearOptions& options,
                                 LayerPosition position) const {
  QuantLinear linear(options, Next(LayerKind::kLinear, position).weight, control_);
  made_.back().module = linear.get();
  return linear;
}

std::shared_ptr<ActivationModule> LayerBuilder::Activation(LayerPosition position) const {
  const LayerChoice choice = Next(LayerKind::kActivation, position);
  std::shared_ptr<ActivationModule> activation =
      choice.activation == nullptr ? std::make_shared<ReluActivation>()
                                   : choice.activation->Create(choice.quantize, control_);
  made_.back().module = activation.get();
  return activation;
}

std::vector<torch::Tensor> CollectAlphas(torch::nn::Module& module) {
  std::vector<torch::Tensor> alphas;
  for (const auto& child : module.modules(/*include_self=*/true)) {
    const auto* activation = dynamic_cast<const ActivationModule*>(child.get());
    if (activation != nullptr && activation->clip_level().defined()) {
      alphas.push_back(activation->clip_level());
    }
  }
  return alphas;
}

}  // namespace pact::quant
