#include "pact/quant/buffer_cache.h"

#include <ATen/EmptyTensor.h>
#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>
#include <c10/core/impl/alloc_cpu.h>

#include <iterator>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace pact::quant {
namespace {

// One cached-size allocation; the DataPtr's context, so freeing needs no lookup.
struct Block {
  void* data;
  size_t bytes;
};

class BufferCache final : public c10::Allocator {
 public:
  c10::DataPtr allocate(size_t bytes) const override {
    if (bytes < static_cast<size_t>(kMinCachedBytes)) {
      return c10::GetCPUAllocator()->allocate(bytes);
    }
    Block* block = nullptr;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = free_.find(bytes);
      if (it != free_.end() && !it->second.empty()) {
        block = it->second.back();
        it->second.pop_back();
        cached_bytes_ -= static_cast<int64_t>(bytes);
        --cached_blocks_;
        ++hits_;
      } else {
        ++misses_;
      }
    }
    if (block == nullptr) block = new Block{c10::alloc_cpu(bytes), bytes};
    return {block->data, block, &Release, c10::Device(c10::kCPU)};
  }

  BufferCacheStats Stats() const {
    std::lock_guard<std::mutex> lock(mu_);
    return {hits_, misses_, cached_blocks_, cached_bytes_};
  }

  int64_t SetLimit(int64_t bytes) {
    std::vector<Block*> evicted;
    int64_t previous;
    {
      std::lock_guard<std::mutex> lock(mu_);
      previous = limit_;
      limit_ = bytes < 0 ? 0 : bytes;
      EvictLocked(limit_, &evicted);
    }
    Free(evicted);
    return previous;
  }

  void Empty() {
    std::vector<Block*> evicted;
    {
      std::lock_guard<std::mutex> lock(mu_);
      EvictLocked(0, &evicted);
    }
    Free(evicted);
  }

 private:
  static void Release(void* ctx);

  void Recycle(Block* block) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (cached_bytes_ + static_cast<int64_t>(block->bytes) <= limit_) {
        free_[block->bytes].push_back(block);
        cached_bytes_ += static_cast<int64_t>(block->bytes);
        ++cached_blocks_;
        return;
      }
    }
    Free({block});
  }

  // Moves free blocks out until at most `keep` bytes remain cached.
  void EvictLocked(int64_t keep, std::vector<Block*>* evicted) {
    for (auto it = free_.begin(); it != free_.end() && cached_bytes_ > keep;) {
      std::vector<Block*>& list = it->second;
      while (!list.empty() && cached_bytes_ > keep) {
        cached_bytes_ -= static_cast<int64_t>(list.back()->bytes);
        --cached_blocks_;
        evicted->push_back(list.back());
        list.pop_back();
      }
      it = list.empty() ? free_.erase(it) : std::next(it);
    }
  }

  static void Free(const std::vector<Block*>& blocks) {
    for (Block* block : blocks) {
      c10::free_cpu(block->data);
      delete block;
    }
  }

  mutable std::mutex mu_;
  mutable std::unordered_map<size_t, std::vector<Block*>> free_;
  mutable int64_t cached_bytes_ = 0;
  mutable int64_t cached_blocks_ = 0;
  mutable int64_t hits_ = 0;
  mutable int64_t misses_ = 0;
  int64_t limit_ = kDefaultBufferCacheLimit;
};

// Never destroyed: tensors from the cache may be freed during static destruction.
BufferCache& Cache() {
  static auto* cache = new BufferCache;
  return *cache;
}

void BufferCache::Release(void* ctx) { Cache().Recycle(static_cast<Block*>(ctx)); }

}  // namespace

at::Tensor EmptyFromBufferCache(at::IntArrayRef sizes, at::IntArrayRef strides,
                                at::ScalarType dtype) {
  return at::detail::empty_strided_generic(sizes, strides, &Cache(),
                                           c10::DispatchKeySet(c10::DispatchKey::CPU), dtype);
}

BufferCacheStats GetBufferCacheStats() { return Cache().Stats(); }

int64_t SetBufferCacheLimit(int64_t bytes) { return Cache().SetLimit(bytes); }

void EmptyBufferCache() { Cache().Empty(); }

}  // namespace pact::quant
