#include "pact/deploy/packed_model.h"

#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "models/model.h"
#include "models/test_builders.h"
#include "pact/core/test_util.h"
#include "pact/deploy/engine.h"
#include "pact/deploy/integer_model.h"

namespace pact::deploy {
namespace {

using ::pact::models::testing::MakeLayerBuilder;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(PackCodesTest, FourBitsTwoPerByteLowNibbleFirst) {
  PACT_ASSERT_OK_AND_ASSIGN(const std::vector<uint8_t> bytes,
                            PackCodes({1, 2, 15, 0, 7}, 4, "unsigned"));
  EXPECT_THAT(bytes, ElementsAre(0x21, 0x0F, 0x07));
  PACT_ASSERT_OK_AND_ASSIGN(const std::vector<int32_t> back,
                            UnpackCodes(bytes.data(), bytes.size(), 5, 4, "unsigned"));
  EXPECT_THAT(back, ElementsAre(1, 2, 15, 0, 7));
}

TEST(PackCodesTest, TwoBitDorefaFourPerByte) {
  // DoReFa 2-bit: v in {-3, -1, 1, 3} -> codes 0..3.
  PACT_ASSERT_OK_AND_ASSIGN(const std::vector<uint8_t> bytes,
                            PackCodes({-3, -1, 1, 3, 3}, 2, "dorefa"));
  EXPECT_THAT(bytes, ElementsAre(0b11100100, 0b00000011));
  PACT_ASSERT_OK_AND_ASSIGN(const std::vector<int32_t> back,
                            UnpackCodes(bytes.data(), bytes.size(), 5, 2, "dorefa"));
  EXPECT_THAT(back, ElementsAre(-3, -1, 1, 3, 3));
}

TEST(PackCodesTest, SignedAndOddWidthsRoundTrip) {
  std::vector<int32_t> v;
  for (int i = -4; i <= 3; ++i) v.push_back(i);
  PACT_ASSERT_OK_AND_ASSIGN(const std::vector<uint8_t> bytes, PackCodes(v, 3, "signed"));
  EXPECT_EQ(bytes.size(), 3u);  // 8 codes x 3 bits
  PACT_ASSERT_OK_AND_ASSIGN(const std::vector<int32_t> back,
                            UnpackCodes(bytes.data(), bytes.size(), 8, 3, "signed"));
  EXPECT_EQ(back, v);
}

TEST(PackCodesTest, ValuesWithoutACodeAreRefused) {
  EXPECT_THAT(std::string(PackCodes({16}, 4, "unsigned").status().message()),
              HasSubstr("value 16 has no 4-bit unsigned code"));
  EXPECT_THAT(std::string(PackCodes({2}, 2, "dorefa").status().message()),
              HasSubstr("value 2 has no 2-bit dorefa code"));
  EXPECT_THAT(std::string(PackCodes({4}, 3, "signed").status().message()),
              HasSubstr("value 4 has no 3-bit signed code"));
}

class PackedModelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    torch::manual_seed(3);
    models::BuildContext context;
    context.layers = MakeLayerBuilder("pact { bits: 4 alpha_init: 4 }", "dorefa { bits: 4 }", true);
    auto model = models::GetModelRegistry().Create(
        pact::testing::ParseTextProtoOrDie<models::ModelSpec>("resnet20 {}"), context);
    ASSERT_TRUE(model.ok()) << model.status();
    model_ = *model;
    images_ = torch::randn({16, 3, 32, 32});
    model_->train();
    {
      torch::NoGradGuard no_grad;
      model_->forward(images_);
    }
    model_->eval();
    PACT_ASSERT_OK_AND_ASSIGN(const IntegerModel m, Lower(*model_, "resnet20"));
    PACT_ASSERT_OK_AND_ASSIGN(program_, Compile(m));
    PACT_ASSERT_OK_AND_ASSIGN(bytes_, SerializePackedModel(program_));
  }

  std::shared_ptr<models::Model> model_;
  torch::Tensor images_;
  Program program_;
  std::string bytes_;
};

TEST_F(PackedModelTest, RoundTripRunsIdentically) {
  PACT_ASSERT_OK_AND_ASSIGN(const Program back, ParsePackedModel(bytes_, "model.pim"));
  EXPECT_EQ(back.info.ops_size(), program_.info.ops_size());
  PACT_ASSERT_OK_AND_ASSIGN(const torch::Tensor a, RunProgram(program_, images_));
  PACT_ASSERT_OK_AND_ASSIGN(const torch::Tensor b, RunProgram(back, images_));
  EXPECT_TRUE(torch::equal(a, b));
  EXPECT_EQ(bytes_.compare(0, 8, "PACTQNT1"), 0);
}

TEST_F(PackedModelTest, W4FileIsUnderASixthOfTheFloatWeights) {
  int64_t weights = 0;
  for (const auto& p : model_->named_parameters()) {
    if (p.key().find("weight") != std::string::npos && p.value().dim() > 1) {
      weights += p.value().numel();
    }
  }
  EXPECT_EQ(weights, 268336);  // conv + fc weights (269,722 parameters with BN and the bias)
  EXPECT_LE(static_cast<double>(bytes_.size()), weights * 4.0 / 6.0)
      << "whole file " << bytes_.size() << " bytes vs FP32 weights " << weights * 4;
}

TEST_F(PackedModelTest, DamagedFilesAreNamedAndExplained) {
  const auto message = [](const std::string& bytes) {
    return std::string(ParsePackedModel(bytes, "x/model.pim").status().message());
  };
  EXPECT_THAT(message("GIF89a........"), HasSubstr("x/model.pim: not a packed integer model"));
  EXPECT_THAT(message(bytes_.substr(0, 100)), HasSubstr("truncated: the header needs"));
  EXPECT_THAT(message(bytes_.substr(0, bytes_.size() - 1000)),
              HasSubstr("past the end of the data section"));
  std::string bad_json = bytes_;
  bad_json[12] = '[';
  EXPECT_THAT(message(bad_json), HasSubstr("bad header"));
  EXPECT_EQ(ParsePackedModel(bad_json, "m").status().code(), absl::StatusCode::kDataLoss);
  // A program referring to a value before it is computed.
  Program broken = program_;
  broken.info.mutable_ops(3)->set_inputs(0, broken.info.values_size() - 1);
  PACT_ASSERT_OK_AND_ASSIGN(const std::string broken_bytes, SerializePackedModel(broken));
  EXPECT_THAT(message(broken_bytes), HasSubstr("is not computed before it"));
  // An op pointing past the tensor table.
  Program dangling = program_;
  for (OpInfo& op : *dangling.info.mutable_ops()) {
    if (op.kind() == "requant") {
      op.set_offset(dangling.info.tensors_size() + 5);
      break;
    }
  }
  PACT_ASSERT_OK_AND_ASSIGN(const std::string dangling_bytes, SerializePackedModel(dangling));
  EXPECT_THAT(message(dangling_bytes), HasSubstr("a tensor it needs is missing or out of range"));
}

}  // namespace
}  // namespace pact::deploy
