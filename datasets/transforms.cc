#include "datasets/transforms.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "glog/logging.h"

namespace pact::datasets {

absl::StatusOr<ChannelNormalization> ResolveNormalization(const DatasetContext& context,
                                                          const ChannelNormalization& defaults,
                                                          int64_t channels) {
  if (context.mean.empty() && context.std.empty()) return defaults;
  const auto check = [channels](absl::string_view field,
                                const std::vector<float>& values) -> absl::Status {
    if (static_cast<int64_t>(values.size()) != channels) {
      return absl::InvalidArgumentError(absl::StrCat(
          "normalize.", field, ": expected ", channels, " value(s), one per image channel, got ",
          values.size(), " [", absl::StrJoin(values, ", "), "]"));
    }
    for (const float v : values) {
      if (!std::isfinite(v) || (field == "std" && !(v > 0))) {
        return absl::InvalidArgumentError(absl::StrCat(
            "normalize.", field, ": values must be finite", field == "std" ? " and > 0" : "",
            ", got [", absl::StrJoin(values, ", "), "]"));
      }
    }
    return absl::OkStatus();
  };
  absl::Status status = check("mean", context.mean);
  if (status.ok()) status = check("std", context.std);
  if (!status.ok()) return status;
  return ChannelNormalization{context.mean, context.std};
}

std::vector<float> MakeNormalizationTable(const ChannelNormalization& normalization) {
  CHECK_EQ(normalization.mean.size(), normalization.std.size());
  std::vector<float> lut(normalization.mean.size() * 256);
  for (size_t c = 0; c < normalization.mean.size(); ++c) {
    for (int v = 0; v < 256; ++v) {
      // Same arithmetic as ToTensor + Normalize: divide by 255 first, in float.
      lut[c * 256 + v] =
          (static_cast<float>(v) / 255.0f - normalization.mean[c]) / normalization.std[c];
    }
  }
  return lut;
}

CropFlip SampleCropFlip(std::mt19937_64& rng, int pad, bool flip) {
  DCHECK_GE(pad, 0);
  // Modulo bias is below 2^-59 for these tiny spans.
  const uint64_t span = 2 * static_cast<uint64_t>(pad) + 1;
  CropFlip result;
  result.dy = static_cast<int>(rng() % span) - pad;
  result.dx = static_cast<int>(rng() % span) - pad;
  result.flip = flip && (rng() >> 63) != 0;
  return result;
}

void CropFlipNormalize(const uint8_t* src, int64_t channels, int64_t height, int64_t width,
                       const CropFlip& crop_flip, const float* lut, float* dst) {
  const int64_t dy = crop_flip.dy;
  const int64_t dx = crop_flip.dx;
  // Output columns [x_begin, x_end) read inside the source row; the rest is padding.
  const int64_t x_begin =
      std::min(width, crop_flip.flip ? std::max<int64_t>(0, dx) : std::max<int64_t>(0, -dx));
  const int64_t x_end =
      std::max(x_begin, crop_flip.flip ? std::min(width, width + dx) : std::min(width, width - dx));
  for (int64_t c = 0; c < channels; ++c) {
    const uint8_t* plane = src + c * height * width;
    const float* table = lut + c * 256;
    const float padding = table[0];
    for (int64_t y = 0; y < height; ++y) {
      float* out = dst + (c * height + y) * width;
      const int64_t sy = y + dy;
      if (sy < 0 || sy >= height) {
        std::fill(out, out + width, padding);
        continue;
      }
      const uint8_t* row = plane + sy * width;
      std::fill(out, out + x_begin, padding);
      if (crop_flip.flip) {
        const int64_t mirror = width - 1 + dx;  // source column of output column 0
        for (int64_t x = x_begin; x < x_end; ++x) out[x] = table[row[mirror - x]];
      } else {
        for (int64_t x = x_begin; x < x_end; ++x) out[x] = table[row[x + dx]];
      }
      std::fill(out + x_end, out + width, padding);
    }
  }
}

}  // namespace pact::datasets
