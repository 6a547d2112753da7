// JPEG decoding (and encoding, for fixtures and benchmarks) with TurboJPEG (libjpeg-turbo
// 2.1's tj* API; Debian bookworm has no tj3*).
//
// Decoding uses libjpeg's DCT-domain scaling: an image decoded at 1/2 costs about a quarter of
// a full decode, which matters for ImageNet's large photos. Every function is thread-safe;
// TurboJPEG handles are per thread (thread_local), created on first use and destroyed when the
// thread exits.
#ifndef PACT_DATASETS_JPEG_H_
#define PACT_DATASETS_JPEG_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "datasets/image_ops.h"

namespace pact::datasets {

enum class JpegColor {
  kGray,
  kColor,  // YCbCr or RGB
  kCmyk,   // CMYK or YCCK (Adobe)
};

struct JpegInfo {
  int width = 0;
  int height = 0;
  JpegColor color = JpegColor::kColor;
};

// Parses the header. DataLoss ("not a JPEG ...: <TurboJPEG's reason>") when it cannot.
absl::StatusOr<JpegInfo> ReadJpegInfo(absl::string_view jpeg);

// The scaling factors TurboJPEG can decode at (1/8 .. 2/1).
const std::vector<ScalingFactor>& JpegScalingFactors();

// Decodes `jpeg` (whose header is `info`) at `factor` into interleaved RGB, resizing `rgb` to
// ScaledSize(height) x ScaledSize(width) x 3. Grayscale is replicated into R, G and B; CMYK is
// converted with CmykToRgb. Libjpeg warnings (e.g. a truncated scan, where the rest of the
// image is gray) are not errors: the image is usable, as PIL with LOAD_TRUNCATED_IMAGES.
// DataLoss on a fatal decoding error. `scratch` holds CMYK pixels between calls.
absl::Status DecodeJpegRgb(absl::string_view jpeg, const JpegInfo& info, ScalingFactor factor,
                           std::vector<uint8_t>* rgb, std::vector<uint8_t>* scratch);

enum class PixelFormat { kGray, kRgb, kCmyk };

// Encodes `pixels` (height x width, 1, 3 or 4 bytes per pixel for kGray, kRgb, kCmyk) as a
// baseline JPEG of `quality` (1..100), chroma 4:4:4 or 4:2:0 for color. CMYK is written as
// YCCK with an Adobe marker, the form Photoshop writes. Internal error if TurboJPEG fails.
absl::StatusOr<std::string> EncodeJpeg(const uint8_t* pixels, int width, int height,
                                       PixelFormat format, int quality, bool subsample_chroma);

}  // namespace pact::datasets

#endif  // PACT_DATASETS_JPEG_H_
