#include "pact/deploy/engine.h"

#include <torch/torch.h>

#include <memory>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "models/model.h"
#include "pact/core/test_util.h"
#include "pact/deploy/int_kernels.h"
#include "pact/deploy/integer_model.h"
#include "pact/deploy/test_models.h"

namespace pact::deploy {
namespace {

using ::pact::deploy::testing::Agreement;
using ::pact::deploy::testing::Warm;
using ::testing::HasSubstr;

std::shared_ptr<models::Model> Build(const std::string& spec, const std::string& activation,
                                     const std::string& weight, bool quantize_first_last) {
  return testing::BuildTestModel(spec, activation, weight, quantize_first_last, /*seed=*/7);
}

int CountOps(const Program& p, const std::string& kind) {
  int n = 0;
  for (const OpInfo& op : p.info.ops()) n += op.kind() == kind;
  return n;
}

// The integer program against the fake-quant model it came from; both kernel builds must give
// the same logits bit for bit (integer arithmetic).
void ExpectMatches(models::Model& model, const IntegerModel& m, const torch::Tensor& images,
                   double min_agreement) {
  PACT_ASSERT_OK_AND_ASSIGN(const Program program, Compile(m));
  torch::NoGradGuard no_grad;
  const torch::Tensor expected = model.forward(images);
  torch::Tensor first;
  for (const kernels::IntKernels* k : kernels::SupportedIntKernels()) {
    SCOPED_TRACE(k->name);
    ASSERT_TRUE(kernels::SetIntKernels(k->name));
    PACT_ASSERT_OK_AND_ASSIGN(const torch::Tensor logits, RunProgram(program, images));
    ASSERT_EQ(logits.sizes(), expected.sizes());
    EXPECT_GE(Agreement(logits, expected), min_agreement);
    EXPECT_LT((logits - expected).abs().mean().item<double>(),
              0.05 * expected.abs().mean().item<double>());
    if (first.defined()) {
      EXPECT_TRUE(torch::equal(first, logits)) << "kernel builds disagree";
    }
    first = logits;
  }
  kernels::SetIntKernels(kernels::SupportedIntKernels().back()->name);
}

TEST(EngineTest, ResNet20W4A4IsIntegerFromInputToLogits) {
  auto model = Build("resnet20 {}", "pact { bits: 4 alpha_init: 4 }", "dorefa { bits: 4 }",
                     /*quantize_first_last=*/true);
  ASSERT_NE(model, nullptr);
  const torch::Tensor images = torch::randn({96, 3, 32, 32});
  Warm(*model, images);
  PACT_ASSERT_OK_AND_ASSIGN(const IntegerModel m, Lower(*model, "resnet20"));
  PACT_ASSERT_OK_AND_ASSIGN(const Program program, Compile(m));
  // Nothing float between the input codes and the logits.
  EXPECT_EQ(CountOps(program, "quantize_input"), 2);  // the input's high and low int16 parts
  EXPECT_EQ(CountOps(program, "conv"), 20);           // conv1 once per part
  EXPECT_EQ(CountOps(program, "linear"), 1);
  EXPECT_EQ(CountOps(program, "requant"), 19);
  EXPECT_EQ(CountOps(program, "dequant"), 1);  // the logits
  for (const OpInfo& op : program.info.ops()) {
    EXPECT_EQ(op.kind().rfind("float_", 0), std::string::npos) << op.kind() << " " << op.name();
    if (op.kind() == "requant" && op.name().find("act2") != std::string::npos) {
      EXPECT_EQ(op.inputs_size(), 2) << op.name() << ": the residual add is a requant term";
    }
  }
  ExpectMatches(*model, m, images, 0.95);
}

TEST(EngineTest, ResNet20W2A2WithFullPrecisionFirstAndLast) {
  auto model = Build("resnet20 {}", "pact { bits: 2 alpha_init: 3 }", "dorefa { bits: 2 }",
                     /*quantize_first_last=*/false);
  ASSERT_NE(model, nullptr);
  const torch::Tensor images = torch::randn({64, 3, 32, 32});
  Warm(*model, images);
  PACT_ASSERT_OK_AND_ASSIGN(const IntegerModel m, Lower(*model, "resnet20"));
  PACT_ASSERT_OK_AND_ASSIGN(const Program program, Compile(m));
  EXPECT_EQ(CountOps(program, "quantize_input"), 0);
  EXPECT_GE(CountOps(program, "float_conv"), 1);  // conv1 and what reads act1 (full precision)
  EXPECT_EQ(CountOps(program, "float_linear"), 1);
  EXPECT_GE(CountOps(program, "conv"), 15);
  ExpectMatches(*model, m, images, 0.95);
}

TEST(EngineTest, FashionConvNetWithLsqAndMaxPools) {
  auto model = Build("fashion_convnet {}", "lsq { bits: 4 }", "lsq { bits: 4 }",
                     /*quantize_first_last=*/true);
  ASSERT_NE(model, nullptr);
  const torch::Tensor images = torch::randn({64, 1, 28, 28});
  Warm(*model, images);
  PACT_ASSERT_OK_AND_ASSIGN(const IntegerModel m, Lower(*model, "fashion_convnet"));
  PACT_ASSERT_OK_AND_ASSIGN(const Program program, Compile(m));
  // pool1 comes before act1 and sees the first layer's two input parts: float (exact, not integer).
  EXPECT_EQ(CountOps(program, "max_pool"), 1);
  EXPECT_EQ(CountOps(program, "float_max_pool"), 1);
  EXPECT_EQ(CountOps(program, "flatten"), 1);
  ExpectMatches(*model, m, images, 0.95);
}

// 8-bit codes times 7-bit DoReFa weights (|v| up to 127) overflow the AVX2 build's int16 pairs:
// such layers must run on another build and still agree bit for bit.
TEST(EngineTest, LayersBeyondABuildsPairLimitStayExact) {
  auto model = Build("fashion_convnet {}", "pact { bits: 8 alpha_init: 4 }", "dorefa { bits: 7 }",
                     /*quantize_first_last=*/true);
  ASSERT_NE(model, nullptr);
  const torch::Tensor images = torch::randn({32, 1, 28, 28});
  Warm(*model, images);
  PACT_ASSERT_OK_AND_ASSIGN(const IntegerModel m, Lower(*model, "fashion_convnet"));
  PACT_ASSERT_OK_AND_ASSIGN(const Program program, Compile(m));
  int64_t largest = 0;
  for (int64_t bound : program.u8_pair_bound) largest = std::max(largest, bound);
  EXPECT_GT(largest, 32767);
  ExpectMatches(*model, m, images, 0.9);
}

TEST(EngineTest, EveryPaperModelCompilesAndRuns) {
  for (const char* spec :
       {"svhn_convnet {}", "alexnet_bn {}", "resnet18_preact {}", "resnet50_preact {}",
        "resnet20 { block: BLOCK_PREACT }", "resnet20 { shortcut: SHORTCUT_PROJECTION }"}) {
    SCOPED_TRACE(spec);
    auto model = Build(spec, "pact { bits: 2 }", "dorefa { bits: 2 }", false);
    ASSERT_NE(model, nullptr);
    model->eval();
    PACT_ASSERT_OK_AND_ASSIGN(const IntegerModel m, Lower(*model, spec));
    PACT_ASSERT_OK_AND_ASSIGN(const Program program, Compile(m));
    std::vector<int64_t> shape = {2};
    shape.insert(shape.end(), m.input_shape.begin(), m.input_shape.end());
    const torch::Tensor images = torch::randn(shape);
    PACT_ASSERT_OK_AND_ASSIGN(const torch::Tensor logits, RunProgram(program, images));
    EXPECT_EQ(logits.sizes(), (std::vector<int64_t>{2, m.num_classes}));
    torch::NoGradGuard no_grad;
    const torch::Tensor expected = model->forward(images);
    EXPECT_LT((logits - expected).abs().max().item<double>(),
              0.25 * expected.abs().max().item<double>() + 1e-3);
  }
}

TEST(EngineTest, UnsupportedLayersAreNamed) {
  auto model = Build("resnet20 {}", "pact { bits: 4 }", "dorefa { bits: 4 }", true);
  ASSERT_NE(model, nullptr);
  model->eval();
  PACT_ASSERT_OK_AND_ASSIGN(IntegerModel m, Lower(*model, "resnet20"));
  for (DeployNode& node : m.nodes) {
    if (node.name == "layer2.0.conv1") node.dilation = {2, 2};
  }
  const absl::Status status = Compile(m).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(std::string(status.message()), HasSubstr("layer2.0.conv1: dilated convolution"));
}

TEST(EngineTest, WrongImageShapeIsAnError) {
  auto model = Build("resnet20 {}", "pact { bits: 4 }", "dorefa { bits: 4 }", true);
  ASSERT_NE(model, nullptr);
  model->eval();
  PACT_ASSERT_OK_AND_ASSIGN(const IntegerModel m, Lower(*model, "resnet20"));
  PACT_ASSERT_OK_AND_ASSIGN(const Program program, Compile(m));
  const absl::Status status = RunProgram(program, torch::zeros({2, 1, 28, 28})).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()), HasSubstr("images must be [N, 3, 32, 32]"));
}

}  // namespace
}  // namespace pact::deploy
