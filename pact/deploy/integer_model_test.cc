#include "pact/deploy/integer_model.h"

#include <torch/torch.h>

#include <memory>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "models/model.h"
#include "pact/core/test_util.h"
#include "pact/deploy/test_models.h"
#include "pact/quant/layers.h"

namespace pact::deploy {
namespace {

using ::pact::deploy::testing::Agreement;
using ::pact::deploy::testing::Warm;
using ::testing::HasSubstr;

std::shared_ptr<models::Model> Build(const std::string& spec, const std::string& activation,
                                     const std::string& weight, bool quantize_first_last) {
  return testing::BuildTestModel(spec, activation, weight, quantize_first_last, /*seed=*/5);
}

TEST(LowerTest, ResNet20W4A4IsIntegersThatGiveBackTheModel) {
  auto model = Build("resnet20 {}", "pact { bits: 4 alpha_init: 4 }", "dorefa { bits: 4 }",
                     /*quantize_first_last=*/true);
  ASSERT_NE(model, nullptr);
  const torch::Tensor images = torch::randn({64, 3, 32, 32});
  Warm(*model, images);
  PACT_ASSERT_OK_AND_ASSIGN(const IntegerModel m, Lower(*model, "resnet20"));
  EXPECT_EQ(m.model, "resnet20");
  EXPECT_EQ(m.num_classes, 10);
  int convs = 0, activations = 0;
  for (const DeployNode& node : m.nodes) {
    if (node.kind == DeployNode::Kind::kConv || node.kind == DeployNode::Kind::kLinear) {
      ++convs;
      ASSERT_TRUE(node.weight_quantized) << node.name;
      EXPECT_EQ(node.weight.encoding, Encoding::kDorefa);
      EXPECT_DOUBLE_EQ(node.weight.scale, 1.0 / 15);
      const torch::Tensor v = node.weight.values;
      EXPECT_LE(v.abs().max().item<int>(), 15) << node.name;
      EXPECT_TRUE(torch::all(v.remainder(2).ne(0)).item<bool>()) << node.name << ": odd codes";
    }
    if (node.kind == DeployNode::Kind::kActivation) {
      ++activations;
      EXPECT_EQ(node.out_bits, 4) << node.name;
      EXPECT_EQ(node.out_max_code, 15);
      EXPECT_FLOAT_EQ(node.out_scale, static_cast<float>(node.clip_max / 15));
    }
  }
  EXPECT_EQ(convs, 20);
  EXPECT_EQ(activations, 19);
  torch::NoGradGuard no_grad;
  const torch::Tensor expected = model->forward(images);
  PACT_ASSERT_OK_AND_ASSIGN(const torch::Tensor actual, RunDequantized(m, images));
  EXPECT_GE(Agreement(actual, expected), 0.95);
  EXPECT_LT((actual - expected).abs().mean().item<double>(),
            0.05 * expected.abs().mean().item<double>());
}

TEST(LowerTest, LsqAndTheFirstLastPolicyLowerToo) {
  auto model = Build("fashion_convnet {}", "lsq { bits: 3 }", "lsq { bits: 2 }",
                     /*quantize_first_last=*/false);
  ASSERT_NE(model, nullptr);
  const torch::Tensor images = torch::randn({32, 1, 28, 28});
  Warm(*model, images);
  PACT_ASSERT_OK_AND_ASSIGN(const IntegerModel m, Lower(*model, "fashion_convnet"));
  for (const DeployNode& node : m.nodes) {
    if (node.name == "conv1" || node.name == "fc2") {
      EXPECT_FALSE(node.weight_quantized) << node.name << " is full precision by policy";
      EXPECT_TRUE(node.float_weight.defined());
    } else if (node.name == "conv2" || node.name == "fc1") {
      ASSERT_TRUE(node.weight_quantized) << node.name;
      EXPECT_EQ(node.weight.encoding, Encoding::kSigned);
      EXPECT_GE(node.weight.values.min().item<int>(), -2);
      EXPECT_LE(node.weight.values.max().item<int>(), 1);
    } else if (node.name == "act2") {
      EXPECT_EQ(node.out_bits, 3);
      EXPECT_EQ(node.out_max_code, 7);
    } else if (node.name == "act1" || node.name == "act3") {
      EXPECT_EQ(node.activation, "relu");  // LSQ keeps ReLU at the full-precision positions
      EXPECT_EQ(node.out_bits, 0);
    }
  }
  torch::NoGradGuard no_grad;
  const torch::Tensor expected = model->forward(images);
  PACT_ASSERT_OK_AND_ASSIGN(const torch::Tensor actual, RunDequantized(m, images));
  EXPECT_GE(Agreement(actual, expected), 0.95);
}

TEST(LowerTest, EveryPaperModelLowers) {
  for (const char* spec :
       {"svhn_convnet {}", "alexnet_bn {}", "resnet18_preact {}", "resnet50_preact {}",
        "resnet20 { block: BLOCK_PREACT }", "resnet20 { shortcut: SHORTCUT_PROJECTION }"}) {
    SCOPED_TRACE(spec);
    auto model = Build(spec, "pact { bits: 2 }", "dorefa { bits: 2 }", false);
    ASSERT_NE(model, nullptr);
    model->eval();
    PACT_ASSERT_OK_AND_ASSIGN(const IntegerModel m, Lower(*model, spec));
    EXPECT_GT(m.nodes.size(), 8u);
  }
}

TEST(LowerTest, AModelWithoutQuantizationIsRefusedWithTheReason) {
  auto model = Build("resnet20 {}", "relu {}", "none {}", false);
  ASSERT_NE(model, nullptr);
  const absl::Status status = Lower(*model, "resnet20").status();
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(status.message()), HasSubstr("quantizes no weight and no activation"));
}

}  // namespace
}  // namespace pact::deploy
