#include "datasets/sampling.h"

#include <cstdint>
#include <numeric>
#include <random>
#include <utility>
#include <vector>

namespace pact::datasets {
namespace {

// Stream tags keep the permutation and the per-example generators independent.
constexpr uint64_t kPermutationStream = 0x7065726d75746531ULL;  // "permute1"
constexpr uint64_t kExampleStream = 0x6578616d706c6531ULL;      // "example1"

}  // namespace

uint64_t Mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

uint64_t MixSeed(uint64_t seed, uint64_t stream) { return Mix64(Mix64(seed) ^ stream); }

uint64_t ExampleSeed(uint64_t seed, int64_t epoch, int64_t index) {
  return Mix64(MixSeed(MixSeed(seed, kExampleStream), static_cast<uint64_t>(epoch)) ^
               static_cast<uint64_t>(index));
}

std::vector<int64_t> EpochPermutation(int64_t size, uint64_t seed, int64_t epoch) {
  std::vector<int64_t> order(size);
  std::iota(order.begin(), order.end(), int64_t{0});
  std::mt19937_64 rng(MixSeed(MixSeed(seed, kPermutationStream), static_cast<uint64_t>(epoch)));
  for (int64_t i = size - 1; i > 0; --i) {
    // j uniform in [0, i] (bias below 2^-40 for any dataset that fits in memory).
    const int64_t j = static_cast<int64_t>(
        (static_cast<unsigned __int128>(rng()) * static_cast<uint64_t>(i + 1)) >> 64);
    std::swap(order[i], order[j]);
  }
  return order;
}

}  // namespace pact::datasets
