// Dataset downloads: resumable HTTP(S) transfers with libcurl, MD5 verification, archive
// extraction with libarchive, and Hugging Face Hub credentials.
//
// Rules every dataset's download follows:
//  - A transfer goes to "<destination>.part" and is renamed only once complete and verified,
//    so a file under its final name is always whole. An interrupted transfer resumes from the
//    .part's size with an HTTP Range request, in the same call (a few retries with backoff
//    after a transfer that stalls or drops) or in a later run.
//  - Nothing the user put there is deleted or overwritten: only our own .part files are
//    removed (after an MD5 mismatch), and extraction skips files that already exist.
//  - Failures are Statuses naming the URL and saying how to get the files by hand:
//    Unavailable (offline, DNS, refused, 5xx, transfer kept failing), NotFound (404/410),
//    PermissionDenied (401/403), DataLoss (MD5 mismatch, corrupt archive), ResourceExhausted
//    (not enough disk space for the announced size).
#ifndef PACT_DATASETS_DOWNLOAD_H_
#define PACT_DATASETS_DOWNLOAD_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace pact::datasets {

struct DownloadRequest {
  std::string url;
  std::string destination;   // final path; its folder is created if needed
  std::string expected_md5;  // 32 hex digits; empty = no check
  // Extra request headers ("Authorization: Bearer ..."); never logged. libcurl does not send
  // them on to another host after a redirect (Hub files redirect to a signed CDN URL).
  std::vector<std::string> headers;
  // Appended to every failure: how to get the file without this download.
  std::string manual_hint;
  // Appended to 401/403 failures (e.g. how to log in and accept a dataset's terms).
  std::string permission_hint;
  // Transfers that fail after the connection was made (dropped, stalled, 5xx) are retried up
  // to this many attempts in all, resuming, `retry_delay_seconds` apart (doubling).
  int max_attempts = 5;
  double retry_delay_seconds = 2.0;
};

// Downloads request.url to request.destination (see the rules above). If the destination
// already exists it is only checked against expected_md5 (DataLoss on mismatch, left alone).
absl::Status DownloadFile(const DownloadRequest& request);

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
// temporary name and renamed when complete, so an interrupted extraction never leaves a
// truncated file under a real name; existing files are skipped, never overwritten. Symlinks,
// devices and the like are skipped. Entry paths that are absolute or contain ".." are DataLoss,
// as are corrupt archives (naming the archive and the entry). `mapper` null = keep the
// archive's paths.
absl::StatusOr<ExtractStats> ExtractArchive(const std::string& archive,
                                            const std::string& destination,
                                            const ArchiveEntryMapper& mapper = nullptr);

// The value of environment variable `name`, or "" if unset.
std::string GetEnv(const char* name);

// A Hugging Face Hub token and where it came from ("HF_TOKEN", a token file's path).
struct HfToken {
  std::string token;   // empty when none was found
  std::string source;  // where it came from; when empty, where we looked
};

// Looks for a Hub token like huggingface_hub does: env HF_TOKEN (or the older
// HUGGING_FACE_HUB_TOKEN), then the file named by HF_TOKEN_PATH, then $HF_HOME/token, then
// $XDG_CACHE_HOME/huggingface/token, then ~/.cache/huggingface/token (`huggingface-cli login`
// writes the last).
HfToken FindHfToken();

// env HF_ENDPOINT (for mirrors) without a trailing '/', else "https://huggingface.co".
std::string HfEndpoint();

}  // namespace pact::datasets

#endif  // PACT_DATASETS_DOWNLOAD_H_
