#include "pact/core/file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <system_error>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace pact {
namespace {

absl::Status ErrnoError(int error_number, absl::string_view what, absl::string_view path) {
  return absl::ErrnoToStatus(error_number, absl::StrCat(what, " ", path));
}

// Closes `fd` on scope exit unless released.
class FdCloser {
 public:
  explicit FdCloser(int fd) : fd_(fd) {}
  ~FdCloser() {
    if (fd_ >= 0) ::close(fd_);
  }
  FdCloser(const FdCloser&) = delete;
  FdCloser& operator=(const FdCloser&) = delete;
  int get() const { return fd_; }
  // Closes now and reports close(2)'s result (where delayed write errors show up).
  int Close() {
    const int rc = ::close(fd_);
    fd_ = -1;
    return rc;
  }

 private:
  int fd_;
};

absl::Status WriteAll(int fd, absl::string_view data, const std::string& path) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError(errno, "cannot write", path);
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

std::string Folder(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

absl::Status SyncPath(const std::string& path, int flags) {
  const int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) return ErrnoError(errno, "cannot open", path);
  FdCloser closer(fd);
  if (::fsync(fd) != 0) return ErrnoError(errno, "cannot fsync", path);
  return absl::OkStatus();
}

// A name in `path`'s folder that no other writer (thread or process) picks at the same time.
std::string TemporaryName(const std::string& path) {
  static std::atomic<int> counter{0};
  return absl::StrCat(path, ".tmp.", ::getpid(), ".", counter++);
}

}  // namespace

bool PathExists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

bool IsDirectory(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::string JoinPath(absl::string_view dir, absl::string_view name) {
  if (dir.empty()) return std::string(name);
  if (dir.back() == '/') return absl::StrCat(dir, name);
  return absl::StrCat(dir, "/", name);
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    // "cannot stat" when it is not there at all, as before this moved out of datasets/.
    return ErrnoError(errno, errno == ENOENT ? "cannot stat" : "cannot open", path);
  }
  FdCloser closer(fd);
  struct stat st;
  if (::fstat(fd, &st) != 0) return ErrnoError(errno, "cannot stat", path);
  if (S_ISDIR(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot read ", path, ": is a folder, expected a file"));
  }
  std::string contents;
  // The size from fstat avoids regrowing; the loop still copes with a file that changes.
  contents.resize(static_cast<size_t>(st.st_size));
  size_t total = 0;
  while (true) {
    if (total == contents.size()) contents.resize(contents.size() + (1 << 16));
    const ssize_t n = ::read(fd, &contents[total], contents.size() - total);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError(errno, "error reading", path);
    }
    if (n == 0) break;
    total += static_cast<size_t>(n);
  }
  contents.resize(total);
  return contents;
}

absl::Status MakeDirs(const std::string& dir) {
  if (dir.empty() || IsDirectory(dir)) return absl::OkStatus();
  // Each prefix ending before a '/', then `dir` itself; EEXIST from a racing creator is fine as
  // long as a folder results.
  for (size_t end = dir.find('/', 1);; end = dir.find('/', end + 1)) {
    const std::string prefix = dir.substr(0, end);
    if (::mkdir(prefix.c_str(), 0777) != 0 && !(errno == EEXIST && IsDirectory(prefix))) {
      const int error = errno;
      return absl::ErrnoToStatus(
          error,
          absl::StrCat("cannot create folder ", dir,
                       prefix.size() < dir.size() ? absl::StrCat(" (at ", prefix, ")") : ""));
    }
    if (end == std::string::npos) break;
  }
  return absl::OkStatus();
}

absl::Status SyncAndRename(const std::string& from, const std::string& to) {
  absl::Status status = SyncPath(from, O_RDONLY);
  if (!status.ok()) return status;
  if (std::rename(from.c_str(), to.c_str()) != 0) {
    const int error = errno;
    return absl::ErrnoToStatus(error, absl::StrCat("cannot rename ", from, " to ", to));
  }
  // The rename itself is durable only once the folder's entry is on disk.
  return SyncPath(Folder(to), O_RDONLY | O_DIRECTORY);
}

absl::Status WriteFileAtomicallyWith(
    const std::string& path, absl::FunctionRef<absl::Status(const std::string& tmp_path)> write) {
  return WriteFileAtomicallyWith(path, write, AtomicWriteOptions());
}

absl::Status WriteFileAtomicallyWith(
    const std::string& path, absl::FunctionRef<absl::Status(const std::string& tmp_path)> write,
    const AtomicWriteOptions& options) {
  const std::string tmp = TemporaryName(path);
  absl::Status status = write(tmp);
  if (status.ok()) {
    if (options.sync) {
      status = SyncAndRename(tmp, path);
    } else if (std::rename(tmp.c_str(), path.c_str()) != 0) {
      const int error = errno;
      status = absl::ErrnoToStatus(error, absl::StrCat("cannot rename ", tmp, " to ", path));
    }
  }
  // After a failed rename (or a writer that failed half way) the temporary may still exist.
  if (!status.ok()) std::remove(tmp.c_str());
  return status;
}

absl::Status WriteFileAtomically(const std::string& path, absl::string_view contents) {
  return WriteFileAtomicallyWith(path, [contents](const std::string& tmp) {
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0) return ErrnoError(errno, "cannot create", tmp);
    FdCloser closer(fd);
    absl::Status status = WriteAll(fd, contents, tmp);
    if (status.ok() && closer.Close() != 0) status = ErrnoError(errno, "cannot write", tmp);
    return status;
  });
}

absl::Status SyncFileSystem(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoError(errno, "cannot open", path);
  FdCloser closer(fd);
  if (::syncfs(fd) != 0) return ErrnoError(errno, "cannot sync the file system of", path);
  return absl::OkStatus();
}

absl::Status AppendToFile(const std::string& path, absl::string_view contents) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0666);
  if (fd < 0) return ErrnoError(errno, "cannot open for appending", path);
  FdCloser closer(fd);
  absl::Status status = WriteAll(fd, contents, path);
  if (status.ok() && closer.Close() != 0) status = ErrnoError(errno, "cannot write", path);
  return status;
}

std::string GetEnv(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr ? value : "";
}

}  // namespace pact
