#include "datasets/loader.h"

#include <torch/types.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <numeric>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "datasets/dataset.h"
#include "datasets/sampling.h"
#include "datasets/synthetic.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pact/core/test_util.h"

namespace pact::datasets {
namespace {

using ::testing::HasSubstr;

// Image = {index, first draw of the generator % 1000, index, ...}; label = index % 10. Shows
// which example landed where and which generator it got.
class IndexDataset : public Dataset {
 public:
  explicit IndexDataset(int64_t size) : size_(size) {}
  int64_t size() const override { return size_; }
  int64_t num_classes() const override { return 10; }
  std::vector<int64_t> image_shape() const override { return {1, 2, 3}; }
  int64_t Get(int64_t index, std::mt19937_64& rng, float* image) const override {
    std::fill(image, image + 6, static_cast<float>(index));
    image[1] = static_cast<float>(rng() % 1000);
    return index % 10;
  }
  std::string Describe() const override { return "index dataset"; }

 private:
  int64_t size_;
};

std::unique_ptr<DataLoader> MakeLoader(std::shared_ptr<const Dataset> dataset,
                                       const LoaderOptions& options) {
  absl::StatusOr<std::unique_ptr<DataLoader>> loader = DataLoader::Create(dataset, options);
  EXPECT_TRUE(loader.ok()) << loader.status();
  return loader.ok() ? std::move(loader).value() : nullptr;
}

std::vector<Batch> Epoch(DataLoader& loader, int64_t epoch) {
  loader.StartEpoch(epoch);
  std::vector<Batch> batches;
  Batch batch;
  while (loader.Next(&batch)) batches.push_back(batch);
  return batches;
}

// Dataset indices in delivery order (IndexDataset's pixel 0).
std::vector<int64_t> Indices(const std::vector<Batch>& batches) {
  std::vector<int64_t> indices;
  for (const Batch& batch : batches) {
    for (int64_t i = 0; i < batch.images.size(0); ++i) {
      indices.push_back(static_cast<int64_t>(batch.images[i][0][0][0].item<float>()));
    }
  }
  return indices;
}

TEST(DataLoaderTest, TrainBatchesAreFullAndDropTheRemainder) {
  auto loader = MakeLoader(std::make_shared<IndexDataset>(10), LoaderOptions::Train(4, 0, 1));
  EXPECT_EQ(loader->num_batches(), 2);
  EXPECT_EQ(loader->num_examples(), 8);
  const std::vector<Batch> batches = Epoch(*loader, 0);
  ASSERT_EQ(batches.size(), 2u);
  for (const Batch& batch : batches) {
    EXPECT_EQ(batch.images.sizes().vec(), (std::vector<int64_t>{4, 1, 2, 3}));
    EXPECT_EQ(batch.images.dtype(), torch::kFloat32);
    EXPECT_TRUE(batch.images.is_contiguous());
    EXPECT_EQ(batch.labels.sizes().vec(), (std::vector<int64_t>{4}));
    EXPECT_EQ(batch.labels.dtype(), torch::kInt64);
    for (int64_t i = 0; i < 4; ++i) {
      EXPECT_EQ(batch.labels[i].item<int64_t>(),
                static_cast<int64_t>(batch.images[i][0][0][0].item<float>()) % 10);
    }
  }
  const std::vector<int64_t> indices = Indices(batches);
  EXPECT_EQ(std::set<int64_t>(indices.begin(), indices.end()).size(), 8u);
}

TEST(DataLoaderTest, EvalKeepsTheShortLastBatchInDatasetOrder) {
  auto loader = MakeLoader(std::make_shared<IndexDataset>(10), LoaderOptions::Eval(4, 2));
  EXPECT_EQ(loader->num_batches(), 3);
  EXPECT_EQ(loader->num_examples(), 10);
  const std::vector<Batch> batches = Epoch(*loader, 0);
  ASSERT_EQ(batches.size(), 3u);
  EXPECT_EQ(batches[2].images.size(0), 2);
  EXPECT_EQ(batches[2].labels.size(0), 2);
  std::vector<int64_t> expected(10);
  std::iota(expected.begin(), expected.end(), 0);
  EXPECT_EQ(Indices(batches), expected);
}

TEST(DataLoaderTest, EveryIndexOnceAndAReshufflePerEpoch) {
  for (const int workers : {0, 2}) {
    LoaderOptions options = LoaderOptions::Train(7, workers, 3);
    options.drop_last = false;
    auto loader = MakeLoader(std::make_shared<IndexDataset>(100), options);
    std::vector<int64_t> previous;
    for (int64_t epoch = 0; epoch < 3; ++epoch) {
      const std::vector<int64_t> order = Indices(Epoch(*loader, epoch));
      ASSERT_EQ(order, EpochPermutation(100, 3, epoch)) << "workers " << workers;
      std::vector<int64_t> sorted = order;
      std::sort(sorted.begin(), sorted.end());
      std::vector<int64_t> expected(100);
      std::iota(expected.begin(), expected.end(), 0);
      EXPECT_EQ(sorted, expected);
      EXPECT_NE(order, previous);
      previous = order;
    }
  }
}

TEST(DataLoaderTest, SameEpochSameBatchesAcrossLoaders) {
  auto a = MakeLoader(std::make_shared<IndexDataset>(50), LoaderOptions::Train(8, 1, 9));
  auto b = MakeLoader(std::make_shared<IndexDataset>(50), LoaderOptions::Train(8, 1, 9));
  Epoch(*a, 0);  // a has run an epoch before; only (seed, epoch) matters
  const std::vector<Batch> x = Epoch(*a, 1);
  const std::vector<Batch> y = Epoch(*b, 1);
  ASSERT_EQ(x.size(), y.size());
  for (size_t i = 0; i < x.size(); ++i) {
    EXPECT_TRUE(torch::equal(x[i].images, y[i].images));
    EXPECT_TRUE(torch::equal(x[i].labels, y[i].labels));
  }
}

TEST(DataLoaderTest, IdenticalBatchesForAnyWorkerCount) {
  SyntheticOptions synthetic;
  synthetic.set_num_examples(75);
  DatasetContext context;
  context.augment = true;
  absl::StatusOr<std::shared_ptr<const InMemoryImageDataset>> dataset =
      MakeSyntheticDataset(synthetic, context);
  ASSERT_TRUE(dataset.ok()) << dataset.status();
  std::vector<std::vector<Batch>> runs;
  for (const int workers : {0, 1, 2, 3}) {
    LoaderOptions options = LoaderOptions::Train(8, workers, 11);
    options.prefetch_batches = 1 + workers;
    auto loader = MakeLoader(*dataset, options);
    runs.push_back(Epoch(*loader, 4));
  }
  for (size_t r = 1; r < runs.size(); ++r) {
    ASSERT_EQ(runs[r].size(), runs[0].size());
    ASSERT_EQ(runs[0].size(), 9u);
    for (size_t b = 0; b < runs[0].size(); ++b) {
      EXPECT_TRUE(torch::equal(runs[r][b].images, runs[0][b].images)) << "run " << r << " " << b;
      EXPECT_TRUE(torch::equal(runs[r][b].labels, runs[0][b].labels)) << "run " << r << " " << b;
    }
  }
}

TEST(DataLoaderTest, AugmentationGeneratorIsSeededPerExample) {
  auto loader = MakeLoader(std::make_shared<IndexDataset>(20), LoaderOptions::Train(5, 2, 21));
  for (const Batch& batch : Epoch(*loader, 2)) {
    for (int64_t i = 0; i < batch.images.size(0); ++i) {
      const int64_t index = static_cast<int64_t>(batch.images[i][0][0][0].item<float>());
      std::mt19937_64 rng(ExampleSeed(21, 2, index));
      EXPECT_EQ(batch.images[i][0][0][1].item<float>(), static_cast<float>(rng() % 1000));
    }
  }
}

TEST(DataLoaderTest, AbandonedEpochRestartsCleanly) {
  for (const int workers : {0, 1, 3}) {
    LoaderOptions options = LoaderOptions::Train(3, workers, 5);
    options.prefetch_batches = 2;
    auto loader = MakeLoader(std::make_shared<IndexDataset>(60), options);
    loader->StartEpoch(0);
    Batch batch;
    ASSERT_TRUE(loader->Next(&batch));
    ASSERT_TRUE(loader->Next(&batch));
    // Abandon epoch 0 with batches in flight, then run epoch 1 fully.
    const std::vector<int64_t> order = Indices(Epoch(*loader, 1));
    EXPECT_EQ(order, std::vector<int64_t>(EpochPermutation(60, 5, 1))) << workers;
    // And epoch 0 again from its start.
    EXPECT_EQ(Indices(Epoch(*loader, 0)), EpochPermutation(60, 5, 0)) << workers;
  }
}

// Counts the examples it decodes, so a test can see which ones a loader never produced.
class CountingDataset : public IndexDataset {
 public:
  using IndexDataset::IndexDataset;
  int64_t Get(int64_t index, std::mt19937_64& rng, float* image) const override {
    gets_.fetch_add(1);
    return IndexDataset::Get(index, rng, image);
  }
  int64_t gets() const { return gets_.load(); }

 private:
  mutable std::atomic<int64_t> gets_{0};
};

TEST(DataLoaderTest, StartingMidEpochGivesTheRemainingBatchesWithoutDecodingTheSkippedOnes) {
  for (const int workers : {0, 1, 3}) {
    SCOPED_TRACE(::testing::Message() << workers << " workers");
    LoaderOptions options = LoaderOptions::Train(4, workers, 13);
    const std::vector<Batch> full =
        Epoch(*MakeLoader(std::make_shared<IndexDataset>(42), options), 3);
    ASSERT_EQ(full.size(), 10u);
    auto dataset = std::make_shared<CountingDataset>(42);
    auto loader = MakeLoader(dataset, options);
    loader->StartEpoch(3, /*first_batch=*/7);
    std::vector<Batch> rest;
    Batch batch;
    while (loader->Next(&batch)) rest.push_back(batch);
    ASSERT_EQ(rest.size(), 3u);
    for (size_t i = 0; i < rest.size(); ++i) {
      EXPECT_TRUE(torch::equal(rest[i].images, full[7 + i].images)) << i;
      EXPECT_TRUE(torch::equal(rest[i].labels, full[7 + i].labels)) << i;
    }
    EXPECT_EQ(dataset->gets(), 3 * 4);  // the 7 skipped batches were never decoded
    // At the end: an empty remainder; then the next epoch from its start.
    loader->StartEpoch(3, /*first_batch=*/10);
    EXPECT_FALSE(loader->Next(&batch));
    EXPECT_EQ(Epoch(*loader, 4).size(), 10u);
  }
}

TEST(DataLoaderTest, NextAfterTheEndStaysFalse) {
  auto loader = MakeLoader(std::make_shared<IndexDataset>(6), LoaderOptions::Eval(4, 1));
  loader->StartEpoch(0);
  Batch batch;
  EXPECT_TRUE(loader->Next(&batch));
  EXPECT_TRUE(loader->Next(&batch));
  EXPECT_FALSE(loader->Next(&batch));
  EXPECT_FALSE(loader->Next(&batch));
}

TEST(DataLoaderTest, DestroyMidEpochJoinsWorkers) {
  for (int i = 0; i < 20; ++i) {
    LoaderOptions options = LoaderOptions::Train(2, 3, static_cast<uint64_t>(i));
    auto loader = MakeLoader(std::make_shared<IndexDataset>(1000), options);
    loader->StartEpoch(0);
    Batch batch;
    if (i % 2 == 0) {
      ASSERT_TRUE(loader->Next(&batch));
    }
  }
  // Never started at all.
  auto idle = MakeLoader(std::make_shared<IndexDataset>(10), LoaderOptions::Train(2, 2, 0));
}

TEST(DataLoaderTest, BadOptionsAreInvalidArgument) {
  const auto dataset = std::make_shared<IndexDataset>(10);
  const auto error = [&](const LoaderOptions& options) {
    return DataLoader::Create(dataset, options).status();
  };
  LoaderOptions options = LoaderOptions::Train(0, 1, 0);
  EXPECT_EQ(error(options).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(error(options).message(), HasSubstr("batch_size: must be >= 1, got 0"));
  options = LoaderOptions::Train(2, -1, 0);
  EXPECT_THAT(error(options).message(), HasSubstr("workers: must be in [0, 256], got -1"));
  options = LoaderOptions::Train(2, 1, 0);
  options.prefetch_batches = 0;
  EXPECT_THAT(error(options).message(), HasSubstr("prefetch_batches: must be >= 1"));
  options = LoaderOptions::Train(11, 1, 0);
  EXPECT_THAT(error(options).message(),
              HasSubstr("batch_size: 11 is larger than the dataset (10 examples)"));
  // Without drop_last a batch larger than the dataset is one short batch.
  options.drop_last = false;
  auto loader = MakeLoader(dataset, options);
  EXPECT_EQ(loader->num_batches(), 1);
  EXPECT_EQ(DataLoader::Create(nullptr, LoaderOptions()).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(DataLoader::Create(std::make_shared<IndexDataset>(0), LoaderOptions::Eval(1, 0))
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(DataLoaderDeathTest, NextBeforeStartEpochIsABug) {
  // Re-executes the binary for the death test: torch may have started threads already.
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  auto loader = MakeLoader(std::make_shared<IndexDataset>(10), LoaderOptions::Eval(2, 0));
  Batch batch;
  EXPECT_DEATH(loader->Next(&batch), "Next called before StartEpoch");
}

TEST(DataLoaderDeathTest, StartingPastTheEndIsABug) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  auto loader = MakeLoader(std::make_shared<IndexDataset>(10), LoaderOptions::Eval(2, 0));
  EXPECT_DEATH(loader->StartEpoch(0, 6), "first batch 6 of an epoch of 5");
}

}  // namespace
}  // namespace pact::datasets
