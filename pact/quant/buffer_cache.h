// Recycled CPU output buffers for the fused ops, keyed by exact byte size.
//
// Why: fused PACT forward + backward is memory-bound, and when its tensors together are about
// the size of the last-level cache its speed depends on whether its outputs land where the cache
// still holds lines. glibc does not keep them there: autograd's small allocations (nodes, saved
// data) split the freed blocks, so from step to step the outputs move between many addresses, and
// forward + backward through autograd ran much slower than the same kernels called directly
// (pact_benchmark BM_PactKernelsOnly; figures in README.md, Benchmarks). A block freed here goes to
// the next request of the same size, last in first out, as in PyTorch's CUDA caching allocator: a
// training step asks for the same sizes in the same order every time, so the addresses stay put.
//
// Blocks under kMinCachedBytes come from ATen's CPU allocator as usual. The cache keeps at most
// SetBufferCacheLimit() bytes of free blocks; a block freed beyond that is returned at once.
// Thread-safe; tensors may be freed on any thread.
//
// Users: the fused PACT ops (pact_ops.cc). The fused BatchNorm + activation op keeps ATen's
// allocator: with the cache a W4A4 ResNet-20 training step measured slower (train_benchmark A/B
// pairs, README.md), probably because blocks held for one size are unavailable to the others.
#ifndef PACT_QUANT_BUFFER_CACHE_H_
#define PACT_QUANT_BUFFER_CACHE_H_

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace pact::quant {

// Smaller requests gain nothing from a stable address and would only fill the size table.
inline constexpr int64_t kMinCachedBytes = int64_t{1} << 16;
inline constexpr int64_t kDefaultBufferCacheLimit = int64_t{512} << 20;

// at::empty_strided(sizes, strides, dtype) on the CPU, its storage from the cache. Its allocator
// stays attached, so the storage can still be resized like any other.
at::Tensor EmptyFromBufferCache(at::IntArrayRef sizes, at::IntArrayRef strides,
                                at::ScalarType dtype);

struct BufferCacheStats {
  int64_t hits = 0;           // requests served from a cached block
  int64_t misses = 0;         // cacheable requests that allocated a new block
  int64_t cached_blocks = 0;  // free blocks held now
  int64_t cached_bytes = 0;
};
BufferCacheStats GetBufferCacheStats();

// The most bytes of free blocks the cache keeps (default kDefaultBufferCacheLimit; 0: none).
// Lowering it frees blocks until the cache fits. Returns the previous limit.
int64_t SetBufferCacheLimit(int64_t bytes);

// Frees every cached block (blocks in use are unaffected and return to the cache when freed).
void EmptyBufferCache();

}  // namespace pact::quant

#endif  // PACT_QUANT_BUFFER_CACHE_H_
