#include "datasets/archive.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "glog/logging.h"
#include "pact/core/file.h"

namespace pact::datasets {
namespace {

constexpr absl::Duration kProgressEvery = absl::Seconds(10);

struct ArchiveDeleter {
  void operator()(archive* a) const { archive_read_free(a); }
};

// True if `path` (relative) is absolute or steps out of the destination with "..".
bool UnsafeEntryPath(absl::string_view path) {
  if (path.empty() || path[0] == '/') return true;
  for (const absl::string_view part : absl::StrSplit(path, '/')) {
    if (part == "..") return true;
  }
  return false;
}

// One open archive being extracted.
class Extraction {
 public:
  Extraction(const std::string& archive_path, const std::string& destination,
             const ArchiveEntryMapper& mapper)
      : path_(archive_path), destination_(destination), mapper_(mapper), buffer_(1 << 20) {}

  absl::Status Open() {
    reader_.reset(archive_read_new());
    archive_read_support_filter_all(reader_.get());
    archive_read_support_format_all(reader_.get());
    if (!PathExists(path_)) {
      return absl::NotFoundError(absl::StrCat("archive ", path_, " does not exist"));
    }
    if (archive_read_open_filename(reader_.get(), path_.c_str(), 1 << 20) != ARCHIVE_OK) {
      return absl::DataLossError(absl::StrCat("cannot read archive ", path_, ": ", Error()));
    }
    return absl::OkStatus();
  }

  // Extracts every entry; the stats so far are in stats() either way.
  absl::Status Run() {
    last_log_ = absl::Now();
    while (true) {
      archive_entry* entry = nullptr;
      const int rc = archive_read_next_header(reader_.get(), &entry);
      if (rc == ARCHIVE_EOF)
        return stats_.files > 0 ? SyncFileSystem(destination_) : absl::OkStatus();
      if (rc < ARCHIVE_WARN) {
        return absl::DataLossError(absl::StrCat(path_, ": corrupt or truncated archive after ",
                                                entries_, " entries: ", Error(),
                                                "; delete it to download it again"));
      }
      if (rc == ARCHIVE_WARN) LOG(WARNING) << path_ << ": " << Error();
      ++entries_;
      const absl::Status status = Entry(entry);
      if (!status.ok()) return status;
    }
  }

  const ExtractStats& stats() const { return stats_; }

 private:
  const char* Error() { return archive_error_string(reader_.get()); }

  // Where entry `name` of type `type` goes under destination_, or nullopt to skip it.
  absl::StatusOr<std::optional<std::string>> Target(const std::string& name, mode_t type) {
    std::string relative = name;
    if (mapper_ != nullptr) {
      absl::StatusOr<std::string> mapped = mapper_(name);
      if (!mapped.ok()) return mapped.status();
      relative = *std::move(mapped);
      if (relative.empty()) return std::nullopt;
    }
    absl::string_view clean = relative;
    while (absl::ConsumePrefix(&clean, "./")) {
    }
    if (type == AE_IFDIR && (clean.empty() || clean == ".")) return std::nullopt;
    if (UnsafeEntryPath(clean)) {
      return absl::DataLossError(
          absl::StrCat(path_, ": entry '", name, "' would be written outside ", destination_));
    }
    return JoinPath(destination_, clean);
  }

  absl::Status Entry(archive_entry* entry) {
    const char* raw_name = archive_entry_pathname(entry);
    const std::string name = raw_name != nullptr ? raw_name : "";
    const mode_t type = archive_entry_filetype(entry);
    if (type != AE_IFREG && type != AE_IFDIR) {
      VLOG(1) << path_ << ": skipping " << name << " (not a file or folder)";
      return absl::OkStatus();
    }
    absl::StatusOr<std::optional<std::string>> target = Target(name, type);
    if (!target.ok()) return target.status();
    if (!target->has_value()) return absl::OkStatus();
    const std::string& out = **target;
    if (type == AE_IFDIR) return MakeDirs(out);
    if (PathExists(out)) {
      ++stats_.skipped_existing;  // never overwrite: it may be the user's
      return absl::OkStatus();
    }
    if (const size_t slash = out.rfind('/'); slash != std::string::npos && slash > 0) {
      const absl::Status made = MakeDirs(out.substr(0, slash));
      if (!made.ok()) return made;
    }
    // No fsync per file (it would add hours to ImageNet's 1.28M files); Run syncs once at the end.
    AtomicWriteOptions no_sync;
    no_sync.sync = false;
    const absl::Status written = WriteFileAtomicallyWith(
        out, [this, &name](const std::string& tmp) { return WriteData(name, tmp); }, no_sync);
    if (!written.ok()) return written;
    ++stats_.files;
    if (absl::Now() - last_log_ >= kProgressEvery) {
      last_log_ = absl::Now();
      LOG(INFO) << path_ << ": extracted " << stats_.files << " files ("
                << absl::StrFormat("%.1f MB", stats_.bytes / 1e6) << ")";
    }
    return absl::OkStatus();
  }

  // Streams the current entry's data (entry `name`) into a new file `tmp`.
  absl::Status WriteData(const std::string& name, const std::string& tmp) {
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) return absl::ErrnoToStatus(errno, absl::StrCat("cannot create ", tmp));
    absl::Status status;
    while (status.ok()) {
      const la_ssize_t n = archive_read_data(reader_.get(), buffer_.data(), buffer_.size());
      if (n == 0) break;
      if (n < 0) {
        status =
            absl::DataLossError(absl::StrCat(path_, ": cannot read entry '", name, "': ", Error(),
                                             "; delete the archive to download it again"));
        break;
      }
      for (la_ssize_t done = 0; done < n;) {
        const ssize_t w = ::write(fd, buffer_.data() + done, static_cast<size_t>(n - done));
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) {
          status = absl::ErrnoToStatus(errno, absl::StrCat("cannot write ", tmp));
          break;
        }
        done += w;
      }
      stats_.bytes += n;
    }
    if (::close(fd) != 0 && status.ok()) {
      status = absl::ErrnoToStatus(errno, absl::StrCat("cannot write ", tmp));
    }
    return status;
  }

  const std::string& path_;
  const std::string& destination_;
  const ArchiveEntryMapper& mapper_;
  std::unique_ptr<archive, ArchiveDeleter> reader_;
  std::vector<char> buffer_;
  ExtractStats stats_;
  int64_t entries_ = 0;
  absl::Time last_log_;
};

}  // namespace

absl::StatusOr<ExtractStats> ExtractArchive(const std::string& archive_path,
                                            const std::string& destination,
                                            const ArchiveEntryMapper& mapper) {
  Extraction extraction(archive_path, destination, mapper);
  absl::Status status = extraction.Open();
  if (status.ok()) status = extraction.Run();
  if (!status.ok()) return status;
  return extraction.stats();
}

}  // namespace pact::datasets
