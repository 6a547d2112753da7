#include "datasets/image_dataset.h"

#include <cstdint>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "datasets/transforms.h"
#include "glog/logging.h"

namespace pact::datasets {

InMemoryImageDataset::InMemoryImageDataset(Config config, std::vector<uint8_t> pixels,
                                           std::vector<uint8_t> labels)
    : config_(std::move(config)),
      image_bytes_(config_.channels * config_.height * config_.width),
      pixels_(std::move(pixels)),
      labels_(std::move(labels)),
      lut_(MakeNormalizationTable(config_.normalization)) {
  CHECK_GT(image_bytes_, 0) << config_.name;
  CHECK_EQ(pixels_.size(), labels_.size() * image_bytes_) << config_.name;
  CHECK_EQ(static_cast<int64_t>(config_.normalization.mean.size()), config_.channels)
      << config_.name;
}

int64_t InMemoryImageDataset::Get(int64_t index, std::mt19937_64& rng, float* image) const {
  CHECK(index >= 0 && index < size()) << config_.name << ": index " << index << " of " << size();
  const CropFlip crop_flip =
      config_.augment ? SampleCropFlip(rng, config_.pad, config_.flip) : CropFlip{};
  CropFlipNormalize(raw_image(index), config_.channels, config_.height, config_.width, crop_flip,
                    lut_.data(), image);
  return labels_[index];
}

std::string InMemoryImageDataset::Describe() const {
  std::string augment = "no augmentation";
  if (config_.augment) {
    augment =
        absl::StrCat("augment: ", config_.pad, "-pixel zero padding + random ", config_.height, "x",
                     config_.width, " crop", config_.flip ? " + horizontal flip" : "");
  }
  return absl::StrCat(
      config_.name, ": ", size(), " images ", config_.channels, "x", config_.height, "x",
      config_.width, ", ", config_.num_classes, " classes, normalized with mean [",
      absl::StrJoin(config_.normalization.mean, ", "), "] std [",
      absl::StrJoin(config_.normalization.std, ", "), "], ", augment, ", from ", config_.source);
}

}  // namespace pact::datasets
