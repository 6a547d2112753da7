// Test helper: LayerBuilders configured like a recipe's `quantization { ... }`.
#ifndef PACT_MODELS_TEST_BUILDERS_H_
#define PACT_MODELS_TEST_BUILDERS_H_

#include <memory>
#include <string>

#include "gtest/gtest.h"
#include "pact/core/test_util.h"
#include "pact/quant/layers.h"
#include "pact/quant/quantizer.h"
#include "pact/quant/quantizer_spec.pb.h"

namespace pact::models::testing {

// `activation` / `weight`: ActivationQuantizerSpec / WeightQuantizerSpec text, e.g.
// "pact { bits: 4 }" and "dorefa { bits: 4 }". Fails the test (and returns a full-precision
// builder) when a spec is rejected; needs //pact/quant:all_quantizers linked.
inline std::shared_ptr<const quant::LayerBuilder> MakeLayerBuilder(const std::string& activation,
                                                                   const std::string& weight,
                                                                   bool quantize_first_last) {
  const auto activation_spec =
      pact::testing::ParseTextProtoOrDie<quant::ActivationQuantizerSpec>(activation);
  const auto weight_spec = pact::testing::ParseTextProtoOrDie<quant::WeightQuantizerSpec>(weight);
  auto a = quant::GetActivationQuantizerRegistry().Create(activation_spec, {});
  auto w = quant::GetWeightQuantizerRegistry().Create(weight_spec, {});
  EXPECT_TRUE(a.ok()) << a.status();
  EXPECT_TRUE(w.ok()) << w.status();
  if (!a.ok() || !w.ok()) return quant::LayerBuilder::FullPrecision();
  return std::make_shared<quant::LayerBuilder>(*a, *w, quantize_first_last);
}

}  // namespace pact::models::testing

#endif  // PACT_MODELS_TEST_BUILDERS_H_
