#include "datasets/imagenet.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "datasets/archive.h"
#include "datasets/dataset.h"
#include "datasets/hf_hub.h"
#include "datasets/http_download.h"
#include "datasets/image_ops.h"
#include "datasets/imagenet_options.pb.h"
#include "datasets/jpeg.h"
#include "datasets/transforms.h"
#include "glog/logging.h"
#include "pact/core/file.h"
#include "pact/core/status_macros.h"

namespace pact::datasets {
namespace {

constexpr int kMaxImageSize = 4096;
constexpr int kLoggedUnusable = 10;  // then only at powers of two

absl::string_view SplitFolder(Split split) { return split == SPLIT_TEST ? "val" : "train"; }

bool IsJpegName(absl::string_view name) {
  return absl::EndsWithIgnoreCase(name, ".jpeg") || absl::EndsWithIgnoreCase(name, ".jpg");
}

// "n" + 8 digits, as every ILSVRC synset id.
bool IsWnid(absl::string_view s) {
  if (s.size() != 9 || s[0] != 'n') return false;
  return std::all_of(s.begin() + 1, s.end(), [](char c) { return absl::ascii_isdigit(c); });
}

// Sorted names of the sub-folders (or, with `files`, of the regular files) of `dir`;
// symlinks are followed, as datasets are often linked in.
absl::StatusOr<std::vector<std::string>> ListDir(const std::string& dir, bool files) {
  std::vector<std::string> names;
  std::error_code error;
  std::filesystem::directory_iterator it(dir, error);
  for (; !error && it != std::filesystem::directory_iterator(); it.increment(error)) {
    std::error_code type_error;
    const bool match = files ? it->is_regular_file(type_error) : it->is_directory(type_error);
    if (match) names.push_back(it->path().filename().string());
  }
  if (error) return absl::ErrnoToStatus(error.value(), absl::StrCat("cannot list ", dir));
  std::sort(names.begin(), names.end());  // byte order, as Python's sorted()
  return names;
}

std::string ManualLayout(const std::string& root) {
  return absl::StrCat("put the images in ", root, "/train/<wnid>/*.JPEG and ", root,
                      "/val/<wnid>/*.JPEG (e.g. from ILSVRC2012_img_train.tar and "
                      "ILSVRC2012_img_val.tar of image-net.org, val sorted into class folders), "
                      "or set data_root to such a folder");
}

// The registered validator; LoadImagenet, callable without the registry, runs it too.
void ValidateImagenet(const ImagenetOptions& options, Violations& v) {
  v.Check(options.image_size() >= 1 && options.image_size() <= kMaxImageSize, "image_size",
          absl::StrCat("must be in 1..", kMaxImageSize), options.image_size());
  v.Check(options.resize_size() >= options.image_size() && options.resize_size() <= kMaxImageSize,
          "resize_size",
          absl::StrCat("must be in image_size (", options.image_size(), ")..", kMaxImageSize),
          options.resize_size());
  v.Check(options.min_crop_scale() > 0 && options.min_crop_scale() <= options.max_crop_scale() &&
              options.max_crop_scale() <= 1,
          "min_crop_scale", "need 0 < min_crop_scale <= max_crop_scale <= 1",
          absl::StrCat(options.min_crop_scale(), ", ", options.max_crop_scale()));
}

absl::Status ValidateOptions(const ImagenetOptions& options) {
  Violations v("imagenet");
  ValidateImagenet(options, v);
  if (v.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrJoin(v.list(), "; "));
}

// Hub archive entry -> "<split>/<wnid>/<original name>", or "" to skip it.
absl::StatusOr<std::string> HubEntryPath(absl::string_view split, absl::string_view archive,
                                         absl::string_view entry) {
  const absl::string_view base = entry.substr(entry.rfind('/') + 1);
  if (!IsJpegName(base)) return std::string();
  const size_t dot = base.rfind('.');
  const absl::string_view stem = base.substr(0, dot);
  const size_t underscore = stem.rfind('_');
  const absl::string_view wnid =
      underscore == absl::string_view::npos ? absl::string_view() : stem.substr(underscore + 1);
  if (!IsWnid(wnid)) {
    return absl::DataLossError(
        absl::StrCat(archive, ": entry '", entry,
                     "' does not end in _<wnid> (expected names like "
                     "n01440764_10026_n01440764.JPEG or ILSVRC2012_val_00000001_n01751748.JPEG)"));
  }
  return absl::StrCat(split, "/", wnid, "/", stem.substr(0, underscore), base.substr(dot));
}

absl::Status TouchFile(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "w");
  if (f == nullptr) return absl::ErrnoToStatus(errno, absl::StrCat("cannot create ", path));
  std::fclose(f);
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<const Dataset>> BuildImagenet(const ImagenetOptions& options,
                                                             const DatasetContext& context) {
  if (context.split != SPLIT_TRAIN && context.split != SPLIT_TEST) {
    return absl::InvalidArgumentError(absl::StrCat(
        "split: must be SPLIT_TRAIN or SPLIT_TEST (val), got ", Split_Name(context.split)));
  }
  if (options.download()) {
    const std::string root = context.data_root.empty() ? kImagenetDefaultRoot : context.data_root;
    PACT_RETURN_IF_ERROR(DownloadImagenetFromHub(root, context.split, options));
  }
  PACT_ASSIGN_OR_RETURN(std::shared_ptr<const ImagenetDataset> dataset,
                        LoadImagenet(context, options));
  LOG(INFO) << dataset->Describe();
  return std::shared_ptr<const Dataset>(std::move(dataset));
}

}  // namespace

ChannelNormalization ImagenetNormalization() {
  return {{0.485f, 0.456f, 0.406f}, {0.229f, 0.224f, 0.225f}};
}

absl::Status TransformJpeg(absl::string_view jpeg, const ImagenetTransform& transform,
                           std::mt19937_64& rng, ImageBuffers* buffers, bool* flip) {
  PACT_ASSIGN_OR_RETURN(const JpegInfo info, ReadJpegInfo(jpeg));
  const int size = transform.image_size;
  // The source box, in pixels of the full-size image.
  SourceBox box;
  *flip = false;
  if (transform.train) {
    const CropBox crop =
        SampleRandomResizedCrop(info.height, info.width, transform.min_scale, transform.max_scale,
                                transform.min_ratio, transform.max_ratio, rng);
    box = SourceBox{static_cast<double>(crop.top), static_cast<double>(crop.left),
                    static_cast<double>(crop.height), static_cast<double>(crop.width)};
    *flip = (rng() >> 63) != 0;  // after the crop, as RandomHorizontalFlip follows it
  } else {
    box = ResizeCenterCropBox(info.height, info.width, transform.resize_size, size);
  }
  const ScalingFactor factor =
      ChooseScalingFactor(JpegScalingFactors(), box.height, box.width, size, size);
  PACT_RETURN_IF_ERROR(DecodeJpegRgb(jpeg, info, factor, &buffers->decoded, &buffers->cmyk));
  const int width = ScaledSize(info.width, factor);
  const int height = ScaledSize(info.height, factor);
  const double sy = static_cast<double>(height) / info.height;
  const double sx = static_cast<double>(width) / info.width;
  const ResizeAxis y = ComputeResizeAxis(height, box.top * sy, box.height * sy, size);
  const ResizeAxis x = ComputeResizeAxis(width, box.left * sx, box.width * sx, size);
  buffers->output.resize(static_cast<size_t>(size) * size * 3);
  ResizeInterleaved(buffers->decoded.data(), height, width, 3, static_cast<int64_t>(width) * 3, y,
                    x, buffers->output.data(), &buffers->scratch);
  return absl::OkStatus();
}

ImagenetDataset::ImagenetDataset(Config config, std::vector<std::string> classes,
                                 std::vector<std::string> paths, std::vector<uint16_t> labels)
    : config_(std::move(config)),
      classes_(std::move(classes)),
      labels_(std::move(labels)),
      lut_(MakeNormalizationTable(config_.normalization)) {
  CHECK_EQ(paths.size(), labels_.size());
  CHECK_EQ(config_.normalization.mean.size(), 3u);
  size_t total = 0;
  for (const std::string& p : paths) total += p.size();
  names_.reserve(total);
  offsets_.reserve(paths.size() + 1);
  for (const std::string& p : paths) {
    offsets_.push_back(names_.size());
    names_ += p;
  }
  offsets_.push_back(names_.size());
}

std::string ImagenetDataset::path(int64_t index) const {
  return JoinPath(config_.folder, absl::string_view(names_).substr(
                                      offsets_[index], offsets_[index + 1] - offsets_[index]));
}

void ImagenetDataset::ReportUnusable(int64_t index, const absl::Status& status) const {
  const int64_t n = unusable_.fetch_add(1, std::memory_order_relaxed) + 1;
  if (n > kLoggedUnusable && (n & (n - 1)) != 0) return;
  LOG(WARNING) << config_.name << ": cannot use " << path(index) << ": " << status.message()
               << "; substituted a zero image with its label (" << n << " unusable image(s) so far"
               << (n == kLoggedUnusable ? "; from now on logged at every power of two" : "") << ")";
}

int64_t ImagenetDataset::Get(int64_t index, std::mt19937_64& rng, float* image) const {
  CHECK(index >= 0 && index < size()) << config_.name << ": index " << index << " of " << size();
  const int size = config_.transform.image_size;
  const int64_t plane = static_cast<int64_t>(size) * size;
  thread_local ImageBuffers buffers;
  bool flip = false;
  absl::Status status;
  {
    absl::StatusOr<std::string> jpeg = ReadFile(path(index));
    status =
        jpeg.ok() ? TransformJpeg(*jpeg, config_.transform, rng, &buffers, &flip) : jpeg.status();
  }
  if (!status.ok()) {
    ReportUnusable(index, status);
    std::fill(image, image + 3 * plane, 0.0f);
    return labels_[index];
  }
  // HWC uint8 -> normalized CHW float, mirroring columns when flipped.
  const uint8_t* hwc = buffers.output.data();
  for (int c = 0; c < 3; ++c) {
    const float* table = lut_.data() + c * 256;
    float* out = image + c * plane;
    for (int yy = 0; yy < size; ++yy) {
      const uint8_t* row = hwc + static_cast<int64_t>(yy) * size * 3 + c;
      float* out_row = out + static_cast<int64_t>(yy) * size;
      if (flip) {
        for (int xx = 0; xx < size; ++xx) out_row[xx] = table[row[(size - 1 - xx) * 3]];
      } else {
        for (int xx = 0; xx < size; ++xx) out_row[xx] = table[row[xx * 3]];
      }
    }
  }
  return labels_[index];
}

std::string ImagenetDataset::Describe() const {
  const ImagenetTransform& t = config_.transform;
  const std::string augment =
      t.train ? absl::StrCat("random-resized-crop ", t.image_size, " (scale ", t.min_scale, "-",
                             t.max_scale, ", ratio 3/4-4/3) + horizontal flip")
              : absl::StrCat("resize ", t.resize_size, " + center crop ", t.image_size);
  return absl::StrCat(config_.name, ": ", size(), " images of ", num_classes(), " classes, 3x",
                      t.image_size, "x", t.image_size, ", ", augment, ", normalized with mean [",
                      absl::StrJoin(config_.normalization.mean, ", "), "] std [",
                      absl::StrJoin(config_.normalization.std, ", "), "], from ", config_.folder);
}

absl::StatusOr<std::shared_ptr<const ImagenetDataset>> LoadImagenet(
    const DatasetContext& context, const ImagenetOptions& options) {
  if (context.split != SPLIT_TRAIN && context.split != SPLIT_TEST) {
    return absl::InvalidArgumentError(absl::StrCat(
        "split: must be SPLIT_TRAIN or SPLIT_TEST (val), got ", Split_Name(context.split)));
  }
  PACT_RETURN_IF_ERROR(ValidateOptions(options));
  const absl::Time start = absl::Now();
  const std::string root = context.data_root.empty() ? kImagenetDefaultRoot : context.data_root;
  const std::string folder = JoinPath(root, SplitFolder(context.split));
  const std::string train_folder = JoinPath(root, "train");
  std::error_code error;
  if (!std::filesystem::is_directory(folder, error)) {
    return absl::NotFoundError(absl::StrCat(folder, " does not exist; ", ManualLayout(root),
                                            " (imagenet.download fetches it from the Hugging "
                                            "Face Hub)"));
  }
  // The class index: the sorted folder names of train/ (ImageFolder's rule).
  std::string index_folder = train_folder;
  if (!std::filesystem::is_directory(train_folder, error)) {
    CHECK_EQ(context.split, SPLIT_TEST);  // else `folder` is train_folder and exists
    LOG(WARNING) << "imagenet: " << train_folder << " does not exist; taking the class index "
                 << "from the class folders of " << folder
                 << " (right only if val has every class)";
    index_folder = folder;
  }
  PACT_ASSIGN_OR_RETURN(const std::vector<std::string> classes,
                        ListDir(index_folder, /*files=*/false));
  if (classes.empty()) {
    return absl::NotFoundError(
        absl::StrCat("no class folders in ", index_folder, "; ", ManualLayout(root)));
  }
  if (classes.size() > 65535) {
    return absl::InvalidArgumentError(absl::StrCat(index_folder, " has ", classes.size(),
                                                   " class folders; at most 65535 supported"));
  }
  std::map<std::string, int> class_index;
  for (size_t i = 0; i < classes.size(); ++i) class_index[classes[i]] = static_cast<int>(i);
  PACT_ASSIGN_OR_RETURN(const std::vector<std::string> split_classes,
                        ListDir(folder, /*files=*/false));
  for (const std::string& wnid : split_classes) {
    if (class_index.count(wnid) == 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          JoinPath(folder, wnid), ": class folder '", wnid, "' is not in ", train_folder,
          " (the class index is the sorted class folders of train/); remove it, or add ",
          JoinPath(train_folder, wnid)));
    }
  }

  std::vector<std::string> paths;
  std::vector<uint16_t> labels;
  std::vector<std::string> missing, empty;
  int64_t ignored = 0;
  for (size_t label = 0; label < classes.size(); ++label) {
    const std::string& wnid = classes[label];
    const std::string class_folder = JoinPath(folder, wnid);
    if (!std::filesystem::is_directory(class_folder, error)) {
      missing.push_back(wnid);  // only possible for val
      continue;
    }
    PACT_ASSIGN_OR_RETURN(const std::vector<std::string> files,
                          ListDir(class_folder, /*files=*/true));
    int64_t images = 0;
    for (const std::string& file : files) {
      if (!IsJpegName(file)) {
        ++ignored;
        continue;
      }
      paths.push_back(absl::StrCat(wnid, "/", file));
      labels.push_back(static_cast<uint16_t>(label));
      ++images;
    }
    if (images == 0) {
      if (context.split == SPLIT_TRAIN) {
        return absl::NotFoundError(
            absl::StrCat(class_folder,
                         ": empty class folder (no .JPEG/.jpg/.jpeg files); the extraction is "
                         "incomplete, or remove the folder to drop the class"));
      }
      empty.push_back(wnid);
    }
  }
  if (!missing.empty() || !empty.empty()) {
    LOG(WARNING) << "imagenet: " << folder << " has no images for " << missing.size() + empty.size()
                 << " of the " << classes.size() << " classes (e.g. "
                 << (missing.empty() ? empty[0] : missing[0]) << ")";
  }
  if (ignored > 0) {
    LOG(INFO) << "imagenet: ignored " << ignored << " files in " << folder
              << " that are not .JPEG/.jpg/.jpeg";
  }
  if (paths.empty()) {
    return absl::NotFoundError(absl::StrCat("no images in ", folder, "; ", ManualLayout(root)));
  }

  ImagenetDataset::Config config;
  config.name = absl::StrCat("imagenet ", context.split == SPLIT_TEST ? "val" : "train");
  config.folder = folder;
  config.transform.image_size = options.image_size();
  config.transform.resize_size = options.resize_size();
  config.transform.train = context.augment;
  config.transform.min_scale = options.min_crop_scale();
  config.transform.max_scale = options.max_crop_scale();
  PACT_ASSIGN_OR_RETURN(config.normalization,
                        ResolveNormalization(context, ImagenetNormalization(), 3));
  VLOG(1) << "imagenet: listed " << paths.size() << " images in "
          << absl::ToDoubleSeconds(absl::Now() - start) << " s";
  return std::make_shared<const ImagenetDataset>(std::move(config), classes, std::move(paths),
                                                 std::move(labels));
}

std::vector<std::string> ImagenetHubFiles(Split split) {
  if (split == SPLIT_TEST) return {"data/val_images.tar.gz"};
  std::vector<std::string> files;
  for (int i = 0; i < 5; ++i) files.push_back(absl::StrCat("data/train_images_", i, ".tar.gz"));
  return files;
}

absl::Status DownloadImagenetFromHub(const std::string& root, Split split,
                                     const ImagenetOptions& options) {
  const std::string split_name(SplitFolder(split));
  const std::string folder = JoinPath(root, split_name);
  const std::string cache = JoinPath(root, "hf_cache");
  // Present while a download of the split is unfinished, so a half-extracted folder is
  // completed rather than mistaken for the whole split.
  const std::string incomplete = JoinPath(cache, absl::StrCat(split_name, ".incomplete"));
  if (PathExists(folder) && !PathExists(incomplete)) return absl::OkStatus();

  const HfToken token = FindHfToken();
  const std::string endpoint = HfEndpoint();
  LOG(WARNING) << "imagenet: " << folder << " is missing; downloading the " << split_name
               << " images of " << kImagenetHubRepo << " from " << endpoint << " ("
               << (split == SPLIT_TEST ? "6.4 GB" : "about 147 GB, plus as much once extracted")
               << ") into " << cache << "; set imagenet.download: false to stop this";
  std::error_code error;
  std::filesystem::create_directories(cache, error);
  if (error)
    return absl::PermissionDeniedError(
        absl::StrCat("cannot create ", cache, ": ", error.message()));
  for (const std::string& file : ImagenetHubFiles(split)) {
    const std::string name = file.substr(file.rfind('/') + 1);
    const std::string archive = JoinPath(cache, name);
    const std::string done = absl::StrCat(archive, ".extracted");
    if (PathExists(done)) continue;
    DownloadRequest request =
        HfDatasetFileRequest(endpoint, kImagenetHubRepo, file, token, archive);
    request.manual_hint =
        absl::StrCat("or ", ManualLayout(root), " and set imagenet.download: false");
    PACT_RETURN_IF_ERROR(DownloadFile(request));
    // Marked before the first file lands in `folder`, so an interrupted extraction is
    // resumed; a failed download leaves no mark, so files put there by hand are used as is.
    PACT_RETURN_IF_ERROR(TouchFile(incomplete));
    LOG(INFO) << "imagenet: extracting " << archive << " into " << folder;
    PACT_ASSIGN_OR_RETURN(
        const ExtractStats stats,
        ExtractArchive(archive, root, [&split_name, &archive](absl::string_view entry) {
          return HubEntryPath(split_name, archive, entry);
        }));
    LOG(INFO) << "imagenet: " << archive << ": " << stats.files << " images extracted, "
              << stats.skipped_existing << " already there";
    PACT_RETURN_IF_ERROR(TouchFile(done));
    if (!options.keep_archives()) std::remove(archive.c_str());  // our own download
  }
  std::remove(incomplete.c_str());
  return absl::OkStatus();
}

PACT_REGISTER_DATASET(imagenet, ImagenetOptions, BuildImagenet, ValidateImagenet);

}  // namespace pact::datasets
