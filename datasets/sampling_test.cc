#include "datasets/sampling.h"

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pact::datasets {
namespace {

TEST(EpochPermutationTest, IsAPermutation) {
  std::vector<int64_t> order = EpochPermutation(1000, 5, 3);
  std::sort(order.begin(), order.end());
  std::vector<int64_t> expected(1000);
  std::iota(expected.begin(), expected.end(), 0);
  EXPECT_EQ(order, expected);
}

TEST(EpochPermutationTest, DependsOnSeedAndEpochOnly) {
  EXPECT_EQ(EpochPermutation(100, 1, 0), EpochPermutation(100, 1, 0));
  EXPECT_NE(EpochPermutation(100, 1, 0), EpochPermutation(100, 1, 1));
  EXPECT_NE(EpochPermutation(100, 1, 0), EpochPermutation(100, 2, 0));
}

TEST(EpochPermutationTest, EdgeSizes) {
  EXPECT_TRUE(EpochPermutation(0, 1, 0).empty());
  EXPECT_EQ(EpochPermutation(1, 1, 0), std::vector<int64_t>{0});
}

// Golden values: std::mt19937_64 and our arithmetic are fully specified, so these must be the
// same on every platform and standard library. A change here changes every run's data order.
TEST(EpochPermutationTest, GoldenOrder) {
  EXPECT_THAT(EpochPermutation(10, 42, 0), ::testing::ElementsAre(4, 0, 8, 1, 2, 9, 3, 6, 7, 5));
}

TEST(ExampleSeedTest, Golden) {
  EXPECT_EQ(ExampleSeed(42, 0, 0), 16308135258948001933ULL);
  EXPECT_EQ(ExampleSeed(42, 3, 17), 8918241040019098231ULL);
}

TEST(ExampleSeedTest, DistinctAcrossNearbyInputs) {
  std::vector<uint64_t> seeds;
  for (int64_t epoch = 0; epoch < 4; ++epoch) {
    for (int64_t index = 0; index < 256; ++index) seeds.push_back(ExampleSeed(1, epoch, index));
  }
  for (int64_t index = 0; index < 256; ++index) seeds.push_back(ExampleSeed(2, 0, index));
  std::sort(seeds.begin(), seeds.end());
  EXPECT_EQ(std::unique(seeds.begin(), seeds.end()), seeds.end());
}

}  // namespace
}  // namespace pact::datasets
