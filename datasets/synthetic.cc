#include "datasets/synthetic.h"

#include <algorithm>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "datasets/dataset.h"
#include "datasets/image_dataset.h"
#include "datasets/sampling.h"
#include "datasets/synthetic_options.pb.h"
#include "datasets/transforms.h"
#include "glog/logging.h"
#include "pact/core/status_macros.h"

namespace pact::datasets {
namespace {

void CheckRange(absl::string_view field, int64_t value, int64_t lo, int64_t hi, Violations& v) {
  v.Check(value >= lo && value <= hi, field, absl::StrCat("must be in [", lo, ", ", hi, "]"),
          value);
}

// The registered validator; MakeSyntheticDataset, callable without the registry, runs it too.
void ValidateSynthetic(const SyntheticOptions& options, Violations& v) {
  const size_t before = v.size();
  CheckRange("num_examples", options.num_examples(), 1, int64_t{1} << 30, v);
  CheckRange("channels", options.channels(), 1, 64, v);
  CheckRange("height", options.height(), 1, 1024, v);
  CheckRange("width", options.width(), 1, 1024, v);
  CheckRange("num_classes", options.num_classes(), 2, 256, v);
  if (v.size() != before) return;  // the product below needs the ranges
  const int64_t total_bytes =
      int64_t{options.channels()} * options.height() * options.width() * options.num_examples();
  if (total_bytes > (int64_t{1} << 30)) {
    v.Add("", absl::StrCat("num_examples x channels x height x width = ", total_bytes,
                           " bytes, more than the 2^30 allowed; make it smaller"));
  }
}

absl::StatusOr<std::shared_ptr<const Dataset>> BuildSynthetic(const SyntheticOptions& options,
                                                              const DatasetContext& context) {
  PACT_ASSIGN_OR_RETURN(std::shared_ptr<const InMemoryImageDataset> dataset,
                        MakeSyntheticDataset(options, context));
  VLOG(1) << dataset->Describe();
  return std::shared_ptr<const Dataset>(std::move(dataset));
}

}  // namespace

absl::StatusOr<std::shared_ptr<const InMemoryImageDataset>> MakeSyntheticDataset(
    const SyntheticOptions& options, const DatasetContext& context) {
  Violations violations("synthetic");
  ValidateSynthetic(options, violations);
  if (!violations.empty())
    return absl::InvalidArgumentError(absl::StrJoin(violations.list(), "; "));
  if (context.split != SPLIT_TRAIN && context.split != SPLIT_TEST) {
    return absl::InvalidArgumentError(
        absl::StrCat("split: must be SPLIT_TRAIN or SPLIT_TEST, got ", Split_Name(context.split)));
  }
  const int64_t image_bytes = int64_t{options.channels()} * options.height() * options.width();
  const int64_t total_bytes = image_bytes * options.num_examples();

  // Raw generator output only (see SampleCropFlip): identical on every platform.
  std::mt19937_64 prototype_rng(MixSeed(options.seed(), 0x70726f746fULL));
  std::vector<uint8_t> prototypes(options.num_classes() * image_bytes);
  for (uint8_t& p : prototypes) p = static_cast<uint8_t>(32 + prototype_rng() % 192);

  std::mt19937_64 example_rng(MixSeed(options.seed(), context.split));
  std::vector<uint8_t> labels(options.num_examples());
  std::vector<uint8_t> pixels(total_bytes);
  for (int64_t i = 0; i < options.num_examples(); ++i) {
    const uint8_t label = static_cast<uint8_t>(example_rng() % options.num_classes());
    labels[i] = label;
    const uint8_t* prototype = &prototypes[label * image_bytes];
    uint8_t* image = &pixels[i * image_bytes];
    for (int64_t j = 0; j < image_bytes; ++j) {
      const int value = prototype[j] + static_cast<int>(example_rng() % 97) - 48;
      image[j] = static_cast<uint8_t>(std::clamp(value, 0, 255));
    }
  }

  InMemoryImageDataset::Config config;
  config.name = absl::StrCat("synthetic ", context.split == SPLIT_TEST ? "test" : "train");
  config.source = absl::StrCat("seed ", options.seed());
  config.channels = options.channels();
  config.height = options.height();
  config.width = options.width();
  config.num_classes = options.num_classes();
  const ChannelNormalization defaults{std::vector<float>(config.channels, 0.5f),
                                      std::vector<float>(config.channels, 0.25f)};
  PACT_ASSIGN_OR_RETURN(config.normalization,
                        ResolveNormalization(context, defaults, config.channels));
  config.augment = context.augment;
  config.pad = kSyntheticPadding;
  config.flip = true;
  return std::make_shared<const InMemoryImageDataset>(std::move(config), std::move(pixels),
                                                      std::move(labels));
}

PACT_REGISTER_DATASET(synthetic, SyntheticOptions, BuildSynthetic, ValidateSynthetic);

}  // namespace pact::datasets
