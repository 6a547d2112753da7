// Streaming extraction of dataset archives (tar, tar.gz, zip, ...) with libarchive.
#ifndef PACT_DATASETS_ARCHIVE_H_
#define PACT_DATASETS_ARCHIVE_H_

#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace pact::datasets {

// What ExtractArchive did.
struct ExtractStats {
  int64_t files = 0;             // regular files written
  int64_t skipped_existing = 0;  // regular files left alone because the path existed
  int64_t bytes = 0;             // bytes written
};

// Maps an archive entry's path to where it goes, relative to the destination folder, or ""
// to skip it. An error aborts the extraction with that status.
using ArchiveEntryMapper = std::function<absl::StatusOr<std::string>(absl::string_view entry)>;

// Extracts the regular files (and folders) of a tar, tar.gz, zip, ... archive into
// `destination`, streaming (archives may be far larger than memory). Each file is written to a
// temporary name and renamed when complete (WriteFileAtomicallyWith, pact/core/file.h), so an
// interrupted extraction never leaves a truncated file under a real name; the files are synced
// to disk once, before an OK return (per-file fsyncs would cost hours on ImageNet). Existing
// files are skipped, never overwritten. Symlinks, devices and the like are skipped. Entry paths
// that are absolute or contain ".." are DataLoss, as are corrupt archives (naming the archive and
// the entry). `mapper` null = keep the archive's paths.
absl::StatusOr<ExtractStats> ExtractArchive(const std::string& archive,
                                            const std::string& destination,
                                            const ArchiveEntryMapper& mapper = nullptr);

}  // namespace pact::datasets

#endif  // PACT_DATASETS_ARCHIVE_H_
