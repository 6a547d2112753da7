#include "datasets/svhn.h"

#include <matio.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "datasets/dataset.h"
#include "datasets/http_download.h"
#include "datasets/image_ops.h"
#include "datasets/svhn_options.pb.h"
#include "datasets/transforms.h"
#include "glog/logging.h"
#include "pact/core/file.h"
#include "pact/core/status_macros.h"

namespace pact::datasets {
namespace {

constexpr int64_t kImageBytes = 3 * kSvhnSide * kSvhnSide;
constexpr int kMaxResize = 1024;
// tensorpack's Brightness(30) and Contrast((0.5, 1.5)).
constexpr float kBrightnessDelta = 30.0f;
constexpr float kContrastMin = 0.5f;
constexpr float kContrastMax = 1.5f;

// matio reports problems through a global log function; the default one abort()s on
// LOG_LEVEL_ERROR. Ours never aborts and keeps the thread's last message for our Status.
std::string& MatioLastMessage() {
  thread_local std::string message;
  return message;
}

void MatioLog(int level, char* message) {
  MatioLastMessage() = message != nullptr ? message : "";
  VLOG(1) << "matio (level " << level << "): " << MatioLastMessage();
}

void InitMatioOnce() {
  static std::once_flag once;
  std::call_once(once, [] { Mat_LogInitFunc("pact", &MatioLog); });
}

std::string MatioReason() {
  const std::string& message = MatioLastMessage();
  return message.empty() ? "" : absl::StrCat(" (matio: ", message, ")");
}

struct MatCloser {
  void operator()(mat_t* mat) const { Mat_Close(mat); }
};
struct VarFreer {
  void operator()(matvar_t* var) const { Mat_VarFree(var); }
};
using VarPtr = std::unique_ptr<matvar_t, VarFreer>;

const char* ClassName(matio_classes c) {
  switch (c) {
    case MAT_C_DOUBLE:
      return "double";
    case MAT_C_SINGLE:
      return "single";
    case MAT_C_INT8:
      return "int8";
    case MAT_C_UINT8:
      return "uint8";
    case MAT_C_INT16:
      return "int16";
    case MAT_C_UINT16:
      return "uint16";
    case MAT_C_INT32:
      return "int32";
    case MAT_C_UINT32:
      return "uint32";
    case MAT_C_INT64:
      return "int64";
    case MAT_C_UINT64:
      return "uint64";
    case MAT_C_CHAR:
      return "char";
    case MAT_C_CELL:
      return "cell";
    case MAT_C_STRUCT:
      return "struct";
    case MAT_C_SPARSE:
      return "sparse";
    default:
      return "other";
  }
}

// "uint8 32x32x3x7", how MATLAB's whos would describe it.
std::string DescribeVar(const matvar_t& var) {
  std::vector<size_t> dims(var.dims, var.dims + var.rank);
  return absl::StrCat(var.isComplex ? "complex " : "", ClassName(var.class_type), " ",
                      absl::StrJoin(dims, "x"));
}

std::string VariableNames(mat_t* mat) {
  Mat_Rewind(mat);
  std::vector<std::string> names;
  while (matvar_t* var = Mat_VarReadNextInfo(mat)) {
    names.push_back(var->name != nullptr ? var->name : "?");
    Mat_VarFree(var);
  }
  return names.empty() ? "none" : absl::StrJoin(names, ", ");
}

template <typename T>
absl::Status ConvertLabels(const void* data, int64_t count, const std::string& path,
                           std::vector<uint8_t>* labels) {
  const T* values = static_cast<const T*>(data);
  labels->resize(count);
  for (int64_t i = 0; i < count; ++i) {
    const double v = static_cast<double>(values[i]);
    if (!(v >= 1 && v <= 10 && v == std::floor(v))) {
      return absl::DataLossError(
          absl::StrCat(path, ": variable 'y': label ", i, " (y(", i + 1, ") in MATLAB) is ", v,
                       ", expected an integer in 1..10 (10 is the digit 0)"));
    }
    (*labels)[i] = static_cast<uint8_t>(static_cast<int>(v) % 10);
  }
  return absl::OkStatus();
}

absl::Status ReadLabels(const matvar_t& y, int64_t count, const std::string& path,
                        std::vector<uint8_t>* labels) {
  switch (y.class_type) {
    case MAT_C_DOUBLE:
      return ConvertLabels<double>(y.data, count, path, labels);
    case MAT_C_SINGLE:
      return ConvertLabels<float>(y.data, count, path, labels);
    case MAT_C_INT8:
      return ConvertLabels<int8_t>(y.data, count, path, labels);
    case MAT_C_UINT8:
      return ConvertLabels<uint8_t>(y.data, count, path, labels);
    case MAT_C_INT16:
      return ConvertLabels<int16_t>(y.data, count, path, labels);
    case MAT_C_UINT16:
      return ConvertLabels<uint16_t>(y.data, count, path, labels);
    case MAT_C_INT32:
      return ConvertLabels<int32_t>(y.data, count, path, labels);
    case MAT_C_UINT32:
      return ConvertLabels<uint32_t>(y.data, count, path, labels);
    case MAT_C_INT64:
      return ConvertLabels<int64_t>(y.data, count, path, labels);
    case MAT_C_UINT64:
      return ConvertLabels<uint64_t>(y.data, count, path, labels);
    default:
      return absl::DataLossError(absl::StrCat(path, ": variable 'y' is ", DescribeVar(y),
                                              ", expected a numeric ", count, "x1 array"));
  }
}

bool IsNumeric(matio_classes c) {
  return c == MAT_C_DOUBLE || c == MAT_C_SINGLE || (c >= MAT_C_INT8 && c <= MAT_C_UINT64);
}

absl::Status CheckSplit(Split split) {
  if (split == SPLIT_TRAIN || split == SPLIT_TEST) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("split: must be SPLIT_TRAIN or SPLIT_TEST, got ", Split_Name(split)));
}

void ValidateSvhn(const SvhnOptions& options, Violations& v) {
  v.Check(options.resize() >= 0 && options.resize() <= kMaxResize, "resize",
          absl::StrCat("must be 0 (keep 32x32) or in 1..", kMaxResize), options.resize());
}

// Also guards LoadSvhn, which is callable without the registry (and its validator).
absl::StatusOr<int> OutputSize(const SvhnOptions& options) {
  if (options.resize() == 0) return kSvhnSide;
  if (options.resize() < 1 || options.resize() > kMaxResize) {
    return absl::InvalidArgumentError(absl::StrCat("svhn.resize: must be 0 (keep 32x32) or in 1..",
                                                   kMaxResize, ", got ", options.resize()));
  }
  return options.resize();
}

std::string BaseUrl(const SvhnOptions& options) {
  std::string base = options.has_download_url() ? options.download_url() : GetEnv("PACT_SVHN_URL");
  if (base.empty()) base = kSvhnBaseUrl;
  while (!base.empty() && base.back() == '/') base.pop_back();
  return base;
}

// tensorpack: img.astype(float32) + v, clipped to [0, 255], then astype(uint8) (truncation).
inline uint8_t ClipTruncate(float v) {
  return static_cast<uint8_t>(std::min(255.0f, std::max(0.0f, v)));
}

void Brightness(float delta, uint8_t* pixels, int64_t n) {
  for (int64_t i = 0; i < n; ++i) pixels[i] = ClipTruncate(pixels[i] + delta);
}

void Contrast(float factor, uint8_t* planes, int channels, int64_t plane_size) {
  for (int c = 0; c < channels; ++c) {
    uint8_t* p = planes + c * plane_size;
    int64_t sum = 0;
    for (int64_t i = 0; i < plane_size; ++i) sum += p[i];
    const float mean = static_cast<float>(static_cast<double>(sum) / plane_size);
    for (int64_t i = 0; i < plane_size; ++i) p[i] = ClipTruncate((p[i] - mean) * factor + mean);
  }
}

absl::StatusOr<std::shared_ptr<const Dataset>> BuildSvhn(const SvhnOptions& options,
                                                         const DatasetContext& context) {
  PACT_RETURN_IF_ERROR(CheckSplit(context.split));
  if (options.download()) {
    const std::string root = context.data_root.empty() ? kSvhnDefaultRoot : context.data_root;
    PACT_RETURN_IF_ERROR(
        DownloadMissingSvhnFiles(root, SvhnFileNames(context.split, options.use_extra()), options));
  }
  PACT_ASSIGN_OR_RETURN(std::shared_ptr<const SvhnDataset> dataset, LoadSvhn(context, options));
  LOG(INFO) << dataset->Describe();
  return std::shared_ptr<const Dataset>(std::move(dataset));
}

}  // namespace

ChannelNormalization SvhnNormalization() {
  const float std = 256.0f / 255.0f;
  return {{0.0f, 0.0f, 0.0f}, {std, std, std}};
}

std::vector<std::string> SvhnFileNames(Split split, bool use_extra) {
  if (split == SPLIT_TEST) return {"test_32x32.mat"};
  if (split != SPLIT_TRAIN) return {};
  if (use_extra) return {"train_32x32.mat", "extra_32x32.mat"};
  return {"train_32x32.mat"};
}

std::string SvhnMd5(absl::string_view file_name) {
  if (file_name == "train_32x32.mat") return "e26dedcc434d2e4c54c9b2d4a06d8373";
  if (file_name == "test_32x32.mat") return "eb5a983be6a315427106f1b5f4e8ab2a";
  if (file_name == "extra_32x32.mat") return "a93ce644f1a588dc4d68dda5feec44a7";
  return "";
}

absl::StatusOr<SvhnImages> ReadSvhnMat(const std::string& path) {
  InitMatioOnce();
  MatioLastMessage().clear();
  std::unique_ptr<mat_t, MatCloser> mat(Mat_Open(path.c_str(), MAT_ACC_RDONLY));
  if (mat == nullptr) {
    return absl::DataLossError(
        absl::StrCat(path, ": not a MATLAB .mat file that libmatio can read", MatioReason(),
                     "; the file is corrupt or truncated: delete it and download it again"));
  }
  // Shapes and types first (cheap), so a wrong file fails before reading 1.6 GB.
  VarPtr x_info(Mat_VarReadInfo(mat.get(), "X"));
  if (x_info == nullptr) {
    return absl::DataLossError(
        absl::StrCat(path, ": no variable 'X' (expected X: uint8 32x32x3xN images); the file has: ",
                     VariableNames(mat.get())));
  }
  const matvar_t& x = *x_info;
  if (x.class_type != MAT_C_UINT8 || x.isComplex || x.rank != 4 || x.dims[0] != kSvhnSide ||
      x.dims[1] != kSvhnSide || x.dims[2] != 3) {
    return absl::DataLossError(absl::StrCat(path, ": variable 'X' is ", DescribeVar(x),
                                            ", expected uint8 32x32x3xN (cropped digits, "
                                            "format 2)"));
  }
  const int64_t count = static_cast<int64_t>(x.dims[3]);
  VarPtr y_info(Mat_VarReadInfo(mat.get(), "y"));
  if (y_info == nullptr) {
    return absl::DataLossError(
        absl::StrCat(path, ": no variable 'y' (expected y: ", count,
                     "x1 labels in 1..10); the file has: ", VariableNames(mat.get())));
  }
  const matvar_t& y = *y_info;
  const int64_t y_count = y.rank == 2 && (y.dims[0] == 1 || y.dims[1] == 1)
                              ? static_cast<int64_t>(y.dims[0] * y.dims[1])
                              : -1;
  if (!IsNumeric(y.class_type) || y.isComplex || y_count != count) {
    return absl::DataLossError(absl::StrCat(path, ": variable 'y' is ", DescribeVar(y),
                                            ", expected a numeric ", count,
                                            "x1 array (one label per image of X)"));
  }
  if (count == 0) return absl::DataLossError(absl::StrCat(path, ": variable 'X' holds no images"));
  x_info.reset();
  y_info.reset();

  VarPtr y_var(Mat_VarRead(mat.get(), "y"));
  if (y_var == nullptr || y_var->data == nullptr) {
    return absl::DataLossError(absl::StrCat(path, ": cannot read variable 'y'", MatioReason()));
  }
  SvhnImages images;
  images.count = count;
  PACT_RETURN_IF_ERROR(ReadLabels(*y_var, count, path, &images.labels));
  y_var.reset();

  std::shared_ptr<matvar_t> x_var(Mat_VarRead(mat.get(), "X"), VarFreer());
  if (x_var == nullptr || x_var->data == nullptr ||
      x_var->nbytes < static_cast<size_t>(count * kImageBytes)) {
    return absl::DataLossError(absl::StrCat(path, ": cannot read variable 'X' (",
                                            count * kImageBytes, " bytes)", MatioReason(),
                                            "; the file is truncated or corrupt"));
  }
  // X(r, c, ch, n) is at r + 32 c + 1024 ch + 3072 n: each image is contiguous with column-major
  // planes, so transposing each 32x32 plane in place gives CHW.
  auto* data = static_cast<uint8_t*>(x_var->data);
  for (int64_t plane = 0; plane < count * 3; ++plane) {
    uint8_t* p = data + plane * kSvhnSide * kSvhnSide;
    for (int r = 0; r < kSvhnSide; ++r) {
      for (int c = r + 1; c < kSvhnSide; ++c) std::swap(p[r * kSvhnSide + c], p[c * kSvhnSide + r]);
    }
  }
  images.pixels = std::shared_ptr<const uint8_t>(x_var, data);
  return images;
}

SvhnDataset::SvhnDataset(Config config, std::vector<SvhnImages> parts)
    : config_(std::move(config)),
      parts_(std::move(parts)),
      lut_(MakeNormalizationTable(config_.normalization)),
      axis_(ComputeResizeAxis(kSvhnSide, 0.0, kSvhnSide, config_.size)) {
  CHECK(!parts_.empty());
  CHECK_EQ(config_.normalization.mean.size(), 3u);
  for (const SvhnImages& part : parts_) {
    CHECK_EQ(static_cast<int64_t>(part.labels.size()), part.count);
    part_begin_.push_back(static_cast<int64_t>(labels_.size()));
    labels_.insert(labels_.end(), part.labels.begin(), part.labels.end());
  }
}

const uint8_t* SvhnDataset::raw_image(int64_t index) const {
  const size_t p =
      std::upper_bound(part_begin_.begin(), part_begin_.end(), index) - part_begin_.begin() - 1;
  return parts_[p].pixels.get() + (index - part_begin_[p]) * kImageBytes;
}

int64_t SvhnDataset::Get(int64_t index, std::mt19937_64& rng, float* image) const {
  CHECK(index >= 0 && index < size()) << config_.name << ": index " << index << " of " << size();
  const int side = config_.size;
  const int64_t plane = static_cast<int64_t>(side) * side;
  thread_local std::vector<uint8_t> buffer;
  thread_local std::vector<float> scratch;
  const uint8_t* pixels = raw_image(index);
  if (side != kSvhnSide || config_.augment) {
    buffer.resize(3 * plane);
    for (int c = 0; c < 3; ++c) {
      const uint8_t* src = pixels + c * kSvhnSide * kSvhnSide;
      if (side == kSvhnSide) {
        std::memcpy(buffer.data() + c * plane, src, plane);
      } else {
        ResizeInterleaved(src, kSvhnSide, kSvhnSide, /*channels=*/1, kSvhnSide, axis_, axis_,
                          buffer.data() + c * plane, &scratch);
      }
    }
    if (config_.augment) {
      // Parameters in tensorpack's order: brightness, then contrast.
      const float delta =
          static_cast<float>(-kBrightnessDelta + 2 * kBrightnessDelta * UniformUnit(rng));
      const float factor =
          static_cast<float>(kContrastMin + (kContrastMax - kContrastMin) * UniformUnit(rng));
      Brightness(delta, buffer.data(), 3 * plane);
      Contrast(factor, buffer.data(), 3, plane);
    }
    pixels = buffer.data();
  }
  for (int c = 0; c < 3; ++c) {
    const float* table = lut_.data() + c * 256;
    const uint8_t* src = pixels + c * plane;
    float* dst = image + c * plane;
    for (int64_t i = 0; i < plane; ++i) dst[i] = table[src[i]];
  }
  return labels_[index];
}

std::string SvhnDataset::Describe() const {
  return absl::StrCat(
      config_.name, ": ", size(), " images 3x", config_.size, "x", config_.size,
      config_.size != kSvhnSide ? " (32x32 resized, bilinear)" : "",
      ", 10 classes, normalized "
      "with mean [",
      absl::StrJoin(config_.normalization.mean, ", "), "] std [",
      absl::StrJoin(config_.normalization.std, ", "), "], ",
      config_.augment ? "augment: brightness +-30, contrast x0.5..1.5" : "no augmentation",
      ", from ", config_.source);
}

absl::StatusOr<std::shared_ptr<const SvhnDataset>> LoadSvhn(const DatasetContext& context,
                                                            const SvhnOptions& options) {
  PACT_RETURN_IF_ERROR(CheckSplit(context.split));
  PACT_ASSIGN_OR_RETURN(const int size, OutputSize(options));
  const std::string root = context.data_root.empty() ? kSvhnDefaultRoot : context.data_root;
  const std::vector<std::string> names = SvhnFileNames(context.split, options.use_extra());
  SvhnDataset::Config config;
  config.name = absl::StrCat("svhn ", context.split == SPLIT_TEST ? "test" : "train");
  config.size = size;
  config.augment = context.augment;
  PACT_ASSIGN_OR_RETURN(config.normalization,
                        ResolveNormalization(context, SvhnNormalization(), 3));
  std::vector<SvhnImages> parts;
  for (const std::string& name : names) {
    const std::string path = JoinPath(root, name);
    if (!PathExists(path)) {
      return absl::NotFoundError(
          absl::StrCat(path, " is missing (the ", context.split == SPLIT_TEST ? "test" : "train",
                       " split needs ", absl::StrJoin(names, " + "), "); download ",
                       BaseUrl(options), "/", name, " into ", root,
                       " (svhn.download does it), or set data_root to the folder "
                       "holding the .mat files",
                       name == "extra_32x32.mat" ? ", or set svhn.use_extra: false to train on "
                                                   "train_32x32.mat alone"
                                                 : ""));
    }
    PACT_ASSIGN_OR_RETURN(SvhnImages images, ReadSvhnMat(path));
    parts.push_back(std::move(images));
  }
  config.source = absl::StrCat(root, " (", absl::StrJoin(names, " + "), ")");
  if (context.augment && context.split == SPLIT_TEST) {
    LOG(WARNING) << "svhn: augmentation is on for the test split";
  }
  return std::make_shared<const SvhnDataset>(std::move(config), std::move(parts));
}

absl::Status DownloadMissingSvhnFiles(const std::string& root,
                                      const std::vector<std::string>& names,
                                      const SvhnOptions& options,
                                      const std::map<std::string, std::string>& md5s) {
  const std::string base = BaseUrl(options);
  for (const std::string& name : names) {
    const std::string path = JoinPath(root, name);
    if (PathExists(path)) continue;
    DownloadRequest request;
    request.url = absl::StrCat(base, "/", name);
    request.destination = path;
    auto it = md5s.find(name);
    request.expected_md5 = it != md5s.end() ? it->second : SvhnMd5(name);
    request.manual_hint =
        absl::StrCat("to do it by hand, download ", request.url, " and put ", name, " into ", root,
                     " (or set svhn.download: false and data_root to a folder holding ",
                     absl::StrJoin(names, ", "), ")");
    PACT_RETURN_IF_ERROR(DownloadFile(request));
  }
  return absl::OkStatus();
}

PACT_REGISTER_DATASET(svhn, SvhnOptions, BuildSvhn, ValidateSvhn);

}  // namespace pact::datasets
