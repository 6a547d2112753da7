// Registry behaviour, option validation and the per-layer summary (models/model.h).
#include "models/model.h"

#include <torch/torch.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "glog/logging.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "models/test_builders.h"
#include "pact/core/test_util.h"
#include "pact/quant/layers.h"

namespace pact::models {
namespace {

using ::pact::models::testing::MakeLayerBuilder;
using ::pact::testing::ParseTextProtoOrDie;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

absl::StatusOr<std::shared_ptr<Model>> Create(const std::string& spec,
                                              const BuildContext& context = {}) {
  return GetModelRegistry().Create(ParseTextProtoOrDie<ModelSpec>(spec), context);
}

TEST(ModelRegistryTest, EveryChoiceIsLinked) {
  EXPECT_THAT(GetModelRegistry().Names(),
              ElementsAre("alexnet_bn", "fashion_convnet", "resnet18_preact", "resnet20",
                          "resnet50_preact", "svhn_convnet"));
  std::vector<std::string> choices = ModelRegistry::ChoiceNames();
  std::sort(choices.begin(), choices.end());
  EXPECT_EQ(GetModelRegistry().Names(), choices);
}

TEST(ModelRegistryTest, UnknownModelListsKnownModels) {
  const absl::Status status = GetModelRegistry().CheckName("nope");
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("unknown model 'nope'; known: [alexnet_bn, fashion_convnet, "
                        "resnet18_preact, resnet20, resnet50_preact, svhn_convnet]"));
}

TEST(ModelRegistryTest, EmptySpecListsChoices) {
  const auto model = Create("");
  EXPECT_EQ(model.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(model.status().message()), HasSubstr("set exactly one of {resnet20,"));
}

TEST(ModelOptionsTest, InvalidOptionsNameFieldAndValue) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"resnet20 { depth: 18 }",
       "model 'resnet20': resnet20.depth: must be 6n+2 with n >= 1 (20, 32, 44, 56, 110), got 18"},
      {"resnet20 { depth: 2 }", "resnet20.depth: must be 6n+2"},
      {"resnet20 { num_classes: 0 }", "resnet20.num_classes: must be > 0, got 0"},
      {"resnet20 { base_width: -1 }", "resnet20.base_width: must be > 0, got -1"},
      {"resnet20 { shortcut: SHORTCUT_UNSPECIFIED }", "resnet20.shortcut: must be"},
      {"resnet20 { block: BLOCK_UNSPECIFIED }", "resnet20.block: must be"},
      {"fashion_convnet { channels1: 0 }", "fashion_convnet.channels1: must be > 0, got 0"},
      {"fashion_convnet { hidden: -3 }", "fashion_convnet.hidden: must be > 0, got -3"},
      {"svhn_convnet { dropout: 1 }", "svhn_convnet.dropout: must be in [0, 1), got 1"},
      {"svhn_convnet { num_classes: -1 }", "svhn_convnet.num_classes: must be > 0, got -1"},
      {"alexnet_bn { num_classes: 0 }", "alexnet_bn.num_classes: must be > 0, got 0"},
      {"resnet18_preact { num_classes: 0 }", "resnet18_preact.num_classes: must be > 0, got 0"},
      {"resnet50_preact { num_classes: 0 }", "resnet50_preact.num_classes: must be > 0, got 0"},
  };
  for (const auto& [spec, message] : cases) {
    const auto model = Create(spec);
    EXPECT_EQ(model.status().code(), absl::StatusCode::kInvalidArgument) << spec;
    EXPECT_THAT(std::string(model.status().message()), HasSubstr(message)) << spec;
  }
}

TEST(ModelOptionsTest, MissingLayerBuilderIsAnError) {
  BuildContext context;
  context.layers = nullptr;
  EXPECT_EQ(Create("fashion_convnet {}", context).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ModelOptionsTest, BaseWidthScalesResNet) {
  // Independent count (python3-torch, see models_test.cc): ResNet-20 with base width 8.
  PACT_ASSERT_OK_AND_ASSIGN(auto model, Create("resnet20 { base_width: 8 }"));
  EXPECT_EQ(CountWeights(*model), 68050);
}

class SummaryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    torch::manual_seed(0);
    BuildContext context;
    context.layers = MakeLayerBuilder("pact { bits: 4 }", "dorefa { bits: 4 }", false);
    PACT_ASSERT_OK_AND_ASSIGN(model_, Create("resnet20 {}", context));
    model_->eval();
    torch::NoGradGuard no_grad;
    model_->forward(torch::zeros({1, 3, 32, 32}));
  }
  std::shared_ptr<Model> model_;
};

TEST_F(SummaryTest, RowsDescribeEveryQuantizableLayer) {
  const std::vector<LayerSummary> rows = SummarizeLayers(*model_);
  ASSERT_EQ(rows.size(), 39u);  // 19 convs + fc + 19 activations

  EXPECT_EQ(rows[0].name, "conv1");
  EXPECT_EQ(rows[0].kind, "conv");
  EXPECT_THAT(rows[0].output_shape, ElementsAre(1, 16, 32, 32));
  EXPECT_EQ(rows[0].params, 3 * 16 * 9);
  EXPECT_EQ(rows[0].weight_bits, quant::kFullPrecisionBits);

  EXPECT_EQ(rows[1].name, "act1");
  EXPECT_EQ(rows[1].kind, "pact");
  EXPECT_EQ(rows[1].params, 1);  // alpha
  EXPECT_EQ(rows[1].activation_bits, 0);

  EXPECT_EQ(rows[2].name, "layer1.0.conv1");
  EXPECT_EQ(rows[2].weight_bits, 4);
  EXPECT_EQ(rows[3].name, "layer1.0.act1");
  EXPECT_EQ(rows[3].activation_bits, 4);

  EXPECT_EQ(rows[37].name, "layer3.2.act2");
  EXPECT_EQ(rows[37].activation_bits, 0);
  EXPECT_EQ(rows[38].name, "fc");
  EXPECT_EQ(rows[38].kind, "linear");
  EXPECT_THAT(rows[38].output_shape, ElementsAre(1, 10));
  EXPECT_EQ(rows[38].params, 64 * 10 + 10);
  EXPECT_EQ(rows[38].weight_bits, quant::kFullPrecisionBits);
}

TEST_F(SummaryTest, FormatSummaryPrintsTableAndTotals) {
  const std::string summary = FormatSummary(*model_);
  EXPECT_THAT(summary, HasSubstr("name"));
  EXPECT_THAT(summary, HasSubstr("output shape"));
  EXPECT_THAT(summary, HasSubstr("weight bits"));
  EXPECT_THAT(summary, HasSubstr("activation bits"));
  EXPECT_THAT(summary, ::testing::ContainsRegex("\nconv1 +conv +16x32x32 +432 +fp\n"));
  EXPECT_THAT(summary, ::testing::ContainsRegex("\nact1 +pact +16x32x32 +1 +clip\n"));
  EXPECT_THAT(summary, ::testing::ContainsRegex("\nlayer2.0.conv1 +conv +32x16x16 +4,608 +4\n"));
  EXPECT_THAT(summary, ::testing::ContainsRegex("\nlayer2.0.act1 +pact +32x16x16 +1 +4\n"));
  EXPECT_THAT(summary, ::testing::ContainsRegex("\nfc +linear +10 +650 +fp\n"));
  EXPECT_THAT(summary, HasSubstr("weights: 269,722; quantizer parameters (PACT alphas, LSQ "
                                 "steps): 19; quantized weight layers: 18/20; quantized "
                                 "activations: 17/19"));
  LOG(INFO) << "\n" << summary;
}

TEST_F(SummaryTest, CountWeightsExcludesAlphas) {
  int64_t all = 0;
  for (const auto& p : model_->parameters()) all += p.numel();
  EXPECT_EQ(all, 269722 + 19);
  EXPECT_EQ(CountWeights(*model_), 269722);
}

TEST(SummaryBeforeForwardTest, ShapesAreDashes) {
  PACT_ASSERT_OK_AND_ASSIGN(auto model, Create("fashion_convnet {}"));
  const std::string summary = FormatSummary(*model);
  EXPECT_THAT(summary, ::testing::ContainsRegex("\nconv1 +conv +- +400 +fp\n"));
  EXPECT_THAT(summary, ::testing::ContainsRegex("\nact1 +relu +- +0 +fp\n"));
}

TEST(InferenceGraphTest, BadGraphsAreErrorsNamingTheNode) {
  torch::nn::Module model;
  model.register_module("relu", torch::nn::ReLU());
  InferenceGraph unknown;
  unknown.Module("conv9", unknown.Input());
  EXPECT_THAT(
      std::string(RunInferenceGraph(model, unknown, torch::zeros({1, 1, 2, 2})).status().message()),
      HasSubstr("node 1 names module 'conv9', which the model does not have"));
  InferenceGraph unsupported;
  unsupported.Module("relu", unsupported.Input());
  EXPECT_THAT(
      std::string(
          RunInferenceGraph(model, unsupported, torch::zeros({1, 1, 2, 2})).status().message()),
      HasSubstr("module 'relu' (torch::nn::ReLUImpl) is not a kind the graph can run"));
  InferenceGraph backwards;
  backwards.Add(backwards.Input(), 5);
  EXPECT_THAT(
      std::string(RunInferenceGraph(model, backwards, torch::zeros({1})).status().message()),
      HasSubstr("node 1 (add) reads node 5, which does not come before it"));
  EXPECT_FALSE(RunInferenceGraph(model, InferenceGraph(), torch::zeros({1})).ok());
}

}  // namespace
}  // namespace pact::models
