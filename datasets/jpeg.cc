#include "datasets/jpeg.h"

#include <turbojpeg.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "datasets/image_ops.h"
#include "glog/logging.h"

namespace pact::datasets {
namespace {

// One TurboJPEG handle per thread and kind: handles are not thread-safe, and creating one per
// image would cost an allocation of libjpeg's state each time.
class ThreadHandle {
 public:
  explicit ThreadHandle(bool compress)
      : handle_(compress ? tjInitCompress() : tjInitDecompress()) {}
  ~ThreadHandle() {
    if (handle_ != nullptr) tjDestroy(handle_);
  }
  ThreadHandle(const ThreadHandle&) = delete;
  ThreadHandle& operator=(const ThreadHandle&) = delete;
  tjhandle get() const { return handle_; }

 private:
  tjhandle handle_;
};

tjhandle DecompressHandle() {
  thread_local ThreadHandle handle(/*compress=*/false);
  return handle.get();
}

tjhandle CompressHandle() {
  thread_local ThreadHandle handle(/*compress=*/true);
  return handle.get();
}

std::string ErrorString(tjhandle handle) {
  return handle != nullptr ? tjGetErrorStr2(handle) : "cannot create a TurboJPEG handle";
}

const unsigned char* Bytes(absl::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

}  // namespace

absl::StatusOr<JpegInfo> ReadJpegInfo(absl::string_view jpeg) {
  tjhandle handle = DecompressHandle();
  if (handle == nullptr) return absl::InternalError("tjInitDecompress failed");
  int width = 0, height = 0, subsamp = 0, colorspace = 0;
  if (tjDecompressHeader3(handle, Bytes(jpeg), static_cast<unsigned long>(jpeg.size()), &width,
                          &height, &subsamp, &colorspace) != 0) {
    return absl::DataLossError(
        absl::StrCat("not a readable JPEG (", jpeg.size(), " bytes): ", ErrorString(handle)));
  }
  if (width < 1 || height < 1) {
    return absl::DataLossError(absl::StrCat("JPEG header gives size ", width, "x", height));
  }
  JpegInfo info;
  info.width = width;
  info.height = height;
  switch (colorspace) {
    case TJCS_GRAY:
      info.color = JpegColor::kGray;
      break;
    case TJCS_CMYK:
    case TJCS_YCCK:
      info.color = JpegColor::kCmyk;
      break;
    default:
      info.color = JpegColor::kColor;
  }
  return info;
}

const std::vector<ScalingFactor>& JpegScalingFactors() {
  static const auto* factors = [] {
    auto* result = new std::vector<ScalingFactor>;
    int n = 0;
    const tjscalingfactor* tj = tjGetScalingFactors(&n);
    for (int i = 0; tj != nullptr && i < n; ++i) result->push_back({tj[i].num, tj[i].denom});
    if (result->empty()) result->push_back({1, 1});
    return result;
  }();
  return *factors;
}

absl::Status DecodeJpegRgb(absl::string_view jpeg, const JpegInfo& info, ScalingFactor factor,
                           std::vector<uint8_t>* rgb, std::vector<uint8_t>* scratch) {
  tjhandle handle = DecompressHandle();
  if (handle == nullptr) return absl::InternalError("tjInitDecompress failed");
  const int width = ScaledSize(info.width, factor);
  const int height = ScaledSize(info.height, factor);
  const int64_t pixels = static_cast<int64_t>(width) * height;
  // libjpeg-turbo 2.1 cannot convert CMYK/YCCK to RGB itself (no color management).
  const bool cmyk = info.color == JpegColor::kCmyk;
  std::vector<uint8_t>* out = cmyk ? scratch : rgb;
  out->resize(static_cast<size_t>(pixels) * (cmyk ? 4 : 3));
  const int rc =
      tjDecompress2(handle, Bytes(jpeg), static_cast<unsigned long>(jpeg.size()), out->data(),
                    width, /*pitch=*/0, height, cmyk ? TJPF_CMYK : TJPF_RGB, /*flags=*/0);
  if (rc != 0) {
    if (tjGetErrorCode(handle) != TJERR_WARNING) {
      return absl::DataLossError(absl::StrCat("cannot decode JPEG (", info.width, "x", info.height,
                                              "): ", ErrorString(handle)));
    }
    VLOG(1) << "JPEG decoded with a warning: " << ErrorString(handle);
  }
  if (cmyk) {
    rgb->resize(static_cast<size_t>(pixels) * 3);
    CmykToRgb(scratch->data(), pixels, rgb->data());
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> EncodeJpeg(const uint8_t* pixels, int width, int height,
                                       PixelFormat format, int quality, bool subsample_chroma) {
  tjhandle handle = CompressHandle();
  if (handle == nullptr) return absl::InternalError("tjInitCompress failed");
  int tj_format = TJPF_RGB;
  int subsamp = subsample_chroma ? TJSAMP_420 : TJSAMP_444;
  switch (format) {
    case PixelFormat::kGray:
      tj_format = TJPF_GRAY;
      subsamp = TJSAMP_GRAY;
      break;
    case PixelFormat::kRgb:
      tj_format = TJPF_RGB;
      break;
    case PixelFormat::kCmyk:
      tj_format = TJPF_CMYK;
      break;
  }
  unsigned char* buffer = nullptr;
  unsigned long size = 0;
  if (tjCompress2(handle, pixels, width, /*pitch=*/0, height, tj_format, &buffer, &size, subsamp,
                  quality, TJFLAG_ACCURATEDCT) != 0) {
    if (buffer != nullptr) tjFree(buffer);
    return absl::InternalError(absl::StrCat("tjCompress2: ", ErrorString(handle)));
  }
  std::string jpeg(reinterpret_cast<const char*>(buffer), size);
  tjFree(buffer);
  return jpeg;
}

}  // namespace pact::datasets
