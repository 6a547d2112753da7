#include "pact/quant/quantizer.h"

#include <torch/nn/modules/batchnorm.h>

namespace pact::quant {

torch::Tensor ActivationModule::ForwardBatchNorm(torch::nn::BatchNorm2dImpl& bn,
                                                 const torch::Tensor& x,
                                                 const torch::Tensor& residual) {
  torch::Tensor z = bn.forward(x);
  if (residual.defined()) z = z + residual;
  return forward(z);
}

ActivationQuantizerRegistry& GetActivationQuantizerRegistry() {
  static auto* registry =
      new ActivationQuantizerRegistry("activation quantizer", "//pact/quant:all_quantizers");
  return *registry;
}

WeightQuantizerRegistry& GetWeightQuantizerRegistry() {
  static auto* registry =
      new WeightQuantizerRegistry("weight quantizer", "//pact/quant:all_quantizers");
  return *registry;
}

}  // namespace pact::quant
