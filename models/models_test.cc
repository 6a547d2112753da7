// Per-model suite, one parameter per model configuration: output shape at the architecture's
// input size, parameter counts, which layers the first/last policy keeps at full precision,
// quantize_first_last, bits 0, and forward+backward on a small batch.
//
// Expected parameter counts (weights + biases + BN affine, PACT alphas excluded) were obtained
// independently with Debian's python3-torch 1.13 (/usr/bin/python3): each network re-written
// in plain torch.nn from the tables in shared/docs/paper-and-peers.md section 4 (a throwaway
// script, not kept in the tree) and counted with sum(p.numel() for p in m.parameters()).
// ResNet-20 original/option A (269,722) and option B (272,474) also match the issue text.
#include <torch/torch.h>

#include <cmath>
#include <memory>
#include <ostream>
#include <set>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "models/inference_graph.h"
#include "models/model.h"
#include "models/test_builders.h"
#include "pact/core/test_util.h"
#include "pact/quant/bn_act_ops.h"
#include "pact/quant/layers.h"

namespace pact::models {
namespace {

using ::pact::models::testing::MakeLayerBuilder;
using ::pact::testing::ParseTextProtoOrDie;
using ::testing::ElementsAreArray;

struct ModelCase {
  std::string name;  // test-name suffix
  std::string spec;  // ModelSpec text
  std::vector<int64_t> input_shape;
  int64_t num_classes;
  int64_t weights;  // expected CountWeights
  int weight_layers;
  int activations;
  // Height = width used for forward+backward (reduced where the architecture allows).
  int64_t train_size;
  std::set<std::string> first_last_weight_layers;  // full precision by default
  std::set<std::string> first_last_activations;    // clip-only by default
};

std::ostream& operator<<(std::ostream& os, const ModelCase& c) { return os << c.name; }

const std::vector<ModelCase>& Cases() {
  // One row per model; clang-format would put each value on its own line.
  // clang-format off
  static const auto* cases = new std::vector<ModelCase>{
      {"resnet20", "resnet20 {}", {3, 32, 32}, 10, 269722, 20, 19, 32,
       {"conv1", "fc"}, {"act1", "layer3.2.act2"}},
      {"resnet20_option_b", "resnet20 { shortcut: SHORTCUT_PROJECTION }", {3, 32, 32}, 10,
       272474, 22, 19, 32, {"conv1", "fc"}, {"act1", "layer3.2.act2"}},
      {"resnet20_preact", "resnet20 { block: BLOCK_PREACT }", {3, 32, 32}, 10, 269722, 20, 19,
       32, {"conv1", "fc"}, {"layer1.0.pre_act", "final_act"}},
      {"resnet20_preact_option_b",
       "resnet20 { block: BLOCK_PREACT shortcut: SHORTCUT_PROJECTION }", {3, 32, 32}, 10,
       272282, 22, 19, 32, {"conv1", "fc"}, {"layer1.0.pre_act", "final_act"}},
      {"resnet32", "resnet20 { depth: 32 }", {3, 32, 32}, 10, 464154, 32, 31, 32,
       {"conv1", "fc"}, {"act1", "layer3.4.act2"}},
      {"resnet56_cifar100", "resnet20 { depth: 56 num_classes: 100 }", {3, 32, 32}, 100,
       858868, 56, 55, 32, {"conv1", "fc"}, {"act1", "layer3.8.act2"}},
      {"fashion_convnet", "fashion_convnet {}", {1, 28, 28}, 10, 207354, 4, 3, 28,
       {"conv1", "fc2"}, {"act1", "act3"}},
      {"svhn_convnet", "svhn_convnet {}", {3, 40, 40}, 10, 2082378, 8, 7, 40,
       {"conv0", "fc"}, {"act0", "act6"}},
      {"alexnet_bn", "alexnet_bn {}", {3, 224, 224}, 1000, 60985416, 8, 7, 224,
       {"conv0", "fct"}, {"act0", "actfc1"}},
      {"resnet18_preact", "resnet18_preact {}", {3, 224, 224}, 1000, 11687720, 21, 17, 64,
       {"conv1", "fc"}, {"act1", "final_act"}},
      {"resnet50_preact", "resnet50_preact {}", {3, 224, 224}, 1000, 25549352, 54, 49, 64,
       {"conv1", "fc"}, {"act1", "final_act"}},
  };
  // clang-format on
  return *cases;
}

class ModelsTest : public ::testing::TestWithParam<ModelCase> {
 protected:
  void SetUp() override { torch::manual_seed(0); }

  // Builds the case's model with `layers` (full precision when null).
  std::shared_ptr<Model> Build(std::shared_ptr<const quant::LayerBuilder> layers = nullptr) {
    BuildContext context;
    if (layers != nullptr) context.layers = std::move(layers);
    auto model =
        GetModelRegistry().Create(ParseTextProtoOrDie<ModelSpec>(GetParam().spec), context);
    EXPECT_TRUE(model.ok()) << model.status();
    return model.ok() ? *model : nullptr;
  }
};

// Weight layers and activations of `model` in module order.
struct Layers {
  std::vector<std::pair<std::string, quant::QuantConv2dImpl*>> convs;
  std::vector<std::pair<std::string, quant::QuantLinearImpl*>> linears;
  std::vector<std::pair<std::string, quant::ActivationModule*>> activations;
};

Layers FindLayers(Model& model) {
  Layers layers;
  for (const auto& item : model.named_modules("", /*include_self=*/false)) {
    if (auto* conv = dynamic_cast<quant::QuantConv2dImpl*>(item.value().get())) {
      layers.convs.emplace_back(item.key(), conv);
    } else if (auto* linear = dynamic_cast<quant::QuantLinearImpl*>(item.value().get())) {
      layers.linears.emplace_back(item.key(), linear);
    } else if (auto* act = dynamic_cast<quant::ActivationModule*>(item.value().get())) {
      layers.activations.emplace_back(item.key(), act);
    }
  }
  return layers;
}

// True when every value of `w_q` is a DoReFa level 2 q / (2^bits - 1) - 1 (q integer).
bool OnDorefaGrid(const torch::Tensor& w_q, int bits) {
  const double n = std::pow(2.0, bits) - 1;
  const torch::Tensor levels = (w_q + 1) * (n / 2);
  return (levels - levels.round()).abs().max().item<double>() < 1e-3;
}

// Runs activation `act` on a probe spanning [-1, 12] and returns its distinct output values.
int64_t DistinctActivationOutputs(quant::ActivationModule& act) {
  torch::NoGradGuard no_grad;
  const torch::Tensor probe = torch::linspace(-1.0, 12.0, 4001);
  return std::get<0>(at::_unique(act.forward(probe))).numel();
}

// The model's inference graph (Model::Graph) computes its forward(): bit for bit with the
// BatchNorm+activation fusion off (the graph runs them as separate modules), and it names every
// module that computes something exactly once.
TEST_P(ModelsTest, InferenceGraphIsTheForward) {
  auto model = Build(MakeLayerBuilder("pact { bits: 4 alpha_init: 3 }", "dorefa { bits: 4 }",
                                      /*quantize_first_last=*/true));
  ASSERT_NE(model, nullptr);
  PACT_ASSERT_OK_AND_ASSIGN(const InferenceGraph graph, model->Graph());
  model->eval();
  torch::NoGradGuard no_grad;
  std::vector<int64_t> shape = {2, model->input_shape()[0]};
  const bool fixed_size = GetParam().train_size == GetParam().input_shape[1];
  shape.push_back(fixed_size ? GetParam().input_shape[1] : GetParam().train_size);
  shape.push_back(fixed_size ? GetParam().input_shape[2] : GetParam().train_size);
  const torch::Tensor images = torch::randn(shape);
  quant::SetBatchNormActivationFusion(false);
  const torch::Tensor expected = model->forward(images);
  PACT_ASSERT_OK_AND_ASSIGN(const torch::Tensor actual, RunInferenceGraph(*model, graph, images));
  quant::SetBatchNormActivationFusion(true);
  EXPECT_TRUE(torch::equal(actual, expected));

  std::multiset<std::string> named;
  for (const GraphNode& node : graph.nodes()) {
    if (node.op == GraphNode::Op::kModule) named.insert(node.module);
  }
  for (const auto& item : model->named_modules("", /*include_self=*/false)) {
    const torch::nn::Module* m = item.value().get();
    const bool computes = dynamic_cast<const quant::QuantConv2dImpl*>(m) != nullptr ||
                          dynamic_cast<const quant::QuantLinearImpl*>(m) != nullptr ||
                          dynamic_cast<const quant::ActivationModule*>(m) != nullptr ||
                          dynamic_cast<const torch::nn::BatchNorm2dImpl*>(m) != nullptr ||
                          dynamic_cast<const torch::nn::BatchNorm1dImpl*>(m) != nullptr ||
                          dynamic_cast<const torch::nn::MaxPool2dImpl*>(m) != nullptr;
    if (computes) EXPECT_EQ(named.count(item.key()), 1u) << item.key();
  }
}

TEST_P(ModelsTest, OutputShapeAtInputSize) {
  auto model = Build();
  ASSERT_NE(model, nullptr);
  EXPECT_THAT(model->input_shape(), ElementsAreArray(GetParam().input_shape));
  EXPECT_EQ(model->num_classes(), GetParam().num_classes);
  model->eval();
  torch::NoGradGuard no_grad;
  std::vector<int64_t> shape = {1};
  for (int64_t d : model->input_shape()) shape.push_back(d);
  const torch::Tensor logits = model->forward(torch::randn(shape));
  EXPECT_THAT(logits.sizes().vec(), ElementsAreArray({int64_t{1}, GetParam().num_classes}));
  // The summary has one row per weight layer and activation, each with its output shape.
  const std::vector<LayerSummary> rows = SummarizeLayers(*model);
  EXPECT_EQ(rows.size(), static_cast<size_t>(GetParam().weight_layers + GetParam().activations));
  for (const LayerSummary& row : rows) {
    EXPECT_FALSE(row.output_shape.empty()) << row.name;
    if (!row.output_shape.empty()) {
      EXPECT_EQ(row.output_shape[0], 1) << row.name;
    }
  }
}

TEST_P(ModelsTest, ParameterCounts) {
  auto fp = Build();
  ASSERT_NE(fp, nullptr);
  EXPECT_EQ(CountWeights(*fp), GetParam().weights);
  EXPECT_TRUE(quant::CollectAlphas(*fp).empty());

  auto pact = Build(MakeLayerBuilder("pact { bits: 4 }", "dorefa { bits: 4 }", false));
  ASSERT_NE(pact, nullptr);
  EXPECT_EQ(CountWeights(*pact), GetParam().weights);
  // One alpha per activation position.
  EXPECT_EQ(quant::CollectAlphas(*pact).size(), static_cast<size_t>(GetParam().activations));
  int64_t all = 0;
  for (const auto& p : pact->parameters()) all += p.numel();
  EXPECT_EQ(all, GetParam().weights + GetParam().activations);

  // LSQ everywhere (first/last too): a step per activation and per weight layer, none counted.
  auto lsq = Build(MakeLayerBuilder("lsq { bits: 4 }", "lsq { bits: 4 }", true));
  ASSERT_NE(lsq, nullptr);
  EXPECT_EQ(CountWeights(*lsq), GetParam().weights);
  all = 0;
  for (const auto& p : lsq->parameters()) all += p.numel();
  EXPECT_EQ(all, GetParam().weights + GetParam().activations + GetParam().weight_layers);

  const Layers layers = FindLayers(*pact);
  EXPECT_EQ(layers.convs.size() + layers.linears.size(),
            static_cast<size_t>(GetParam().weight_layers));
  EXPECT_EQ(layers.activations.size(), static_cast<size_t>(GetParam().activations));
}

// PACT Sec. 4.2: first conv and last linear keep FP weights; the activations after the first
// layer and feeding the last clip without rounding; everything else is 4-bit.
TEST_P(ModelsTest, DefaultPolicyKeepsFirstAndLastLayersFullPrecision) {
  auto model = Build(MakeLayerBuilder("pact { bits: 4 }", "dorefa { bits: 4 }", false));
  ASSERT_NE(model, nullptr);
  const Layers layers = FindLayers(*model);
  const auto& fp_layers = GetParam().first_last_weight_layers;
  std::set<std::string> seen_fp;
  const auto check_weights = [&](const std::string& name, int bits, const torch::Tensor& weight,
                                 const torch::Tensor& quantized) {
    if (fp_layers.count(name) > 0) {
      seen_fp.insert(name);
      EXPECT_EQ(bits, quant::kFullPrecisionBits) << name;
      EXPECT_TRUE(torch::equal(quantized, weight)) << name;
    } else {
      EXPECT_EQ(bits, 4) << name;
      EXPECT_TRUE(OnDorefaGrid(quantized, 4)) << name;
    }
  };
  for (const auto& [name, conv] : layers.convs) {
    check_weights(name, conv->weight_bits(), conv->weight, conv->QuantizedWeight());
  }
  for (const auto& [name, linear] : layers.linears) {
    check_weights(name, linear->weight_bits(), linear->weight, linear->QuantizedWeight());
  }
  EXPECT_EQ(seen_fp, fp_layers);

  std::set<std::string> clip_only;
  for (const auto& [name, act] : layers.activations) {
    EXPECT_EQ(act->kind(), "pact") << name;
    if (act->bits() == 0) {
      clip_only.insert(name);
      EXPECT_GT(DistinctActivationOutputs(*act), 1000) << name;  // clipped, not rounded
    } else {
      EXPECT_EQ(act->bits(), 4) << name;
      EXPECT_LE(DistinctActivationOutputs(*act), 16) << name;
    }
  }
  EXPECT_EQ(clip_only, GetParam().first_last_activations);
}

TEST_P(ModelsTest, QuantizeFirstLastQuantizesEverything) {
  auto model = Build(MakeLayerBuilder("pact { bits: 3 }", "dorefa { bits: 2 }", true));
  ASSERT_NE(model, nullptr);
  const Layers layers = FindLayers(*model);
  for (const auto& [name, conv] : layers.convs) {
    EXPECT_EQ(conv->weight_bits(), 2) << name;
    EXPECT_TRUE(OnDorefaGrid(conv->QuantizedWeight(), 2)) << name;
  }
  for (const auto& [name, linear] : layers.linears) {
    EXPECT_EQ(linear->weight_bits(), 2) << name;
    EXPECT_TRUE(OnDorefaGrid(linear->QuantizedWeight(), 2)) << name;
  }
  for (const auto& [name, act] : layers.activations) {
    EXPECT_EQ(act->bits(), 3) << name;
    EXPECT_LE(DistinctActivationOutputs(*act), 8) << name;
  }
}

// pact bits 0 = learnable clipping only; dorefa bits 0 = full-precision weights.
TEST_P(ModelsTest, BitsZeroRoundsNothing) {
  auto model = Build(MakeLayerBuilder("pact { bits: 0 }", "dorefa { bits: 0 }", true));
  ASSERT_NE(model, nullptr);
  const Layers layers = FindLayers(*model);
  for (const auto& [name, conv] : layers.convs) {
    EXPECT_EQ(conv->weight_bits(), quant::kFullPrecisionBits) << name;
    EXPECT_TRUE(torch::equal(conv->QuantizedWeight(), conv->weight)) << name;
  }
  for (const auto& [name, linear] : layers.linears) {
    EXPECT_EQ(linear->weight_bits(), quant::kFullPrecisionBits) << name;
    EXPECT_TRUE(torch::equal(linear->QuantizedWeight(), linear->weight)) << name;
  }
  for (const auto& [name, act] : layers.activations) {
    EXPECT_EQ(act->bits(), 0) << name;
    EXPECT_GT(DistinctActivationOutputs(*act), 1000) << name;
  }
}

TEST_P(ModelsTest, ForwardBackwardOnSmallBatch) {
  auto model = Build(MakeLayerBuilder("pact { bits: 4 }", "dorefa { bits: 4 }", false));
  ASSERT_NE(model, nullptr);
  model->train();
  const int64_t size = GetParam().train_size;
  const torch::Tensor images = torch::randn({2, GetParam().input_shape[0], size, size});
  const torch::Tensor labels = torch::randint(GetParam().num_classes, {2}, torch::kLong);
  const torch::Tensor logits = model->forward(images);
  ASSERT_THAT(logits.sizes().vec(), ElementsAreArray({int64_t{2}, GetParam().num_classes}));
  const torch::Tensor loss = torch::nn::functional::cross_entropy(logits, labels);
  ASSERT_TRUE(std::isfinite(loss.item<double>()));
  loss.backward();
  for (const auto& item : model->named_parameters()) {
    const torch::Tensor& grad = item.value().grad();
    ASSERT_TRUE(grad.defined()) << item.key();
    EXPECT_TRUE(torch::isfinite(grad).all().item<bool>()) << item.key();
  }
  // The classifier receives a non-zero gradient.
  bool any_nonzero = false;
  for (const auto& item : model->named_parameters()) {
    if (item.key().find("alpha") == std::string::npos &&
        item.value().grad().abs().sum().item<double>() > 0) {
      any_nonzero = true;
    }
  }
  EXPECT_TRUE(any_nonzero);
}

INSTANTIATE_TEST_SUITE_P(AllModels, ModelsTest, ::testing::ValuesIn(Cases()),
                         [](const ::testing::TestParamInfo<ModelCase>& info) {
                           return info.param.name;
                         });

}  // namespace
}  // namespace pact::models
