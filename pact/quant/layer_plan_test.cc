#include "pact/quant/layer_plan.h"

#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_join.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pact/core/test_util.h"
#include "pact/quant/layers.h"

namespace pact::quant {
namespace {

using ::pact::testing::ParseTextProtoOrDie;
using ::testing::HasSubstr;

// conv1 (first) -> act1 (first) -> block.conv (middle) -> block.act (middle) -> act_last (last)
// -> fc (last): the shape of the paper's networks, small.
class TinyNet : public torch::nn::Module {
 public:
  explicit TinyNet(const LayerBuilder& layers) {
    conv1 = register_module(
        "conv1", layers.Conv(torch::nn::Conv2dOptions(3, 4, 3).padding(1), LayerPosition::kFirst));
    act1 = register_module("act1", layers.Activation(LayerPosition::kFirst));
    auto block = register_module("block", std::make_shared<torch::nn::Module>());
    conv = block->register_module(
        "conv", layers.Conv(torch::nn::Conv2dOptions(4, 4, 3).padding(1), LayerPosition::kMiddle));
    act = block->register_module("act", layers.Activation(LayerPosition::kMiddle));
    act_last = register_module("act_last", layers.Activation(LayerPosition::kLast));
    fc = register_module("fc", layers.Linear(torch::nn::LinearOptions(4, 3), LayerPosition::kLast));
  }
  torch::Tensor forward(const torch::Tensor& x) {
    torch::Tensor y = act1->forward(conv1->forward(x));
    y = act_last->forward(act->forward(conv->forward(y)));
    return fc->forward(y.mean({2, 3}));
  }

  QuantConv2d conv1{nullptr}, conv{nullptr};
  std::shared_ptr<ActivationModule> act1, act, act_last;
  QuantLinear fc{nullptr};
};

const ModelFactory& TinyFactory() {
  static const auto* factory =
      new ModelFactory([](std::shared_ptr<const LayerBuilder> layers)
                           -> absl::StatusOr<std::shared_ptr<torch::nn::Module>> {
        torch::manual_seed(7);
        return std::shared_ptr<torch::nn::Module>(std::make_shared<TinyNet>(*layers));
      });
  return *factory;
}

QuantizationPolicy Policy(const std::vector<std::string>& rules) {
  QuantizationPolicy policy;
  policy.activation = ParseTextProtoOrDie<ActivationQuantizerSpec>("pact { bits: 4 }");
  policy.weight = ParseTextProtoOrDie<WeightQuantizerSpec>("dorefa { bits: 4 }");
  for (const std::string& rule : rules) {
    policy.rules.push_back(ParseTextProtoOrDie<LayerOverride>(rule));
  }
  return policy;
}

std::vector<LayerSite> TinySites() {
  return {{"conv1", LayerKind::kConv, LayerPosition::kFirst},
          {"act1", LayerKind::kActivation, LayerPosition::kFirst},
          {"block.conv", LayerKind::kConv, LayerPosition::kMiddle},
          {"block.act", LayerKind::kActivation, LayerPosition::kMiddle},
          {"act_last", LayerKind::kActivation, LayerPosition::kLast},
          {"fc", LayerKind::kLinear, LayerPosition::kLast}};
}

// "conv1:W4 act1:A0c ..." with A<bits> for quantized activations, "Afp" for full precision
// ones, W<bits>/Wfp for weights; the quantizer name where it is not pact/dorefa.
std::string Describe(const std::vector<ResolvedLayer>& layers) {
  std::vector<std::string> out;
  const std::vector<LayerSite> sites = TinySites();
  for (size_t i = 0; i < layers.size(); ++i) {
    const ResolvedLayer& l = layers[i];
    std::string d = sites[i].name + ":";
    if (sites[i].kind == LayerKind::kActivation) {
      if (!l.quantize) {
        d += "Afp";
      } else if (l.activation.has_pact()) {
        d += "A" + std::to_string(l.activation.pact().bits());
      } else {
        d += "A?" + l.activation.ShortDebugString();
      }
    } else if (l.weight.has_dorefa()) {
      d += "W" + std::to_string(l.weight.dorefa().bits());
    } else if (!l.weight.has_none() && l.weight.ByteSizeLong() == 0) {
      d += "Wfp";
    } else {
      d += "W?" + l.weight.ShortDebugString();
    }
    out.push_back(d);
  }
  return absl::StrJoin(out, " ");
}

TEST(ResolveLayersTest, WithoutRulesTheFirstAndLastLayersStayFullPrecision) {
  PACT_ASSERT_OK_AND_ASSIGN(auto layers, ResolveLayers(Policy({}), TinySites()));
  EXPECT_EQ(Describe(layers), "conv1:Wfp act1:Afp block.conv:W4 block.act:A4 act_last:Afp fc:Wfp");
  QuantizationPolicy all = Policy({});
  all.quantize_first_last = true;
  PACT_ASSERT_OK_AND_ASSIGN(layers, ResolveLayers(all, TinySites()));
  EXPECT_EQ(Describe(layers), "conv1:W4 act1:A4 block.conv:W4 block.act:A4 act_last:A4 fc:W4");
}

TEST(ResolveLayersTest, FirstLastBitsRuleIsTable2sFl8Row) {
  PACT_ASSERT_OK_AND_ASSIGN(
      auto layers,
      ResolveLayers(Policy({"position: [FIRST, LAST] activation_bits: 8 weight_bits: 8"}),
                    TinySites()));
  // The first/last weights take the recipe's quantizer (DoReFa) at 8 bits.
  EXPECT_EQ(Describe(layers), "conv1:W8 act1:A8 block.conv:W4 block.act:A4 act_last:A8 fc:W8");
}

TEST(ResolveLayersTest, RulesMatchWholeNamesAndTheLastOneWins) {
  PACT_ASSERT_OK_AND_ASSIGN(
      auto layers,
      ResolveLayers(Policy({R"pb(name: "block\\..*" activation_bits: 2 weight_bits: 3)pb",
                            // "conv" alone must not match "block.conv" or "conv1".
                            R"pb(name: "block.conv|conv" weight_bits: 5)pb",
                            R"pb(name: "act.*" activation_bits: 0)pb"}),
                    TinySites()));
  EXPECT_EQ(Describe(layers), "conv1:Wfp act1:Afp block.conv:W5 block.act:A2 act_last:Afp fc:Wfp");
}

TEST(ResolveLayersTest, NameAndPositionMustBothMatch) {
  PACT_ASSERT_OK_AND_ASSIGN(
      auto layers, ResolveLayers(Policy({R"pb(name: "act.*" position: LAST activation_bits: 6)pb"}),
                                 TinySites()));
  EXPECT_EQ(Describe(layers), "conv1:Wfp act1:Afp block.conv:W4 block.act:A4 act_last:A6 fc:Wfp");
}

TEST(ResolveLayersTest, RulesReplaceQuantizersAndZeroBitsMeanFullPrecision) {
  PACT_ASSERT_OK_AND_ASSIGN(auto layers,
                            ResolveLayers(Policy({R"pb(name: "block.act"
                                                       activation { relu {} })pb",
                                                  R"pb(name: "block.conv"
                                                       weight { none {} })pb",
                                                  R"pb(position: FIRST
                                                       weight { dorefa { bits: 2 } })pb",
                                                  R"pb(name: "fc" weight_bits: 0)pb"}),
                                          TinySites()));
  EXPECT_EQ(Describe(layers),
            "conv1:W2 act1:Afp block.conv:W?none { } block.act:A?relu { } act_last:Afp fc:Wfp");
}

TEST(ResolveLayersTest, ARuleThatChangesNoLayerNamesItselfAndListsTheLayers) {
  QuantizationPolicy policy = Policy({R"pb(name: "layer4.*" weight_bits: 8)pb"});
  policy.rule_labels = {"recipes/x.pbtxt:9:3: quantization.layer_override[0]"};
  const absl::Status status = ResolveLayers(policy, TinySites()).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("recipes/x.pbtxt:9:3: quantization.layer_override[0]: matches no "
                        "conv/linear layer of the model (name \"layer4.*\""));
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("its layers are: conv1 (conv, first), act1 (activation, first), "
                        "block.conv (conv), block.act (activation), act_last (activation, last), "
                        "fc (linear, last)"));
  // A name that only matches layers of the other kind changes nothing either.
  EXPECT_THAT(std::string(ResolveLayers(Policy({R"pb(name: "act1" weight_bits: 8)pb"}), TinySites())
                              .status()
                              .message()),
              HasSubstr("layer_override[0]: matches no conv/linear layer"));
}

TEST(ResolveLayersTest, BitsNeedAQuantizerWithBits) {
  QuantizationPolicy policy = Policy({R"pb(name: "block.act" activation_bits: 3)pb"});
  policy.activation = ParseTextProtoOrDie<ActivationQuantizerSpec>("relu {}");
  EXPECT_THAT(std::string(ResolveLayers(policy, TinySites()).status().message()),
              HasSubstr("layer_override[0]: activation_bits: 3 needs a quantizer with bits, but "
                        "'block.act' has 'relu'"));
  QuantizationPolicy fp_weights = Policy({R"pb(position: FIRST weight_bits: 8)pb"});
  fp_weights.weight.reset();
  EXPECT_THAT(std::string(ResolveLayers(fp_weights, TinySites()).status().message()),
              HasSubstr("weight_bits: 8 needs a weight quantizer with bits, but 'conv1' has "
                        "'none' and the recipe's is 'none'"));
}

TEST(BuildPlannedModelTest, LayersGetTheirResolvedQuantizersAndTheSameInitialWeights) {
  PACT_ASSERT_OK_AND_ASSIGN(PlannedModel plain, BuildPlannedModel(Policy({}), TinyFactory()));
  PACT_ASSERT_OK_AND_ASSIGN(
      PlannedModel planned,
      BuildPlannedModel(Policy({"position: [FIRST, LAST] activation_bits: 8 weight_bits: 8",
                                R"pb(name: "block.act"
                                     activation { pact { bits: 2 } })pb"}),
                        TinyFactory()));
  auto* net = dynamic_cast<TinyNet*>(planned.model.get());
  ASSERT_NE(net, nullptr);
  EXPECT_EQ(net->conv1->weight_bits(), 8);
  EXPECT_EQ(net->act1->bits(), 8);
  EXPECT_EQ(net->conv->weight_bits(), 4);
  EXPECT_EQ(net->act->bits(), 2);
  EXPECT_EQ(net->act_last->bits(), 8);
  EXPECT_EQ(net->fc->weight_bits(), 8);
  // Both builds start from the factory's seed: the same initial weights as one plain build.
  const auto plain_params = plain.model->named_parameters();
  for (const auto& item : planned.model->named_parameters()) {
    EXPECT_TRUE(torch::equal(item.value(), plain_params[item.key()])) << item.key();
  }
  // The builder handed back is the one that made the model (its control switches warm-up).
  planned.layers->control()->set_enabled(false);
  EXPECT_EQ(net->conv1->QuantizedWeight().data_ptr(), net->conv1->weight.data_ptr());
}

TEST(BuildPlannedModelTest, WithoutRulesTheModelIsBuiltOnce) {
  int builds = 0;
  const ModelFactory counting = [&](std::shared_ptr<const LayerBuilder> layers) {
    ++builds;
    return TinyFactory()(std::move(layers));
  };
  PACT_ASSERT_OK(BuildPlannedModel(Policy({}), counting).status());
  EXPECT_EQ(builds, 1);
  PACT_ASSERT_OK(BuildPlannedModel(Policy({"position: LAST weight_bits: 8"}), counting).status());
  EXPECT_EQ(builds, 3);
}

TEST(BuildPlannedModelTest, AModelThatBuildsOtherLayersTheSecondTimeIsAnError) {
  int builds = 0;
  const ModelFactory unstable = [&](std::shared_ptr<const LayerBuilder> layers)
      -> absl::StatusOr<std::shared_ptr<torch::nn::Module>> {
    auto net = std::make_shared<torch::nn::Module>();
    net->register_module("a", layers->Activation(LayerPosition::kMiddle));
    if (++builds > 1) net->register_module("b", layers->Activation(LayerPosition::kMiddle));
    return net;
  };
  EXPECT_EQ(
      BuildPlannedModel(Policy({R"pb(name: "a" activation_bits: 2)pb"}), unstable).status().code(),
      absl::StatusCode::kInternal);
}

TEST(ValidateLayerOverrideTest, ReportsEveryProblemUnderTheRulesPath) {
  Violations v("quantization.layer_override[2]");
  ValidateLayerOverride(ParseTextProtoOrDie<LayerOverride>(R"pb(
                          name: "conv("
                          position: POSITION_UNSPECIFIED
                          activation_bits: 17
                          weight_bits: -1
                          activation { pact { bits: 40 } }
                        )pb"),
                        v);
  const std::string all = absl::StrJoin(v.list(), "\n");
  EXPECT_THAT(all, HasSubstr("quantization.layer_override[2].name: must be a valid RE2 regular "
                             "expression (missing ): conv(), got \"conv(\""));
  EXPECT_THAT(all, HasSubstr("quantization.layer_override[2].position[0]: must be FIRST or LAST"));
  EXPECT_THAT(all, HasSubstr("quantization.layer_override[2].activation_bits: must be in [0, 16] "
                             "(0 = full precision), got 17"));
  EXPECT_THAT(all, HasSubstr("quantization.layer_override[2].weight_bits: must be in [0, 16]"));
  EXPECT_THAT(all, HasSubstr("quantization.layer_override[2].activation.pact.bits: must be in "
                             "[0, 16]"));
  Violations empty("r");
  ValidateLayerOverride(LayerOverride(), empty);
  EXPECT_THAT(absl::StrJoin(empty.list(), "\n"),
              HasSubstr("r: needs `name` (a regular expression) or `position`"));
  EXPECT_THAT(absl::StrJoin(empty.list(), "\n"), HasSubstr("r: sets nothing"));
}

}  // namespace
}  // namespace pact::quant
