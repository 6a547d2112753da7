// Models for the deployment tests: built from a spec and two quantizer specs, warmed so that
// BatchNorm statistics and data-initialized quantizer state are not at their initial values.
#ifndef PACT_DEPLOY_TEST_MODELS_H_
#define PACT_DEPLOY_TEST_MODELS_H_

#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <string>

#include "gtest/gtest.h"
#include "models/model.h"
#include "models/test_builders.h"
#include "pact/core/test_util.h"

namespace pact::deploy::testing {

// `spec` is a ModelSpec text ("resnet20 {}"); the quantizers are ActivationQuantizerSpec and
// WeightQuantizerSpec texts. Null (with a test failure) when the model cannot be built.
inline std::shared_ptr<models::Model> BuildTestModel(const std::string& spec,
                                                     const std::string& activation,
                                                     const std::string& weight,
                                                     bool quantize_first_last, uint64_t seed) {
  torch::manual_seed(seed);
  models::BuildContext context;
  context.layers = models::testing::MakeLayerBuilder(activation, weight, quantize_first_last);
  auto model = models::GetModelRegistry().Create(
      pact::testing::ParseTextProtoOrDie<models::ModelSpec>(spec), context);
  EXPECT_TRUE(model.ok()) << model.status();
  return model.ok() ? *model : nullptr;
}

// A few training-mode forwards (no gradient), then evaluation mode.
inline void Warm(models::Model& model, const torch::Tensor& images) {
  model.train();
  torch::NoGradGuard no_grad;
  for (int i = 0; i < 3; ++i) model.forward(images);
  model.eval();
}

// Share of rows whose arg-max agrees.
inline double Agreement(const torch::Tensor& a, const torch::Tensor& b) {
  return a.argmax(1).eq(b.argmax(1)).to(torch::kDouble).mean().item<double>();
}

}  // namespace pact::deploy::testing

#endif  // PACT_DEPLOY_TEST_MODELS_H_
