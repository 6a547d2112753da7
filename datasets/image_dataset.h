// A Dataset over uint8 CHW images held in memory: the common back end of cifar10,
// fashion_mnist and synthetic. Each format's loader only decodes and validates its files.
//
// Get is one pass from uint8 to normalized float (transforms.h) and allocates nothing, so the
// loader's throughput is bounded by memory bandwidth, not by the dataset.
#ifndef PACT_DATASETS_IMAGE_DATASET_H_
#define PACT_DATASETS_IMAGE_DATASET_H_

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "datasets/dataset.h"
#include "datasets/transforms.h"

namespace pact::datasets {

class InMemoryImageDataset final : public Dataset {
 public:
  struct Config {
    std::string name;    // e.g. "cifar10 train", for Describe
    std::string source;  // where the images came from, for Describe
    int64_t channels = 0;
    int64_t height = 0;
    int64_t width = 0;
    int64_t num_classes = 0;
    ChannelNormalization normalization;  // one value per channel
    // Training augmentation: random crop with `pad` pixels of zero padding, plus a horizontal
    // flip with probability 1/2 if `flip`. Off: every example is the plain normalized image.
    bool augment = false;
    int pad = 0;
    bool flip = false;
  };

  // `pixels` holds labels.size() images of channels*height*width bytes, CHW. Loaders validate
  // their input first; a mismatch here is a bug (CHECK).
  InMemoryImageDataset(Config config, std::vector<uint8_t> pixels, std::vector<uint8_t> labels);

  int64_t size() const override { return static_cast<int64_t>(labels_.size()); }
  int64_t num_classes() const override { return config_.num_classes; }
  std::vector<int64_t> image_shape() const override {
    return {config_.channels, config_.height, config_.width};
  }
  int64_t Get(int64_t index, std::mt19937_64& rng, float* image) const override;
  std::string Describe() const override;

  // The stored example, before normalization and augmentation (tests, tools).
  const uint8_t* raw_image(int64_t index) const { return &pixels_[index * image_bytes_]; }
  int64_t label(int64_t index) const { return labels_[index]; }
  const Config& config() const { return config_; }

 private:
  const Config config_;
  const int64_t image_bytes_;
  const std::vector<uint8_t> pixels_;
  const std::vector<uint8_t> labels_;
  const std::vector<float> lut_;  // MakeNormalizationTable(config_.normalization)
};

}  // namespace pact::datasets

#endif  // PACT_DATASETS_IMAGE_DATASET_H_
