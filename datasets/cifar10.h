// CIFAR-10 (Krizhevsky 2009), official binary version: 50000 training and 10000 test images,
// 3x32x32, 10 classes.
//
// Layout under data_root (default "data/cifar10", relative to the working folder):
//   cifar-10-batches-bin/data_batch_{1..5}.bin  (train)   cifar-10-batches-bin/test_batch.bin
// or the same files directly in data_root. Each file is 10000 records of 1 label byte + 3072
// pixel bytes (CHW: the 32x32 red plane, then green, then blue, rows top to bottom).
//
// When none of the split's files is there, BuildCifar10 downloads the archive first (see
// Cifar10Options.download and DownloadCifar10IfMissing).
//
// The split is read into memory once as uint8 (150 MB for train). Training augmentation
// (`augment`) is the standard one of He et al. 2016 §4.2, used by the PACT paper's CIFAR
// experiments: 4-pixel zero padding, a random 32x32 crop and a horizontal flip with p = 0.5.
#ifndef PACT_DATASETS_CIFAR10_H_
#define PACT_DATASETS_CIFAR10_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "datasets/cifar10_options.pb.h"
#include "datasets/dataset.h"
#include "datasets/image_dataset.h"
#include "datasets/transforms.h"

namespace pact::datasets {

inline constexpr int64_t kCifar10ImageBytes = 3 * 32 * 32;
inline constexpr int64_t kCifar10RecordBytes = 1 + kCifar10ImageBytes;
inline constexpr int64_t kCifar10RecordsPerFile = 10000;
inline constexpr char kCifar10DefaultRoot[] = "data/cifar10";
inline constexpr char kCifar10Subfolder[] = "cifar-10-batches-bin";
inline constexpr int kCifar10Padding = 4;
inline constexpr char kCifar10Url[] = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz";
inline constexpr char kCifar10ArchiveName[] = "cifar-10-binary.tar.gz";
inline constexpr char kCifar10Md5[] = "c32a1d4ab5d03f1284b67883e8d87530";

// Per-channel (R, G, B) mean and std of x/255 over the 50000 training images, recomputed from
// the official files: mean (0.4914, 0.4822, 0.4465), std (0.2470, 0.2435, 0.2616). (The often
// copied std (0.2023, 0.1994, 0.2010) is not the pixel std of the dataset.)
ChannelNormalization Cifar10Normalization();

// The files of `split` in record order (data_batch_1.bin .. data_batch_5.bin, or
// test_batch.bin); empty for SPLIT_UNSPECIFIED.
std::vector<std::string> Cifar10FileNames(Split split);

// Loads the split of `context` from context.data_root (or kCifar10DefaultRoot).
// NotFound (with download instructions) when the files are missing; DataLoss naming the file
// for a wrong size or a label > 9; InvalidArgument for a bad split or normalization.
// `records_per_file` is 10000 for the real data; tests pass less to keep fixtures small.
absl::StatusOr<std::shared_ptr<const InMemoryImageDataset>> LoadCifar10(
    const DatasetContext& context, int64_t records_per_file = kCifar10RecordsPerFile);

// A dataset from records already in memory (the .bin format, any number of records), e.g. an
// in-memory fixture for benchmarks. `source` names them in messages.
absl::StatusOr<std::shared_ptr<const InMemoryImageDataset>> Cifar10FromRecords(
    absl::string_view records, absl::string_view source, const DatasetContext& context);

// If none of the split's files is in `root` or root/cifar-10-batches-bin: downloads the archive
// from options.download_url (else env PACT_CIFAR10_URL, else kCifar10Url) to
// root/cifar-10-binary.tar.gz (resumable; an archive already there is used), checks its MD5
// against `md5` and extracts it into root, skipping files that exist. Errors as DownloadFile
// and ExtractArchive (http_download.h, archive.h): Unavailable offline, DataLoss on a bad MD5, ...
absl::Status DownloadCifar10IfMissing(const std::string& root, Split split,
                                      const Cifar10Options& options,
                                      absl::string_view md5 = kCifar10Md5);

}  // namespace pact::datasets

#endif  // PACT_DATASETS_CIFAR10_H_
