#include "pact/deploy/onnx_export.h"

#include <torch/torch.h>

#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "models/model.h"
#include "pact/core/test_util.h"
#include "pact/deploy/integer_model.h"
#include "pact/deploy/test_models.h"

namespace pact::deploy {
namespace {

using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

IntegerModel LowerModel(const std::string& spec, const std::string& activation,
                        const std::string& weight, bool quantize_first_last) {
  auto model = testing::BuildTestModel(spec, activation, weight, quantize_first_last, 11);
  EXPECT_NE(model, nullptr);
  model->eval();
  auto lowered = Lower(*model, spec);
  EXPECT_TRUE(lowered.ok()) << lowered.status();
  return *lowered;
}

TEST(OnnxExportTest, ResNet20W4A4PassesTheCheckerAndShapeInference) {
  const IntegerModel m = LowerModel("resnet20 {}", "pact { bits: 4 }", "dorefa { bits: 4 }", false);
  PACT_ASSERT_OK_AND_ASSIGN(const std::string bytes, ExportOnnx(m, "test"));
  PACT_ASSERT_OK_AND_ASSIGN(const OnnxCheckResult check, CheckOnnx(bytes));
  EXPECT_THAT(check.output_shape, ElementsAre(-1, 10));
  for (const char* op : {"Conv", "Gemm", "Clip", "QuantizeLinear", "DequantizeLinear", "Mul", "Add",
                         "Slice", "Pad", "GlobalAveragePool", "Flatten"}) {
    EXPECT_THAT(check.op_types, Contains(op));
  }
  EXPECT_THAT(check.op_types, Not(Contains("BatchNormalization")));  // folded into Mul + Add
}

TEST(OnnxExportTest, EveryPaperModelExports) {
  for (const char* spec :
       {"fashion_convnet {}", "svhn_convnet {}", "alexnet_bn {}", "resnet18_preact {}",
        "resnet50_preact {}", "resnet20 { block: BLOCK_PREACT }",
        "resnet20 { shortcut: SHORTCUT_PROJECTION }"}) {
    SCOPED_TRACE(spec);
    const IntegerModel m = LowerModel(spec, "pact { bits: 2 }", "dorefa { bits: 2 }", true);
    PACT_ASSERT_OK_AND_ASSIGN(const std::string bytes, ExportOnnx(m, "test"));
    PACT_ASSERT_OK_AND_ASSIGN(const OnnxCheckResult check, CheckOnnx(bytes));
    EXPECT_THAT(check.output_shape, ElementsAre(-1, m.num_classes));
  }
}

TEST(OnnxExportTest, EightBitDorefaCodesTravelAsInt32) {
  const IntegerModel m =
      LowerModel("fashion_convnet {}", "pact { bits: 8 }", "dorefa { bits: 8 }", true);
  PACT_ASSERT_OK_AND_ASSIGN(const std::string bytes, ExportOnnx(m, "test"));
  PACT_ASSERT_OK_AND_ASSIGN(const OnnxCheckResult check, CheckOnnx(bytes));
  EXPECT_THAT(check.output_shape, ElementsAre(-1, 10));
}

TEST(OnnxExportTest, GarbageIsNotAModel) {
  const absl::Status status = CheckOnnx("definitely not protobuf \xff\xff").status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
}

// Debian's python3-onnx checker (full_check: with shape inference), when installed.
TEST(OnnxExportTest, PythonOnnxCheckerAcceptsIt) {
  if (std::system("python3 -c 'import onnx' > /dev/null 2>&1") != 0) {
    GTEST_SKIP() << "python3-onnx is not installed";
  }
  const IntegerModel m = LowerModel("resnet20 {}", "pact { bits: 2 }", "dorefa { bits: 2 }", true);
  PACT_ASSERT_OK_AND_ASSIGN(const std::string bytes, ExportOnnx(m, "test"));
  const char* dir = std::getenv("TEST_TMPDIR");
  const std::string path = std::string(dir != nullptr ? dir : "/tmp") + "/model.onnx";
  std::ofstream(path, std::ios::binary) << bytes;
  const std::string command =
      "python3 -c 'import onnx, sys; m = onnx.load(sys.argv[1]); "
      "onnx.checker.check_model(m, full_check=True); "
      "print(len(m.graph.node), \"nodes\")' " +
      path;
  EXPECT_EQ(std::system(command.c_str()), 0) << command;
}

}  // namespace
}  // namespace pact::deploy
