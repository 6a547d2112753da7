// Per-example image transforms shared by the uint8 datasets: normalization through a lookup
// table, and the standard CIFAR training augmentation (zero padding + random crop + horizontal
// flip, He et al. 2016 §4.2) done as one pass from uint8 CHW to normalized float CHW.
//
// Everything here is a pure function of its arguments, so the geometry is testable with
// explicit offsets and a batch is reproducible from (seed, epoch, index) alone.
#ifndef PACT_DATASETS_TRANSFORMS_H_
#define PACT_DATASETS_TRANSFORMS_H_

#include <cstdint>
#include <random>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "datasets/dataset.h"

namespace pact::datasets {

// Per-channel normalization of x/255: (x/255 - mean[c]) / std[c].
struct ChannelNormalization {
  std::vector<float> mean;
  std::vector<float> std;
};

// The normalization a dataset uses: the context's override if it gives one, else `defaults`.
// InvalidArgument when an override's lengths differ from `channels`, when only one of mean/std
// is given, or when a std is not > 0 (or a value is not finite). `dataset` prefixes messages.
absl::StatusOr<ChannelNormalization> ResolveNormalization(const DatasetContext& context,
                                                          const ChannelNormalization& defaults,
                                                          int64_t channels);

// lut[c * 256 + v] = (v / 255 - mean[c]) / std[c]: one load per pixel instead of a divide.
std::vector<float> MakeNormalizationTable(const ChannelNormalization& normalization);

// The geometry of one pad-crop-flip: the output pixel (y, x) reads source pixel
// (y + dy, x + dx), or (y + dy, W - 1 - x + dx) when `flip` (a crop, then a mirror of the crop,
// as torchvision's RandomCrop + RandomHorizontalFlip). Source pixels outside the image are the
// padding, pixel value 0 (black) before normalization. dy = dx = 0 and no flip is the identity;
// with padding p, dy and dx range over [-p, p].
struct CropFlip {
  int dy = 0;
  int dx = 0;
  bool flip = false;
};

// A random CropFlip: dy and dx uniform in [-pad, pad], flip with probability 1/2 if `flip`.
// Uses raw generator output rather than std::uniform_int_distribution (whose algorithm is up to
// the standard library), so results are the same on every platform.
CropFlip SampleCropFlip(std::mt19937_64& rng, int pad, bool flip);

// Writes the normalized float CHW image `dst` of `src` (uint8 CHW, `channels` x `height` x
// `width`) transformed by `crop_flip`, through `lut` (MakeNormalizationTable). No allocation.
void CropFlipNormalize(const uint8_t* src, int64_t channels, int64_t height, int64_t width,
                       const CropFlip& crop_flip, const float* lut, float* dst);

}  // namespace pact::datasets

#endif  // PACT_DATASETS_TRANSFORMS_H_
