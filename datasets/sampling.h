// Deterministic seeds and epoch orders for the loader.
//
// Everything random in the input pipeline derives from (seed, epoch, index) through these
// functions, using only std::mt19937_64's raw output (fully specified by the standard) and our
// own arithmetic, so an epoch's batches are identical for any number of workers, across runs
// and across standard libraries.
#ifndef PACT_DATASETS_SAMPLING_H_
#define PACT_DATASETS_SAMPLING_H_

#include <cstdint>
#include <vector>

namespace pact::datasets {

// SplitMix64's finalizer (Steele, Lea and Flood 2014): a bijection with good avalanche, so
// nearby inputs (epoch 1 vs 2, index 7 vs 8) give unrelated seeds.
uint64_t Mix64(uint64_t x);

// A seed derived from `seed` and `stream`; different streams give independent generators.
uint64_t MixSeed(uint64_t seed, uint64_t stream);

// The seed of the augmentation generator of example `index` in `epoch`.
uint64_t ExampleSeed(uint64_t seed, int64_t epoch, int64_t index);

// A uniformly random permutation of 0..size-1 for (seed, epoch): Fisher-Yates driven by
// std::mt19937_64 with a multiply-shift bounded draw (Lemire 2019).
std::vector<int64_t> EpochPermutation(int64_t size, uint64_t seed, int64_t epoch);

}  // namespace pact::datasets

#endif  // PACT_DATASETS_SAMPLING_H_
