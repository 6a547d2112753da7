// Synthetic images for tests and benchmarks: deterministic, no files, and learnable.
//
// Each class k has a fixed random prototype image P_k (pixels uniform in [32, 224), drawn from
// `seed`); example i has a label drawn from (seed, split, i) and pixels P_label + uniform noise
// in [-48, 48], clamped to [0, 255]. The train and test splits share prototypes but not noise,
// so a model that learns the prototypes generalizes. Stored as uint8 like the real datasets,
// so the loader path (normalization, augmentation) is the same.
//
// Normalization default: mean 0.5, std 0.25 per channel (the pixel distribution above).
// Augmentation (`augment`): 2-pixel zero padding + random crop + horizontal flip.
#ifndef PACT_DATASETS_SYNTHETIC_H_
#define PACT_DATASETS_SYNTHETIC_H_

#include <memory>

#include "absl/status/statusor.h"
#include "datasets/dataset.h"
#include "datasets/image_dataset.h"
#include "datasets/synthetic_options.pb.h"

namespace pact::datasets {

inline constexpr int kSyntheticPadding = 2;

// InvalidArgument naming the field for options out of range: num_examples >= 1,
// channels in [1, 64], height and width in [1, 1024], num_classes in [2, 256], and at most
// 2^30 bytes in all.
absl::StatusOr<std::shared_ptr<const InMemoryImageDataset>> MakeSyntheticDataset(
    const SyntheticOptions& options, const DatasetContext& context);

}  // namespace pact::datasets

#endif  // PACT_DATASETS_SYNTHETIC_H_
