// The LSQ quantizers as layers: registration and validation, the step's data initialization,
// its gradient scale, where its parameters live, warm-up and the first/last policy.
#include "pact/quant/lsq.h"

#include <torch/torch.h>

#include <cmath>
#include <memory>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pact/core/test_util.h"
#include "pact/quant/layers.h"
#include "pact/quant/lsq_ops.h"
#include "pact/quant/quantizer.h"
#include "pact/quant/quantizer_spec.pb.h"

namespace pact::quant {
namespace {

using ::pact::testing::ParseTextProtoOrDie;
using ::testing::HasSubstr;

std::shared_ptr<const ActivationQuantizer> Activation(const std::string& text) {
  auto q = GetActivationQuantizerRegistry().Create(
      ParseTextProtoOrDie<ActivationQuantizerSpec>(text), {});
  EXPECT_TRUE(q.ok()) << q.status();
  return q.ok() ? *q : nullptr;
}

std::shared_ptr<const WeightQuantizer> Weight(const std::string& text) {
  auto q = GetWeightQuantizerRegistry().Create(ParseTextProtoOrDie<WeightQuantizerSpec>(text), {});
  EXPECT_TRUE(q.ok()) << q.status();
  return q.ok() ? *q : nullptr;
}

TEST(LsqActivationTest, StepStartsFromTheFirstTrainingBatchAsTheSectionTwoOneRule) {
  const auto control = std::make_shared<QuantControl>();
  const auto act = std::dynamic_pointer_cast<LsqActivation>(
      Activation("lsq { bits: 3 }")->Create(/*quantize=*/true, control));
  ASSERT_NE(act, nullptr);
  EXPECT_EQ(act->kind(), "lsq");
  EXPECT_EQ(act->bits(), 3);
  EXPECT_FALSE(act->clip_level().defined());  // no PACT alpha: no lambda_alpha penalty
  torch::manual_seed(3);
  const torch::Tensor x = torch::randn({4, 2, 5, 5});
  act->eval();
  act->forward(x);  // evaluation does not initialize
  EXPECT_EQ(act->step_initialized.item<float>(), 0.0f);
  act->train();
  act->forward(x);
  const double expected = 2.0 * x.abs().to(torch::kDouble).mean().item<double>() / std::sqrt(7.0);
  EXPECT_FLOAT_EQ(act->step.item<float>(), static_cast<float>(expected));
  EXPECT_EQ(act->step_initialized.item<float>(), 1.0f);
  act->forward(x * 10);  // once only
  EXPECT_FLOAT_EQ(act->step.item<float>(), static_cast<float>(expected));
}

TEST(LsqActivationTest, ForwardAndGradientAreTheOpsWithTheGradientScaleOfFeaturesPerExample) {
  const auto act = std::dynamic_pointer_cast<LsqActivation>(
      Activation("lsq { bits: 2 step_init: 0.3 }")->Create(true, nullptr));
  ASSERT_NE(act, nullptr);
  EXPECT_EQ(act->step_initialized.item<float>(), 1.0f);  // a given step_init counts as set
  torch::manual_seed(4);
  const torch::Tensor x = torch::randn({6, 3, 4, 4}).requires_grad_(true);
  const torch::Tensor grad = torch::randn({6, 3, 4, 4});
  act->forward(x).backward(grad);

  const torch::Tensor x2 = x.detach().requires_grad_(true);
  const torch::Tensor step = torch::full({1}, 0.3).requires_grad_(true);
  const double g = 1.0 / std::sqrt(48.0 * 3.0);  // N = 3 * 4 * 4 features per example, Qp = 3
  const torch::Tensor y = Lsq(x2, step, LsqUnsignedRange(2), g, 1e-8);
  y.backward(grad);
  EXPECT_TRUE(torch::equal(act->forward(x.detach()), y.detach()));
  EXPECT_TRUE(torch::equal(x.grad(), x2.grad()));
  EXPECT_TRUE(torch::equal(act->step.grad(), step.grad()));
  // Unsigned: every negative input is 0, like the ReLU it replaces.
  EXPECT_EQ(act->forward(-x.detach().abs()).abs().max().item<float>(), 0.0f);
}

TEST(LsqActivationTest, WarmUpIsAReluAndFullPrecisionPositionsGetOne) {
  const auto control = std::make_shared<QuantControl>();
  const auto act = Activation("lsq {}")->Create(true, control);
  const torch::Tensor x = torch::randn({2, 8});
  control->set_enabled(false);
  EXPECT_TRUE(torch::equal(act->forward(x), torch::relu(x)));
  const auto fp = Activation("lsq {}")->Create(/*quantize=*/false, control);
  EXPECT_EQ(fp->kind(), "relu");
}

TEST(LsqWeightTest, EachLayerLearnsItsOwnStepAsTheChildWeightQuant) {
  const auto lsq = Weight("lsq { bits: 4 }");
  ASSERT_NE(lsq, nullptr);
  EXPECT_EQ(lsq->kind(), "lsq");
  EXPECT_EQ(lsq->bits(), 4);
  torch::manual_seed(5);
  QuantConv2d a(torch::nn::Conv2dOptions(3, 8, 3), lsq, nullptr);
  QuantConv2d b(torch::nn::Conv2dOptions(3, 8, 3), lsq, nullptr);
  std::vector<std::string> names;
  for (const auto& item : a->named_parameters()) names.push_back(item.key());
  EXPECT_THAT(names, ::testing::ElementsAre("weight", "bias", "weight_quant.step"));
  EXPECT_EQ(a->named_buffers().size(), 1u);  // weight_quant.step_initialized
  const torch::Tensor x = torch::randn({2, 3, 6, 6});
  a->forward(x);
  b->forward(x);
  auto* qa = a->named_parameters()["weight_quant.step"].data_ptr<float>();
  auto* qb = b->named_parameters()["weight_quant.step"].data_ptr<float>();
  EXPECT_NE(qa, qb);
  // From the weights (Sec. 2.1, signed: Qp = 7), at the first use, in any mode.
  const double expected =
      2.0 * a->weight.abs().to(torch::kDouble).mean().item<double>() / std::sqrt(7.0);
  EXPECT_FLOAT_EQ(*qa, static_cast<float>(expected));
  // The quantized weights are integer multiples of the step in [-8, 7].
  const torch::Tensor codes = a->QuantizedWeight() / *qa;
  EXPECT_TRUE(torch::allclose(codes, codes.round(), 0, 1e-4));
  EXPECT_GE(codes.min().item<float>(), -8.0f - 1e-4f);
  EXPECT_LE(codes.max().item<float>(), 7.0f + 1e-4f);
  // The gradient scale is 1 / sqrt(weights * Qp): the layer's step gradient is the op's.
  const torch::Tensor grad_y = torch::randn({2, 8, 4, 4});
  a->zero_grad();
  a->forward(x).backward(grad_y);
  const torch::Tensor w = a->weight.detach().requires_grad_(true);
  const torch::Tensor step = torch::full({1}, *qa).requires_grad_(true);
  torch::conv2d(x, Lsq(w, step, LsqSignedRange(4), 1.0 / std::sqrt(8.0 * 27.0 * 7.0), 1e-8),
                a->bias.detach())
      .backward(grad_y);
  EXPECT_TRUE(torch::equal(a->named_parameters()["weight_quant.step"].grad(), step.grad()));
  EXPECT_TRUE(torch::equal(a->weight.grad(), w.grad()));
}

TEST(LsqQuantizerTest, OptionsAreValidatedWithTheirPaths) {
  const auto activation = GetActivationQuantizerRegistry()
                              .Create(ParseTextProtoOrDie<ActivationQuantizerSpec>(
                                          "lsq { bits: 0 step_init: -1 step_min: 0 }"),
                                      {})
                              .status();
  EXPECT_EQ(activation.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(activation.message()), HasSubstr("lsq.bits: must be in [1, 16], got 0"));
  EXPECT_THAT(std::string(activation.message()), HasSubstr("lsq.step_init: must be >= 0"));
  EXPECT_THAT(std::string(activation.message()), HasSubstr("lsq.step_min: must be > 0"));
  const auto weight = GetWeightQuantizerRegistry()
                          .Create(ParseTextProtoOrDie<WeightQuantizerSpec>("lsq { bits: 1 }"), {})
                          .status();
  EXPECT_THAT(std::string(weight.message()), HasSubstr("lsq.bits: must be in [2, 16]"));
}

}  // namespace
}  // namespace pact::quant
