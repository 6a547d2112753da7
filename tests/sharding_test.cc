// The loader's data-parallel sharding (datasets/loader.h) as DistributedSampler does it: one
// permutation per (seed, epoch) on every rank, interleaved disjoint slices, padded for
// training so every rank takes the same number of steps, exact for evaluation.
#include <algorithm>
#include <map>
#include <memory>
#include <numeric>
#include <set>
#include <vector>

#include "datasets/loader.h"
#include "datasets/synthetic.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pact/core/test_util.h"

namespace pact::dist {
namespace {

using datasets::ShardOrder;
using datasets::ShardSize;
using ::testing::ElementsAre;

TEST(ShardingTest, InterleavedSlices) {
  const std::vector<int64_t> order = {7, 3, 9, 1, 4};
  EXPECT_THAT(ShardOrder(order, 2, 0, /*pad=*/false), ElementsAre(7, 9, 4));
  EXPECT_THAT(ShardOrder(order, 2, 1, /*pad=*/false), ElementsAre(3, 1));
  // Padded: the order wraps around, so both shards have ceil(5 / 2) = 3.
  EXPECT_THAT(ShardOrder(order, 2, 1, /*pad=*/true), ElementsAre(3, 1, 7));
  EXPECT_THAT(ShardOrder(order, 3, 2, /*pad=*/true), ElementsAre(9, 7));
  // More shards than examples.
  EXPECT_THAT(ShardOrder({5, 6}, 3, 2, /*pad=*/true), ElementsAre(5));
  EXPECT_THAT(ShardOrder({5, 6}, 3, 2, /*pad=*/false), ElementsAre());
  EXPECT_EQ(ShardSize(10, 4, 0, false) + ShardSize(10, 4, 1, false) + ShardSize(10, 4, 2, false) +
                ShardSize(10, 4, 3, false),
            10);
  EXPECT_EQ(ShardSize(10, 4, 3, true), 3);
}

std::shared_ptr<const datasets::Dataset> Dataset(int examples) {
  datasets::SyntheticOptions options;
  options.set_num_examples(examples);
  options.set_channels(1);
  options.set_height(2);
  options.set_width(2);
  auto dataset = datasets::MakeSyntheticDataset(options, datasets::DatasetContext{});
  EXPECT_TRUE(dataset.ok()) << dataset.status();
  return *dataset;
}

// Every image of every batch of `loader`'s epoch, as its first pixel value per example.
std::vector<float> Epoch(datasets::DataLoader& loader, int64_t epoch, int64_t* batches) {
  std::vector<float> firsts;
  loader.StartEpoch(epoch);
  datasets::Batch batch;
  *batches = 0;
  while (loader.Next(&batch)) {
    ++*batches;
    for (int64_t i = 0; i < batch.images.size(0); ++i) {
      firsts.push_back(batch.images[i].sum().item<float>() * 1000 +
                       batch.labels[i].item<int64_t>());
    }
  }
  return firsts;
}

TEST(ShardingTest, TrainingShardsPartitionTheEpochWithEqualSteps) {
  const auto dataset = Dataset(103);
  std::multiset<float> all;
  {
    auto one = datasets::DataLoader::Create(dataset, datasets::LoaderOptions::Eval(200, 0));
    int64_t batches = 0;
    for (float x : Epoch(**one, 0, &batches)) all.insert(x);
  }
  for (int64_t epoch : {0, 1}) {
    std::multiset<float> seen;
    std::vector<std::vector<float>> per_rank;
    for (int rank = 0; rank < 3; ++rank) {
      datasets::LoaderOptions options = datasets::LoaderOptions::Train(6, rank % 2, 11);
      options.num_shards = 3;
      options.shard_index = rank;
      PACT_ASSERT_OK_AND_ASSIGN(auto loader, datasets::DataLoader::Create(dataset, options));
      EXPECT_EQ(loader->num_batches(), 5);  // ceil(103 / 3) = 35 examples: 5 batches of 6
      int64_t batches = 0;
      per_rank.push_back(Epoch(*loader, epoch, &batches));
      EXPECT_EQ(batches, 5);
      seen.insert(per_rank.back().begin(), per_rank.back().end());
    }
    // Positions 0..89 of the epoch's order: 90 distinct examples, none twice.
    EXPECT_EQ(seen.size(), 90u);
    for (float x : seen) EXPECT_EQ(seen.count(x), all.count(x));
    EXPECT_NE(per_rank[0], per_rank[1]);
  }
}

TEST(ShardingTest, EvaluationShardsCoverEveryExampleOnce) {
  const auto dataset = Dataset(101);
  std::multiset<float> all, seen;
  {
    auto one = datasets::DataLoader::Create(dataset, datasets::LoaderOptions::Eval(16, 0));
    int64_t batches = 0;
    for (float x : Epoch(**one, 0, &batches)) all.insert(x);
  }
  for (int rank = 0; rank < 2; ++rank) {
    datasets::LoaderOptions options = datasets::LoaderOptions::Eval(16, 1);
    options.num_shards = 2;
    options.shard_index = rank;
    options.pad_shards = false;
    PACT_ASSERT_OK_AND_ASSIGN(auto loader, datasets::DataLoader::Create(dataset, options));
    EXPECT_EQ(loader->num_examples(), rank == 0 ? 51 : 50);
    int64_t batches = 0;
    for (float x : Epoch(*loader, 0, &batches)) seen.insert(x);
    EXPECT_EQ(batches, 4);
  }
  EXPECT_EQ(seen, all);
}

TEST(ShardingTest, RejectsBadShards) {
  datasets::LoaderOptions options = datasets::LoaderOptions::Train(4, 0, 1);
  options.num_shards = 2;
  options.shard_index = 2;
  EXPECT_FALSE(datasets::DataLoader::Create(Dataset(10), options).ok());
  options.shard_index = 0;
  options.batch_size = 6;  // 5 examples per shard
  EXPECT_THAT(datasets::DataLoader::Create(Dataset(10), options).status().message(),
              ::testing::HasSubstr("5 per shard"));
}

}  // namespace
}  // namespace pact::dist
