// The dataset registry: every DatasetSpec choice is linked through :all_datasets, and the
// spec's common fields reach factories through MakeDatasetContext.
#include "datasets/dataset.h"

#include <string>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pact/core/test_util.h"

namespace pact::datasets {
namespace {

using ::pact::testing::ParseTextProtoOrDie;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(DatasetRegistryTest, EveryChoiceIsLinked) {
  EXPECT_THAT(GetDatasetRegistry().Names(),
              ElementsAre("cifar10", "fashion_mnist", "imagenet", "svhn", "synthetic"));
  EXPECT_THAT(DatasetRegistry::ChoiceNames(),
              ::testing::UnorderedElementsAreArray(GetDatasetRegistry().Names()));
}

TEST(DatasetRegistryTest, NothingSelectedIsInvalidArgument) {
  const DatasetSpec spec;
  const absl::Status status = GetDatasetRegistry().Create(spec, MakeDatasetContext(spec)).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("dataset: no implementation selected"));
}

TEST(DatasetRegistryTest, ValidatorsNameTheFieldPathWithoutTouchingFiles) {
  Violations v;
  for (const char* text : {
           "synthetic { channels: 0 num_classes: 1 }",
           "synthetic { num_examples: 1048576 height: 1024 }",
           "imagenet { image_size: 0 resize_size: 5000 min_crop_scale: 0.9 max_crop_scale: 0.5 }",
           "svhn { resize: 2000 }",
           "svhn { resize: 0 }",
           "imagenet {}",
           "synthetic {}",
       }) {
    GetDatasetRegistry().Validate(ParseTextProtoOrDie<DatasetSpec>(text), "train_data", v);
  }
  EXPECT_THAT(
      v.list(),
      ElementsAre(
          "train_data.synthetic.channels: must be in [1, 64], got 0",
          "train_data.synthetic.num_classes: must be in [2, 256], got 1",
          "train_data.synthetic: num_examples x channels x height x width = 103079215104 bytes, "
          "more than the 2^30 allowed; make it smaller",
          "train_data.imagenet.image_size: must be in 1..4096, got 0",
          "train_data.imagenet.resize_size: must be in image_size (0)..4096, got 5000",
          "train_data.imagenet.min_crop_scale: need 0 < min_crop_scale <= max_crop_scale <= 1, "
          "got 0.9, 0.5",
          "train_data.svhn.resize: must be 0 (keep 32x32) or in 1..1024, got 2000"));
}

TEST(MakeDatasetContextTest, CopiesCommonFields) {
  const auto spec = ParseTextProtoOrDie<DatasetSpec>(R"pb(
    data_root: "/data/x"
    split: SPLIT_TEST
    augment: true
    normalize {
      mean: [ 0.1, 0.2 ]
      std: [ 0.3, 0.4 ]
    }
    synthetic {}
  )pb");
  const DatasetContext context = MakeDatasetContext(spec);
  EXPECT_EQ(context.data_root, "/data/x");
  EXPECT_EQ(context.split, SPLIT_TEST);
  EXPECT_TRUE(context.augment);
  EXPECT_THAT(context.mean, ElementsAre(0.1f, 0.2f));
  EXPECT_THAT(context.std, ElementsAre(0.3f, 0.4f));
}

TEST(MakeDatasetContextTest, Defaults) {
  const DatasetContext context = MakeDatasetContext(DatasetSpec());
  EXPECT_EQ(context.data_root, "");
  EXPECT_EQ(context.split, SPLIT_TRAIN);
  EXPECT_FALSE(context.augment);
  EXPECT_TRUE(context.mean.empty());
  EXPECT_TRUE(context.std.empty());
}

TEST(DatasetRegistryTest, SyntheticThroughTheRegistry) {
  const auto spec = ParseTextProtoOrDie<DatasetSpec>(
      R"pb(split: SPLIT_TEST
           synthetic { num_examples: 10 channels: 1 height: 4 width: 4 })pb");
  PACT_ASSERT_OK_AND_ASSIGN(auto dataset,
                            GetDatasetRegistry().Create(spec, MakeDatasetContext(spec)));
  EXPECT_EQ(dataset->size(), 10);
  EXPECT_EQ(dataset->image_shape(), (std::vector<int64_t>{1, 4, 4}));
  EXPECT_THAT(dataset->Describe(), HasSubstr("synthetic test: 10 images 1x4x4"));
}

}  // namespace
}  // namespace pact::datasets
