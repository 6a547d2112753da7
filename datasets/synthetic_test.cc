#include "datasets/synthetic.h"

#include <cstdint>
#include <random>
#include <vector>

#include "absl/status/status.h"
#include "datasets/dataset.h"
#include "datasets/synthetic_options.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pact/core/test_util.h"

namespace pact::datasets {
namespace {

using ::testing::HasSubstr;

DatasetContext Context(Split split) {
  DatasetContext context;
  context.split = split;
  return context;
}

std::vector<uint8_t> AllPixels(const InMemoryImageDataset& dataset) {
  const int64_t bytes =
      dataset.image_shape()[0] * dataset.image_shape()[1] * dataset.image_shape()[2];
  return std::vector<uint8_t>(dataset.raw_image(0), dataset.raw_image(0) + dataset.size() * bytes);
}

TEST(SyntheticTest, ShapeAndLabelsFollowOptions) {
  SyntheticOptions options;
  options.set_num_examples(50);
  options.set_channels(2);
  options.set_height(5);
  options.set_width(7);
  options.set_num_classes(4);
  PACT_ASSERT_OK_AND_ASSIGN(auto dataset, MakeSyntheticDataset(options, Context(SPLIT_TRAIN)));
  EXPECT_EQ(dataset->size(), 50);
  EXPECT_EQ(dataset->num_classes(), 4);
  EXPECT_EQ(dataset->image_shape(), (std::vector<int64_t>{2, 5, 7}));
  std::vector<int> counts(4);
  for (int64_t i = 0; i < 50; ++i) {
    ASSERT_LT(dataset->label(i), 4);
    ++counts[dataset->label(i)];
  }
  for (const int count : counts) EXPECT_GT(count, 0);
}

TEST(SyntheticTest, DeterministicPerSeedAndSplit) {
  SyntheticOptions options;
  options.set_num_examples(20);
  PACT_ASSERT_OK_AND_ASSIGN(auto a, MakeSyntheticDataset(options, Context(SPLIT_TRAIN)));
  PACT_ASSERT_OK_AND_ASSIGN(auto b, MakeSyntheticDataset(options, Context(SPLIT_TRAIN)));
  PACT_ASSERT_OK_AND_ASSIGN(auto test, MakeSyntheticDataset(options, Context(SPLIT_TEST)));
  options.set_seed(8);
  PACT_ASSERT_OK_AND_ASSIGN(auto other, MakeSyntheticDataset(options, Context(SPLIT_TRAIN)));
  EXPECT_EQ(AllPixels(*a), AllPixels(*b));
  EXPECT_NE(AllPixels(*a), AllPixels(*test));
  EXPECT_NE(AllPixels(*a), AllPixels(*other));
}

// Nearest class mean, fitted on train, must classify test well: the class is learnable.
TEST(SyntheticTest, ClassesAreLearnable) {
  SyntheticOptions options;
  options.set_num_examples(400);
  options.set_channels(1);
  options.set_height(8);
  options.set_width(8);
  options.set_num_classes(5);
  PACT_ASSERT_OK_AND_ASSIGN(auto train, MakeSyntheticDataset(options, Context(SPLIT_TRAIN)));
  PACT_ASSERT_OK_AND_ASSIGN(auto test, MakeSyntheticDataset(options, Context(SPLIT_TEST)));
  constexpr int kPixels = 64;
  std::vector<double> means(5 * kPixels, 0.0);
  std::vector<int> counts(5, 0);
  std::vector<float> image(kPixels);
  std::mt19937_64 rng(0);
  for (int64_t i = 0; i < train->size(); ++i) {
    const int64_t label = train->Get(i, rng, image.data());
    ++counts[label];
    for (int j = 0; j < kPixels; ++j) means[label * kPixels + j] += image[j];
  }
  for (int k = 0; k < 5; ++k) {
    for (int j = 0; j < kPixels; ++j) means[k * kPixels + j] /= std::max(1, counts[k]);
  }
  int correct = 0;
  for (int64_t i = 0; i < test->size(); ++i) {
    const int64_t label = test->Get(i, rng, image.data());
    int best = 0;
    double best_distance = 1e30;
    for (int k = 0; k < 5; ++k) {
      double d = 0;
      for (int j = 0; j < kPixels; ++j) {
        d += (image[j] - means[k * kPixels + j]) * (image[j] - means[k * kPixels + j]);
      }
      if (d < best_distance) best_distance = d, best = k;
    }
    correct += best == label;
  }
  EXPECT_GT(correct, 0.95 * test->size());
}

TEST(SyntheticTest, AugmentationChangesImagesDeterministically) {
  SyntheticOptions options;
  options.set_num_examples(4);
  DatasetContext context = Context(SPLIT_TRAIN);
  context.augment = true;
  PACT_ASSERT_OK_AND_ASSIGN(auto dataset, MakeSyntheticDataset(options, context));
  std::vector<float> a(3 * 32 * 32), b(a.size());
  int differing = 0;
  for (uint64_t seed = 0; seed < 8; ++seed) {
    std::mt19937_64 rng1(seed), rng2(seed), rng3(seed + 100);
    dataset->Get(1, rng1, a.data());
    dataset->Get(1, rng2, b.data());
    EXPECT_EQ(a, b);
    dataset->Get(1, rng3, b.data());
    differing += a != b;
  }
  EXPECT_GT(differing, 4);
}

TEST(SyntheticTest, BadOptionsAreInvalidArgumentNamingTheField) {
  const auto expect_error = [](SyntheticOptions options, const std::string& text) {
    const absl::Status status = MakeSyntheticDataset(options, Context(SPLIT_TRAIN)).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << text;
    EXPECT_THAT(status.message(), HasSubstr(text));
  };
  SyntheticOptions options;
  options.set_num_examples(0);
  expect_error(options, "synthetic.num_examples: must be in [1, 1073741824], got 0");
  options = SyntheticOptions();
  options.set_channels(0);
  expect_error(options, "synthetic.channels");
  options = SyntheticOptions();
  options.set_height(-1);
  expect_error(options, "synthetic.height");
  options = SyntheticOptions();
  options.set_width(5000);
  expect_error(options, "synthetic.width");
  options = SyntheticOptions();
  options.set_num_classes(1);
  expect_error(options, "synthetic.num_classes: must be in [2, 256], got 1");
  options = SyntheticOptions();
  options.set_num_examples(1 << 20);
  options.set_height(1024);
  expect_error(options, "more than the 2^30 allowed");
}

TEST(SyntheticTest, ThroughRegistryWithNormalizationOverride) {
  DatasetSpec spec;
  spec.mutable_synthetic()->set_num_examples(3);
  spec.mutable_normalize()->add_mean(0.5f);
  spec.mutable_normalize()->add_std(0.5f);
  const absl::Status status = GetDatasetRegistry().Create(spec, MakeDatasetContext(spec)).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(),
              HasSubstr("dataset 'synthetic': normalize.mean: expected 3 value(s)"));
  spec.mutable_normalize()->add_mean(0.5f);
  spec.mutable_normalize()->add_mean(0.5f);
  spec.mutable_normalize()->add_std(0.5f);
  spec.mutable_normalize()->add_std(0.5f);
  PACT_ASSERT_OK_AND_ASSIGN(auto dataset,
                            GetDatasetRegistry().Create(spec, MakeDatasetContext(spec)));
  EXPECT_EQ(dataset->size(), 3);
}

}  // namespace
}  // namespace pact::datasets
