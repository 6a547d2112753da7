#include "datasets/fashion_mnist.h"

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "datasets/dataset.h"
#include "datasets/fashion_mnist_options.pb.h"
#include "datasets/file_io.h"
#include "datasets/image_dataset.h"
#include "datasets/transforms.h"
#include "glog/logging.h"
#include "pact/core/file.h"
#include "pact/core/status_macros.h"

namespace pact::datasets {
namespace {

constexpr int64_t kNumClasses = 10;
constexpr int64_t kSide = 28;
constexpr char kGetFiles[] =
    "install Debian package dataset-fashion-mnist (it puts them in "
    "/usr/share/datasets/fashion-mnist), or put the four .gz files from "
    "https://github.com/zalandoresearch/fashion-mnist (data/fashion/) into ";

uint32_t ReadBigEndian32(absl::string_view data, size_t offset) {
  const auto* p = reinterpret_cast<const unsigned char*>(data.data() + offset);
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

// Checks the IDX header's size and magic number; returns the header's dimensions.
absl::StatusOr<std::vector<int64_t>> ParseIdxHeader(absl::string_view data, absl::string_view name,
                                                    uint32_t magic, int dims) {
  const size_t header_bytes = 4 * (1 + dims);
  if (data.size() < header_bytes) {
    return absl::DataLossError(absl::StrCat(name, ": expected an IDX header of ", header_bytes,
                                            " bytes, the file has ", data.size()));
  }
  const uint32_t actual_magic = ReadBigEndian32(data, 0);
  if (actual_magic != magic) {
    return absl::DataLossError(
        absl::StrCat(name, ": bad IDX magic number ", actual_magic, ", expected ", magic, " (",
                     magic == kIdxImagesMagic ? "images, idx3-ubyte" : "labels, idx1-ubyte",
                     "); the file is corrupt or not the expected IDX file"));
  }
  std::vector<int64_t> sizes;
  for (int i = 0; i < dims; ++i) sizes.push_back(ReadBigEndian32(data, 4 * (1 + i)));
  return sizes;
}

absl::Status CheckPayloadSize(absl::string_view data, absl::string_view name, int64_t header_bytes,
                              int64_t payload_bytes, absl::string_view what) {
  const int64_t expected = header_bytes + payload_bytes;
  const int64_t actual = static_cast<int64_t>(data.size());
  if (actual == expected) return absl::OkStatus();
  return absl::DataLossError(absl::StrCat(name, ": expected ", expected, " bytes (", what,
                                          "), got ", actual,
                                          actual < expected ? " (truncated)" : " (too large)"));
}

absl::Status CheckSplit(Split split) {
  if (split == SPLIT_TRAIN || split == SPLIT_TEST) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("split: must be SPLIT_TRAIN or SPLIT_TEST, got ", Split_Name(split)));
}

// `<root>/<base>.gz`, else `<root>/<base>`; NotFound naming both.
absl::StatusOr<std::string> FindFile(const std::string& root, absl::string_view base) {
  const std::string gz = JoinPath(root, absl::StrCat(base, ".gz"));
  if (PathExists(gz)) return gz;
  const std::string raw = JoinPath(root, base);
  if (PathExists(raw)) return raw;
  return absl::NotFoundError(absl::StrCat("neither ", gz, " nor ", raw, " exists; ", kGetFiles,
                                          root, " (or set data_root to their folder)"));
}

// FashionMnistOptions has no fields; the registry's factory signature takes it.
absl::StatusOr<std::shared_ptr<const Dataset>> BuildFashionMnist(
    const FashionMnistOptions& /*options*/, const DatasetContext& context) {
  PACT_ASSIGN_OR_RETURN(std::shared_ptr<const InMemoryImageDataset> dataset,
                        LoadFashionMnist(context));
  LOG(INFO) << dataset->Describe();
  return std::shared_ptr<const Dataset>(std::move(dataset));
}

}  // namespace

ChannelNormalization FashionMnistNormalization() { return {{0.2860f}, {0.3530f}}; }

absl::StatusOr<IdxImages> ParseIdxImages(absl::string_view data, absl::string_view name) {
  PACT_ASSIGN_OR_RETURN(const std::vector<int64_t> sizes,
                        ParseIdxHeader(data, name, kIdxImagesMagic, 3));
  IdxImages images;
  images.count = sizes[0];
  images.rows = sizes[1];
  images.cols = sizes[2];
  // Each size is < 2^32, so the product of two fits in uint64; beyond 2^40 bytes the header
  // cannot describe a real file (and the total could overflow).
  constexpr uint64_t kMaxBytes = uint64_t{1} << 40;
  const uint64_t image_bytes = static_cast<uint64_t>(images.rows) * images.cols;
  if (image_bytes > kMaxBytes ||
      (image_bytes > 0 && static_cast<uint64_t>(images.count) > kMaxBytes / image_bytes)) {
    return absl::DataLossError(absl::StrCat(name, ": implausible IDX header: ", images.count,
                                            " images of ", images.rows, "x", images.cols,
                                            " (the file has ", data.size(), " bytes)"));
  }
  PACT_RETURN_IF_ERROR(
      CheckPayloadSize(data, name, 16, images.count * images.rows * images.cols,
                       absl::StrCat("16-byte header + ", images.count, " images of ", images.rows,
                                    "x", images.cols)));
  images.pixels.assign(data.begin() + 16, data.end());
  return images;
}

absl::StatusOr<std::vector<uint8_t>> ParseIdxLabels(absl::string_view data, absl::string_view name,
                                                    int64_t num_classes) {
  PACT_ASSIGN_OR_RETURN(const std::vector<int64_t> sizes,
                        ParseIdxHeader(data, name, kIdxLabelsMagic, 1));
  PACT_RETURN_IF_ERROR(CheckPayloadSize(data, name, 8, sizes[0],
                                        absl::StrCat("8-byte header + ", sizes[0], " labels")));
  std::vector<uint8_t> labels(data.begin() + 8, data.end());
  for (size_t i = 0; i < labels.size(); ++i) {
    if (labels[i] >= num_classes) {
      return absl::DataLossError(absl::StrCat(name, ": label ", i, " is ",
                                              static_cast<int>(labels[i]), ", expected 0..",
                                              num_classes - 1));
    }
  }
  return labels;
}

absl::StatusOr<std::shared_ptr<const InMemoryImageDataset>> LoadFashionMnist(
    const DatasetContext& context) {
  PACT_RETURN_IF_ERROR(CheckSplit(context.split));
  const std::string root = context.data_root.empty() ? kFashionMnistDefaultRoot : context.data_root;
  const absl::string_view prefix = context.split == SPLIT_TEST ? "t10k" : "train";

  PACT_ASSIGN_OR_RETURN(const std::string images_path,
                        FindFile(root, absl::StrCat(prefix, "-images-idx3-ubyte")));
  PACT_ASSIGN_OR_RETURN(const std::string labels_path,
                        FindFile(root, absl::StrCat(prefix, "-labels-idx1-ubyte")));
  IdxImages images;
  {
    PACT_ASSIGN_OR_RETURN(const std::string data, ReadMaybeGzippedFile(images_path));
    PACT_ASSIGN_OR_RETURN(images, ParseIdxImages(data, images_path));
  }
  if (images.rows != kSide || images.cols != kSide) {
    return absl::DataLossError(absl::StrCat(images_path, ": expected ", kSide, "x", kSide,
                                            " images, the header says ", images.rows, "x",
                                            images.cols));
  }
  std::vector<uint8_t> labels;
  {
    PACT_ASSIGN_OR_RETURN(const std::string data, ReadMaybeGzippedFile(labels_path));
    PACT_ASSIGN_OR_RETURN(labels, ParseIdxLabels(data, labels_path, kNumClasses));
  }
  if (static_cast<int64_t>(labels.size()) != images.count) {
    return absl::DataLossError(absl::StrCat(images_path, " has ", images.count, " images but ",
                                            labels_path, " has ", labels.size(),
                                            " labels; the files are from different splits or "
                                            "versions"));
  }
  if (images.count == 0) {
    return absl::DataLossError(absl::StrCat(images_path, ": holds no images"));
  }

  InMemoryImageDataset::Config config;
  config.name = absl::StrCat("fashion_mnist ", context.split == SPLIT_TEST ? "test" : "train");
  config.source = root;
  config.channels = 1;
  config.height = kSide;
  config.width = kSide;
  config.num_classes = kNumClasses;
  PACT_ASSIGN_OR_RETURN(config.normalization,
                        ResolveNormalization(context, FashionMnistNormalization(), 1));
  config.augment = context.augment;
  config.pad = kFashionMnistPadding;
  config.flip = true;
  return std::make_shared<const InMemoryImageDataset>(std::move(config), std::move(images.pixels),
                                                      std::move(labels));
}

PACT_REGISTER_DATASET(fashion_mnist, FashionMnistOptions, BuildFashionMnist);

}  // namespace pact::datasets
