#include "pact/quant/buffer_cache.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <thread>
#include <vector>

namespace pact::quant {
namespace {

constexpr int64_t kMiB = int64_t{1} << 20;

// Floats filling `bytes` (a multiple of 4).
at::Tensor Floats(int64_t bytes) { return EmptyFromBufferCache({bytes / 4}, {1}, torch::kFloat); }

class BufferCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SetBufferCacheLimit(kDefaultBufferCacheLimit);
    EmptyBufferCache();
  }
  void TearDown() override { SetUp(); }
};

TEST_F(BufferCacheTest, FreedBlockServesTheNextRequestOfTheSameSize) {
  const BufferCacheStats before = GetBufferCacheStats();
  const void* address = nullptr;
  {
    at::Tensor t = Floats(kMiB);
    address = t.data_ptr();
    t.fill_(1.0f);
  }
  EXPECT_EQ(GetBufferCacheStats().cached_blocks, 1);
  EXPECT_EQ(GetBufferCacheStats().cached_bytes, kMiB);
  at::Tensor again = Floats(kMiB);
  EXPECT_EQ(again.data_ptr(), address);
  const BufferCacheStats after = GetBufferCacheStats();
  EXPECT_EQ(after.misses - before.misses, 1);
  EXPECT_EQ(after.hits - before.hits, 1);
  EXPECT_EQ(after.cached_blocks, 0);
  EXPECT_EQ(after.cached_bytes, 0);
}

TEST_F(BufferCacheTest, LastFreedIsFirstReused) {
  at::Tensor a = Floats(kMiB);
  at::Tensor b = Floats(kMiB);
  const void* b_address = b.data_ptr();
  a.reset();
  b.reset();
  EXPECT_EQ(Floats(kMiB).data_ptr(), b_address);
}

TEST_F(BufferCacheTest, OtherSizesDoNotTakeACachedBlock) {
  at::Tensor t = Floats(kMiB);
  const void* address = t.data_ptr();
  t.reset();
  const BufferCacheStats before = GetBufferCacheStats();
  at::Tensor bigger = Floats(2 * kMiB);
  at::Tensor smaller = Floats(kMiB - 64);
  EXPECT_NE(bigger.data_ptr(), address);
  EXPECT_NE(smaller.data_ptr(), address);
  EXPECT_EQ(GetBufferCacheStats().misses - before.misses, 2);
  EXPECT_EQ(GetBufferCacheStats().cached_blocks, 1);
}

TEST_F(BufferCacheTest, SmallRequestsBypassTheCache) {
  const BufferCacheStats before = GetBufferCacheStats();
  {
    at::Tensor t = EmptyFromBufferCache({7}, {1}, torch::kDouble);
    t.fill_(2.0);
    EXPECT_EQ(t.sum().item<double>(), 14.0);
  }
  const BufferCacheStats after = GetBufferCacheStats();
  EXPECT_EQ(after.hits, before.hits);
  EXPECT_EQ(after.misses, before.misses);
  EXPECT_EQ(after.cached_blocks, 0);
}

TEST_F(BufferCacheTest, KeepsTheRequestedGeometry) {
  const std::vector<int64_t> sizes = {32, 16, 32, 32};
  const std::vector<int64_t> channels_last = {16 * 32 * 32, 1, 32 * 16, 16};
  at::Tensor t = EmptyFromBufferCache(sizes, channels_last, torch::kFloat);
  EXPECT_EQ(t.sizes().vec(), sizes);
  EXPECT_EQ(t.strides().vec(), channels_last);
  EXPECT_TRUE(t.is_contiguous(at::MemoryFormat::ChannelsLast));
  EXPECT_TRUE(t.device().is_cpu());
  EXPECT_EQ(t.scalar_type(), torch::kFloat);
  t.copy_(torch::arange(t.numel(), torch::kFloat).reshape(sizes));
  EXPECT_TRUE(t.equal(torch::arange(t.numel(), torch::kFloat).reshape(sizes)));
}

TEST_F(BufferCacheTest, StorageStaysResizable) {
  at::Tensor t = Floats(kMiB);
  t.fill_(3.0f);
  t.resize_({kMiB});  // four times the bytes: a new block from the same allocator
  EXPECT_EQ(t.numel(), kMiB);
  EXPECT_EQ(t.slice(0, 0, kMiB / 4).sum().item<double>(), 3.0 * (kMiB / 4));
}

TEST_F(BufferCacheTest, LimitBoundsWhatIsKept) {
  SetBufferCacheLimit(kMiB + kMiB / 2);
  {
    at::Tensor a = Floats(kMiB);
    at::Tensor b = Floats(kMiB);
  }
  EXPECT_EQ(GetBufferCacheStats().cached_blocks, 1);
  EXPECT_EQ(GetBufferCacheStats().cached_bytes, kMiB);
  EXPECT_EQ(SetBufferCacheLimit(0), kMiB + kMiB / 2);
  EXPECT_EQ(GetBufferCacheStats().cached_blocks, 0);
  { at::Tensor c = Floats(kMiB); }
  EXPECT_EQ(GetBufferCacheStats().cached_bytes, 0);  // a zero limit caches nothing
}

TEST_F(BufferCacheTest, EmptyFreesCachedBlocksOnly) {
  at::Tensor in_use = Floats(kMiB);
  { at::Tensor freed = Floats(2 * kMiB); }
  EXPECT_EQ(GetBufferCacheStats().cached_bytes, 2 * kMiB);
  EmptyBufferCache();
  EXPECT_EQ(GetBufferCacheStats().cached_bytes, 0);
  in_use.fill_(1.0f);
  in_use.reset();
  EXPECT_EQ(GetBufferCacheStats().cached_bytes, kMiB);
}

TEST_F(BufferCacheTest, ConcurrentAllocateAndFree) {
  const BufferCacheStats before = GetBufferCacheStats();
  constexpr int kThreads = 4;
  constexpr int kRounds = 200;
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([i] {
      for (int r = 0; r < kRounds; ++r) {
        at::Tensor t = Floats((1 + (r + i) % 3) * kMiB);
        t.data_ptr<float>()[0] = static_cast<float>(r);
        // Freed here or on the next round: both orders happen across threads.
      }
    });
  }
  for (std::thread& t : threads) t.join();
  const BufferCacheStats after = GetBufferCacheStats();
  EXPECT_EQ((after.hits - before.hits) + (after.misses - before.misses), kThreads * kRounds);
  EXPECT_LE(after.cached_blocks, kThreads * 3);
  // A miss makes a block; at most one tensor per thread is alive at a time, per size.
  EXPECT_LE(after.misses - before.misses, kThreads * 3);
}

}  // namespace
}  // namespace pact::quant
