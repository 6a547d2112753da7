#include "pact/quant/quantizer.h"

namespace pact::quant {

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
