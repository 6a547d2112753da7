#include "datasets/cifar10.h"

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "datasets/archive.h"
#include "datasets/cifar10_options.pb.h"
#include "datasets/dataset.h"
#include "datasets/http_download.h"
#include "datasets/image_dataset.h"
#include "datasets/transforms.h"
#include "glog/logging.h"
#include "pact/core/file.h"
#include "pact/core/status_macros.h"

namespace pact::datasets {
namespace {

constexpr int64_t kNumClasses = 10;

std::string ArchiveUrl(const Cifar10Options& options) {
  if (options.has_download_url()) return options.download_url();
  const std::string env = GetEnv("PACT_CIFAR10_URL");
  return env.empty() ? kCifar10Url : env;
}

// True if some file of the split is in either folder LoadCifar10 looks in.
bool AnySplitFilePresent(const std::string& root, Split split) {
  for (const std::string& folder : {JoinPath(root, kCifar10Subfolder), root}) {
    for (const std::string& name : Cifar10FileNames(split)) {
      if (PathExists(JoinPath(folder, name))) return true;
    }
  }
  return false;
}

absl::string_view SplitName(Split split) { return split == SPLIT_TEST ? "test" : "train"; }

// Appends the images and labels of `records` (a whole number of records, checked by the
// caller) after validating every label.
absl::Status AppendRecords(absl::string_view records, absl::string_view source,
                           std::vector<uint8_t>* pixels, std::vector<uint8_t>* labels) {
  const int64_t count = static_cast<int64_t>(records.size()) / kCifar10RecordBytes;
  const size_t pixel_offset = pixels->size();
  pixels->resize(pixel_offset + count * kCifar10ImageBytes);
  labels->reserve(labels->size() + count);
  for (int64_t i = 0; i < count; ++i) {
    const char* record = records.data() + i * kCifar10RecordBytes;
    const uint8_t label = static_cast<uint8_t>(record[0]);
    if (label >= kNumClasses) {
      return absl::DataLossError(absl::StrCat(
          source, ": record ", i, " (byte offset ", i * kCifar10RecordBytes, ") has label ",
          static_cast<int>(label), ", expected 0..", kNumClasses - 1,
          "; the file is corrupt or is not CIFAR-10 (CIFAR-100 records have 2 label bytes)"));
    }
    labels->push_back(label);
    std::memcpy(pixels->data() + pixel_offset + i * kCifar10ImageBytes, record + 1,
                kCifar10ImageBytes);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<const InMemoryImageDataset>> MakeDataset(
    const DatasetContext& context, std::string source, std::vector<uint8_t> pixels,
    std::vector<uint8_t> labels) {
  InMemoryImageDataset::Config config;
  config.name = absl::StrCat("cifar10 ", SplitName(context.split));
  config.source = std::move(source);
  config.channels = 3;
  config.height = 32;
  config.width = 32;
  config.num_classes = kNumClasses;
  PACT_ASSIGN_OR_RETURN(config.normalization,
                        ResolveNormalization(context, Cifar10Normalization(), config.channels));
  config.augment = context.augment;
  config.pad = kCifar10Padding;
  config.flip = true;
  return std::make_shared<const InMemoryImageDataset>(std::move(config), std::move(pixels),
                                                      std::move(labels));
}

absl::Status CheckSplit(Split split) {
  if (split == SPLIT_TRAIN || split == SPLIT_TEST) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("split: must be SPLIT_TRAIN or SPLIT_TEST, got ", Split_Name(split)));
}

absl::StatusOr<std::shared_ptr<const Dataset>> BuildCifar10(const Cifar10Options& options,
                                                            const DatasetContext& context) {
  PACT_RETURN_IF_ERROR(CheckSplit(context.split));
  if (options.download()) {
    PACT_RETURN_IF_ERROR(DownloadCifar10IfMissing(
        context.data_root.empty() ? kCifar10DefaultRoot : context.data_root, context.split,
        options));
  }
  PACT_ASSIGN_OR_RETURN(std::shared_ptr<const InMemoryImageDataset> dataset, LoadCifar10(context));
  LOG(INFO) << dataset->Describe();
  return std::shared_ptr<const Dataset>(std::move(dataset));
}

}  // namespace

ChannelNormalization Cifar10Normalization() {
  return {{0.4914f, 0.4822f, 0.4465f}, {0.2470f, 0.2435f, 0.2616f}};
}

std::vector<std::string> Cifar10FileNames(Split split) {
  switch (split) {
    case SPLIT_TRAIN:
      return {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin",
              "data_batch_5.bin"};
    case SPLIT_TEST:
      return {"test_batch.bin"};
    default:
      return {};
  }
}

absl::StatusOr<std::shared_ptr<const InMemoryImageDataset>> LoadCifar10(
    const DatasetContext& context, int64_t records_per_file) {
  CHECK_GT(records_per_file, 0);
  PACT_RETURN_IF_ERROR(CheckSplit(context.split));
  const std::string root = context.data_root.empty() ? kCifar10DefaultRoot : context.data_root;
  const std::vector<std::string> names = Cifar10FileNames(context.split);

  // The folder holding the split: the archive's subfolder first, then data_root itself.
  const std::vector<std::string> candidates = {JoinPath(root, kCifar10Subfolder), root};
  std::string folder;
  for (const std::string& candidate : candidates) {
    for (const std::string& name : names) {
      if (PathExists(JoinPath(candidate, name))) {
        folder = candidate;
        break;
      }
    }
    if (!folder.empty()) break;
  }
  if (folder.empty()) {
    return absl::NotFoundError(absl::StrCat(
        "no CIFAR-10 ", SplitName(context.split), " files (", absl::StrJoin(names, ", "), ") in ",
        candidates[0], " or ", root, "; download cifar-10-binary.tar.gz from ", kCifar10Url,
        " and extract it into ", root, " (it creates ", kCifar10Subfolder,
        "/), or set data_root to the folder that holds them"));
  }

  const int64_t expected_size = records_per_file * kCifar10RecordBytes;
  std::vector<uint8_t> pixels;
  std::vector<uint8_t> labels;
  pixels.reserve(names.size() * records_per_file * kCifar10ImageBytes);
  labels.reserve(names.size() * records_per_file);
  for (const std::string& name : names) {
    const std::string path = JoinPath(folder, name);
    if (!PathExists(path)) {
      return absl::NotFoundError(absl::StrCat(path, " is missing (the ", SplitName(context.split),
                                              " split needs ", absl::StrJoin(names, ", "),
                                              "); extract cifar-10-binary.tar.gz from ",
                                              kCifar10Url, " into ", root, " again"));
    }
    PACT_ASSIGN_OR_RETURN(const std::string contents, ReadFile(path));
    const int64_t actual_size = static_cast<int64_t>(contents.size());
    if (actual_size != expected_size) {
      return absl::DataLossError(absl::StrCat(
          path, ": expected ", expected_size, " bytes (", records_per_file, " records of ",
          kCifar10RecordBytes, " bytes), got ", actual_size, " bytes",
          actual_size < expected_size ? " (truncated)" : " (too large)",
          "; the file is corrupt or not from the binary version (cifar-10-binary.tar.gz)"));
    }
    PACT_RETURN_IF_ERROR(AppendRecords(contents, path, &pixels, &labels));
  }
  if (context.augment && context.split == SPLIT_TEST) {
    LOG(WARNING) << "cifar10: augmentation is on for the test split";
  }
  return MakeDataset(context, folder, std::move(pixels), std::move(labels));
}

absl::StatusOr<std::shared_ptr<const InMemoryImageDataset>> Cifar10FromRecords(
    absl::string_view records, absl::string_view source, const DatasetContext& context) {
  PACT_RETURN_IF_ERROR(CheckSplit(context.split));
  if (records.empty() || records.size() % kCifar10RecordBytes != 0) {
    return absl::DataLossError(absl::StrCat(source, ": expected a positive multiple of ",
                                            kCifar10RecordBytes, " bytes, got ", records.size()));
  }
  std::vector<uint8_t> pixels;
  std::vector<uint8_t> labels;
  PACT_RETURN_IF_ERROR(AppendRecords(records, source, &pixels, &labels));
  return MakeDataset(context, std::string(source), std::move(pixels), std::move(labels));
}

absl::Status DownloadCifar10IfMissing(const std::string& root, Split split,
                                      const Cifar10Options& options, absl::string_view md5) {
  PACT_RETURN_IF_ERROR(CheckSplit(split));
  if (AnySplitFilePresent(root, split)) return absl::OkStatus();
  DownloadRequest request;
  request.url = ArchiveUrl(options);
  request.destination = JoinPath(root, kCifar10ArchiveName);
  request.expected_md5 = std::string(md5);
  request.manual_hint =
      absl::StrCat("to do it by hand, download ", request.url, " and extract it into ", root,
                   " (it creates ", kCifar10Subfolder,
                   "/ with data_batch_1..5.bin and test_batch.bin), or "
                   "set data_root to the folder holding those files");
  PACT_RETURN_IF_ERROR(DownloadFile(request));
  LOG(INFO) << "cifar10: extracting " << request.destination << " into " << root;
  PACT_ASSIGN_OR_RETURN(const ExtractStats stats, ExtractArchive(request.destination, root));
  LOG(INFO) << "cifar10: extracted " << stats.files << " files (" << stats.skipped_existing
            << " already there)";
  return absl::OkStatus();
}

PACT_REGISTER_DATASET(cifar10, Cifar10Options, BuildCifar10);

}  // namespace pact::datasets
