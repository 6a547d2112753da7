// In-memory gunzip for dataset loaders (paths and whole-file reads are in pact/core/file.h).
//
// Datasets are small enough (CIFAR-10: 180 MB, Fashion-MNIST: 55 MB) to read into memory once;
// every failure is a Status that names the file, so a user can tell which download is bad.
#ifndef PACT_DATASETS_FILE_IO_H_
#define PACT_DATASETS_FILE_IO_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace pact::datasets {

// True if `data` starts with the gzip magic bytes 1f 8b.
bool IsGzip(absl::string_view data);

// Decompresses gzip data (one or more concatenated members, as gzip(1) may write).
// DataLoss naming `name` on corrupt or truncated input.
absl::StatusOr<std::string> Gunzip(absl::string_view compressed, absl::string_view name);

// ReadFile, then Gunzip when the content is gzip (by magic bytes, not by file name).
absl::StatusOr<std::string> ReadMaybeGzippedFile(const std::string& path);

}  // namespace pact::datasets

#endif  // PACT_DATASETS_FILE_IO_H_
