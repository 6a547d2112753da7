// The one file layer: path helpers, whole-file reads, durable atomic writes, appends, and the
// environment. Everything that writes a file a later run reads (checkpoints, recipe copies,
// plots, downloads) goes through WriteFileAtomically*, so a crash leaves either the old or the
// new contents under the real name, never a mix or a truncated file. Errors are Statuses whose
// message names the path; the code follows errno (NotFound, PermissionDenied, ...).
#ifndef PACT_CORE_FILE_H_
#define PACT_CORE_FILE_H_

#include <string>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace pact {

// True if `path` names an existing file or folder (following symlinks).
bool PathExists(const std::string& path);

// True if `path` names an existing folder (following symlinks).
bool IsDirectory(const std::string& path);

// Joins two path pieces with exactly one '/' between them (an empty `dir` gives `name`).
std::string JoinPath(absl::string_view dir, absl::string_view name);

// The whole file. NotFound if missing, PermissionDenied if not readable, FailedPrecondition for
// a folder, otherwise the errno's code; the message names `path`.
absl::StatusOr<std::string> ReadFile(const std::string& path);

// Creates `dir` and its missing parents (mkdir -p); OK if it already is a folder. The error
// names `dir`.
absl::Status MakeDirs(const std::string& dir);

// Writes `contents` to a temporary file in `path`'s folder, fsyncs it, renames it over `path`
// and fsyncs the folder (leveldb's SetCurrentFile protocol). On any failure before the rename
// the temporary is removed and `path` is untouched. The folder must exist.
absl::Status WriteFileAtomically(const std::string& path, absl::string_view contents);

// The same protocol for writers that need a file name (LibTorch archives, libpng): `write`
// creates and fills `tmp_path` (a fresh name in `path`'s folder); then fsync, rename, fsync the
// folder. If `write` or any later step fails, `tmp_path` is removed and `path` is untouched.
absl::Status WriteFileAtomicallyWith(
    const std::string& path, absl::FunctionRef<absl::Status(const std::string& tmp_path)> write);

// How WriteFileAtomicallyWith publishes a file.
struct AtomicWriteOptions {
  // fsync the file before and the folder after the rename. Without it the rename is still
  // atomic against crashes of the process, but not against power loss; for writers of very
  // many small files (archive extraction: ~9 ms per fsync'ed file here) that sync once at the
  // end with SyncFileSystem.
  bool sync = true;
};
absl::Status WriteFileAtomicallyWith(
    const std::string& path, absl::FunctionRef<absl::Status(const std::string& tmp_path)> write,
    const AtomicWriteOptions& options);

// Flushes the whole file system holding `path` to disk (syncfs(2)).
absl::Status SyncFileSystem(const std::string& path);

// fsyncs the file `from`, renames it to `to` (replacing it) and fsyncs `to`'s folder: the last
// steps of WriteFileAtomically, for a temporary a caller keeps across failures (a resumable
// download's .part). `from` is left in place when this fails.
absl::Status SyncAndRename(const std::string& from, const std::string& to);

// Appends `contents` to `path` (O_APPEND; created if missing, never truncated) and hands it to
// the OS before returning (write(2), no fsync: appenders write often, one record at a time).
absl::Status AppendToFile(const std::string& path, absl::string_view contents);

// The value of environment variable `name`; "" when unset (or set to "").
std::string GetEnv(const char* name);

}  // namespace pact

#endif  // PACT_CORE_FILE_H_
