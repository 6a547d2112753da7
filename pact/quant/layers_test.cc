// Tests of the quantized layers, the LayerBuilder's first/middle/last policy, QuantControl,
// and the quantizer registries built from text specs.
#include "pact/quant/layers.h"

#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pact/core/test_util.h"
#include "pact/quant/pact_ops.h"
#include "pact/quant/quantizer.h"
#include "pact/quant/quantizer_spec.pb.h"

namespace pact::quant {
namespace {

using ::pact::testing::ParseTextProtoOrDie;
using ::testing::HasSubstr;
using ::testing::IsSupersetOf;

std::shared_ptr<const ActivationQuantizer> MakeActivation(const std::string& text) {
  const auto spec = ParseTextProtoOrDie<ActivationQuantizerSpec>(text);
  auto quantizer = GetActivationQuantizerRegistry().Create(spec, QuantizerContext{});
  EXPECT_TRUE(quantizer.ok()) << quantizer.status();
  return quantizer.ok() ? *quantizer : nullptr;
}

std::shared_ptr<const WeightQuantizer> MakeWeight(const std::string& text) {
  const auto spec = ParseTextProtoOrDie<WeightQuantizerSpec>(text);
  auto quantizer = GetWeightQuantizerRegistry().Create(spec, QuantizerContext{});
  EXPECT_TRUE(quantizer.ok()) << quantizer.status();
  return quantizer.ok() ? *quantizer : nullptr;
}

LayerBuilder PactDorefaBuilder(bool quantize_first_last) {
  return LayerBuilder(MakeActivation("pact { bits: 4 alpha_init: 6 alpha_min: 0.01 }"),
                      MakeWeight("dorefa { bits: 3 }"), quantize_first_last);
}

torch::nn::Conv2dOptions ConvOptions() {
  return torch::nn::Conv2dOptions(3, 8, 3).stride(2).padding(1).bias(true);
}

// ------------------------------------------------------------------------------------------
// LayerBuilder policy.

TEST(LayerBuilderTest, FirstAndLastStayFullPrecisionByDefault) {
  const LayerBuilder builder = PactDorefaBuilder(/*quantize_first_last=*/false);
  EXPECT_EQ(builder.Conv(ConvOptions(), LayerPosition::kFirst)->weight_bits(), kFullPrecisionBits);
  EXPECT_EQ(builder.Conv(ConvOptions(), LayerPosition::kMiddle)->weight_bits(), 3);
  EXPECT_EQ(builder.Linear(torch::nn::LinearOptions(8, 10), LayerPosition::kMiddle)->weight_bits(),
            3);
  EXPECT_EQ(builder.Linear(torch::nn::LinearOptions(8, 10), LayerPosition::kLast)->weight_bits(),
            kFullPrecisionBits);
  // Activations next to the first and last layers still clip with a learnable alpha (PACT with
  // bits 0); the middle ones quantize.
  const auto first = builder.Activation(LayerPosition::kFirst);
  const auto middle = builder.Activation(LayerPosition::kMiddle);
  const auto last = builder.Activation(LayerPosition::kLast);
  EXPECT_EQ(first->kind(), "pact");
  EXPECT_EQ(first->bits(), 0);
  EXPECT_EQ(middle->kind(), "pact");
  EXPECT_EQ(middle->bits(), 4);
  EXPECT_EQ(last->bits(), 0);
}

TEST(LayerBuilderTest, QuantizeFirstLastQuantizesEveryPosition) {
  const LayerBuilder builder = PactDorefaBuilder(/*quantize_first_last=*/true);
  for (LayerPosition position :
       {LayerPosition::kFirst, LayerPosition::kMiddle, LayerPosition::kLast}) {
    EXPECT_EQ(builder.Conv(ConvOptions(), position)->weight_bits(), 3);
    EXPECT_EQ(builder.Linear(torch::nn::LinearOptions(8, 10), position)->weight_bits(), 3);
    EXPECT_EQ(builder.Activation(position)->bits(), 4);
  }
}

TEST(LayerBuilderTest, FullPrecisionUsesReluAndFloatWeights) {
  const auto builder = LayerBuilder::FullPrecision();
  for (LayerPosition position :
       {LayerPosition::kFirst, LayerPosition::kMiddle, LayerPosition::kLast}) {
    const auto activation = builder->Activation(position);
    EXPECT_EQ(activation->kind(), "relu");
    EXPECT_EQ(activation->bits(), kFullPrecisionBits);
    EXPECT_EQ(builder->Conv(ConvOptions(), position)->weight_bits(), kFullPrecisionBits);
  }
  const torch::Tensor x = torch::randn({4, 5});
  EXPECT_TRUE(
      torch::equal(builder->Activation(LayerPosition::kMiddle)->forward(x), torch::relu(x)));
}

TEST(LayerBuilderTest, QuantControlOffRunsUnquantized) {
  const LayerBuilder builder = PactDorefaBuilder(/*quantize_first_last=*/false);
  auto conv = builder.Conv(ConvOptions(), LayerPosition::kMiddle);
  auto activation =
      std::dynamic_pointer_cast<PactActivation>(builder.Activation(LayerPosition::kMiddle));
  ASSERT_NE(activation, nullptr);
  const torch::Tensor x = torch::randn({2, 3, 9, 9});
  const torch::Tensor h = torch::randn({2, 8, 5, 5}) * 4;
  const torch::Tensor quantized_conv = conv->forward(x);
  const torch::Tensor quantized_act = activation->forward(h);

  builder.control()->set_enabled(false);
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(torch::allclose(conv->forward(x), torch::conv2d(x, conv->weight, conv->bias, 2, 1)));
  EXPECT_TRUE(conv->QuantizedWeight().is_same(conv->weight));
  // Warm-up keeps PACT's clipping but not its rounding.
  EXPECT_TRUE(torch::equal(activation->forward(h), h.clamp(0, 6)));
  EXPECT_FALSE(torch::equal(quantized_act, h.clamp(0, 6)));
  EXPECT_FALSE(torch::allclose(quantized_conv, conv->forward(x)));

  builder.control()->set_enabled(true);
  EXPECT_TRUE(torch::equal(activation->forward(h), quantized_act));
}

// ------------------------------------------------------------------------------------------
// Quantized layers.

TEST(QuantConv2dTest, MatchesTorchConvOnDorefaWeights) {
  const auto weight_quantizer = MakeWeight("dorefa { bits: 2 }");
  for (int64_t groups : {1, 2}) {
    const auto options =
        torch::nn::Conv2dOptions(4, 6, 3).stride(2).padding(1).groups(groups).bias(groups == 1);
    QuantConv2d conv(options, weight_quantizer, nullptr);
    const torch::Tensor x = torch::randn({2, 4, 11, 11});
    const torch::Tensor expected =
        torch::conv2d(x, DorefaWeight(conv->weight, 2), conv->bias, 2, 1, 1, groups);
    EXPECT_TRUE(torch::allclose(conv->forward(x), expected));
    EXPECT_TRUE(torch::equal(conv->QuantizedWeight(), DorefaWeight(conv->weight, 2)));
    EXPECT_EQ(conv->last_output_shape(), (std::vector<int64_t>{2, 6, 6, 6}));
    // The float master weights receive the straight-through gradient.
    conv->forward(x).sum().backward();
    EXPECT_TRUE(conv->weight.grad().defined());
    EXPECT_GT(conv->weight.grad().abs().sum().item<double>(), 0.0);
  }
}

TEST(QuantLinearTest, MatchesTorchLinearOnDorefaWeights) {
  QuantLinear linear(torch::nn::LinearOptions(16, 5), MakeWeight("dorefa { bits: 4 }"), nullptr);
  const torch::Tensor x = torch::randn({3, 16});
  EXPECT_TRUE(torch::allclose(linear->forward(x),
                              torch::linear(x, DorefaWeight(linear->weight, 4), linear->bias)));
  EXPECT_EQ(linear->weight_bits(), 4);
  EXPECT_EQ(linear->last_output_shape(), (std::vector<int64_t>{3, 5}));
}

// ------------------------------------------------------------------------------------------
// PactActivation.

TEST(PactActivationTest, QuantizesWithItsAlpha) {
  PactActivation activation(3, /*alpha_init=*/2.0, /*alpha_min=*/0.01, nullptr);
  const torch::Tensor x = torch::randn({4, 100}) * 2;
  EXPECT_TRUE(torch::equal(activation.forward(x), PactForwardKernel(x, 2.0, 3)));
  EXPECT_EQ(activation.last_output_shape(), (std::vector<int64_t>{4, 100}));
}

TEST(PactActivationTest, GuardClampsAlphaCountsHitsAndKeepsTheGradient) {
  PactActivation activation(4, /*alpha_init=*/1.0, /*alpha_min=*/0.5, nullptr);
  {
    torch::NoGradGuard no_grad;
    activation.alpha.fill_(0.1);  // as a bad optimizer step could leave it
  }
  const torch::Tensor x = torch::linspace(-1, 2, 301);
  const torch::Tensor y = activation.forward(x);
  EXPECT_EQ(activation.guard_hits(), 1);
  EXPECT_TRUE(torch::equal(y, PactForwardKernel(x, 0.5, 4)));
  y.sum().backward();
  // dL/dalpha counts the inputs at or above the clamped alpha, 0.5.
  EXPECT_EQ(activation.alpha.grad().item<float>(), (x >= 0.5).sum().item<float>());
  activation.forward(x);
  EXPECT_EQ(activation.guard_hits(), 2);
  {
    torch::NoGradGuard no_grad;
    activation.alpha.fill_(0.75);
  }
  activation.forward(x);
  EXPECT_EQ(activation.guard_hits(), 2);
}

TEST(PactActivationTest, PercentileInitSetsAlphaOnTheFirstTrainingForwardOnly) {
  const auto control = std::make_shared<QuantControl>();
  PactActivation act(4, /*alpha_init=*/10.0, /*alpha_min=*/0.5, control, /*percentile=*/50.0);
  EXPECT_EQ(act.alpha_initialized.item<float>(), 0.0f);
  const torch::Tensor x = torch::arange(1.0, 101.0).reshape({4, 25});  // 1 .. 100
  act.eval();
  act.forward(x);  // evaluation never initializes
  EXPECT_EQ(act.alpha.item<float>(), 10.0f);
  act.train();
  act.forward(x);
  EXPECT_EQ(act.alpha.item<float>(), 50.0f);  // the 50th of 100 values
  EXPECT_EQ(act.alpha_initialized.item<float>(), 1.0f);
  act.forward(x * 3);  // once only
  EXPECT_EQ(act.alpha.item<float>(), 50.0f);
  // A percentile below alpha_min takes alpha_min.
  PactActivation low(4, 10.0, 0.5, control, 50.0);
  low.forward(torch::zeros({10}));
  EXPECT_EQ(low.alpha.item<float>(), 0.5f);
  // Without a percentile there is no buffer, so checkpoints are as before.
  PactActivation plain(4, 10.0, 0.5, control);
  EXPECT_TRUE(plain.buffers().empty());
}

TEST(PactActivationTest, PercentileInitSeesTheBatchNormOutputOnTheFusedPath) {
  const auto control = std::make_shared<QuantControl>();
  torch::manual_seed(1);
  torch::nn::BatchNorm2d bn(3);
  const torch::Tensor x = torch::randn({8, 3, 5, 5}) * 4 + 2;
  PactActivation act(4, 10.0, 1e-3, control, 100.0);
  const torch::Tensor y = act.ForwardBatchNorm(*bn, x);
  // The 100th percentile is the largest normalized value, so nothing is clipped.
  torch::nn::BatchNorm2d reference(3);
  const torch::Tensor z = reference->forward(x);
  EXPECT_NEAR(act.alpha.item<float>(), z.max().item<float>(), 1e-5);
  EXPECT_TRUE(torch::equal(bn->running_mean, reference->running_mean));  // updated once
  EXPECT_EQ(y.sizes(), x.sizes());
}

TEST(PactActivationTest, CollectAlphasFindsEveryPactLayer) {
  torch::nn::Sequential net;
  const LayerBuilder builder = PactDorefaBuilder(false);
  net->push_back(builder.Activation(LayerPosition::kFirst));
  net->push_back(builder.Activation(LayerPosition::kMiddle));
  net->push_back(std::make_shared<ReluActivation>());
  EXPECT_EQ(CollectAlphas(*net).size(), 2u);
}

// ------------------------------------------------------------------------------------------
// Registries.

TEST(QuantizerRegistryTest, EveryQuantizerIsLinked) {
  EXPECT_THAT(GetActivationQuantizerRegistry().Names(), IsSupersetOf({"pact", "relu"}));
  EXPECT_THAT(GetWeightQuantizerRegistry().Names(), IsSupersetOf({"dorefa", "none"}));
}

TEST(QuantizerRegistryTest, BuildsQuantizersFromTextSpecs) {
  const auto control = std::make_shared<QuantControl>();
  const auto pact = MakeActivation("pact { bits: 3 alpha_init: 6 alpha_min: 0.01 }");
  ASSERT_NE(pact, nullptr);
  const auto quantized = std::dynamic_pointer_cast<PactActivation>(pact->Create(true, control));
  ASSERT_NE(quantized, nullptr);
  EXPECT_EQ(quantized->bits(), 3);
  EXPECT_FLOAT_EQ(quantized->alpha.item<float>(), 6.0f);
  EXPECT_EQ(pact->Create(false, control)->bits(), 0);

  const auto defaults = MakeActivation("pact {}");
  const auto default_layer =
      std::dynamic_pointer_cast<PactActivation>(defaults->Create(true, control));
  EXPECT_EQ(default_layer->bits(), 4);
  EXPECT_FLOAT_EQ(default_layer->alpha.item<float>(), 10.0f);

  EXPECT_EQ(MakeActivation("relu {}")->Create(true, control)->kind(), "relu");

  const auto dorefa = MakeWeight("dorefa { bits: 2 }");
  EXPECT_EQ(dorefa->kind(), "dorefa");
  EXPECT_EQ(dorefa->bits(), 2);
  const torch::Tensor w = torch::randn({8, 4, 3, 3});
  EXPECT_TRUE(torch::equal(dorefa->Create()->forward(w), DorefaWeight(w, 2)));
  EXPECT_EQ(MakeWeight("dorefa { bits: 0 }")->bits(), kFullPrecisionBits);
  EXPECT_EQ(MakeWeight("dorefa { bits: 32 }")->bits(), kFullPrecisionBits);
  const auto none = MakeWeight("none {}");
  EXPECT_EQ(none->kind(), "none");
  EXPECT_TRUE(none->Create()->forward(w).is_same(w));
}

absl::Status ActivationStatus(const std::string& text) {
  return GetActivationQuantizerRegistry()
      .Create(ParseTextProtoOrDie<ActivationQuantizerSpec>(text), QuantizerContext{})
      .status();
}

absl::Status WeightStatus(const std::string& text) {
  return GetWeightQuantizerRegistry()
      .Create(ParseTextProtoOrDie<WeightQuantizerSpec>(text), QuantizerContext{})
      .status();
}

TEST(QuantizerRegistryTest, RejectsBadOptionsWithClearMessages) {
  struct Case {
    absl::Status status;
    std::string message;
  };
  const std::vector<Case> cases = {
      {ActivationStatus("pact { bits: 17 }"),
       "activation quantizer 'pact': pact.bits: must be in [0, 16] (0 = clipping without "
       "quantization), got 17"},
      {ActivationStatus("pact { bits: -1 }"),
       "pact.bits: must be in [0, 16] (0 = clipping "
       "without quantization), got -1"},
      {ActivationStatus("pact { alpha_init: 1 alpha_min: 2 }"),
       "activation quantizer 'pact': pact.alpha_min: must be <= alpha_init (1), got 2"},
      {ActivationStatus("pact { alpha_init: 0 }"), "pact.alpha_init: must be > 0, got 0"},
      {ActivationStatus("pact { alpha_min: 0 }"), "pact.alpha_min: must be > 0, got 0"},
      {ActivationStatus("pact { bits: 99 alpha_min: 0 }"),
       "activation quantizer 'pact': pact.bits: must be in [0, 16] (0 = clipping without "
       "quantization), got 99; pact.alpha_min: must be > 0, got 0"},
      {WeightStatus("dorefa { bits: 20 }"),
       "weight quantizer 'dorefa': dorefa.bits: must be in [0, 16] or 32 (0 and 32 = full "
       "precision), got 20"},
      {ActivationStatus(""), "no implementation selected"},
      {WeightStatus(""), "no implementation selected"},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(c.status.code(), absl::StatusCode::kInvalidArgument) << c.status;
    EXPECT_THAT(std::string(c.status.message()), HasSubstr(c.message));
  }
}

}  // namespace
}  // namespace pact::quant
