#include "datasets/http_download.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "datasets/http_transfer.h"
#include "datasets/md5.h"
#include "glog/logging.h"
#include "pact/core/file.h"

namespace pact::datasets {
namespace {

using internal::Attempt;
using internal::Megabytes;

// `hint` as a sentence to append ("" stays "").
std::string Hint(absl::string_view hint) { return hint.empty() ? "" : absl::StrCat("; ", hint); }

int64_t FileSize(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 ? static_cast<int64_t>(st.st_size) : -1;
}

bool Success(long status) { return status >= 200 && status < 300; }

// The first line of an error page, shortened, for messages.
std::string ServerSays(absl::string_view body) {
  std::string text(absl::StripAsciiWhitespace(body.substr(0, 300)));
  std::replace(text.begin(), text.end(), '\n', ' ');
  std::replace(text.begin(), text.end(), '\r', ' ');
  return text.empty() ? "" : absl::StrCat(" (server says: ", text, ")");
}

absl::Status CheckMd5(const std::string& path, absl::string_view expected) {
  auto actual = Md5File(path);
  if (!actual.ok()) return actual.status();
  if (absl::EqualsIgnoreCase(*actual, expected)) return absl::OkStatus();
  return absl::DataLossError(absl::StrCat("MD5 of ", path, " is ", *actual, ", expected ",
                                          absl::AsciiStrToLower(expected)));
}

// One attempt at transferring request.url into `part`, resuming from its size.
absl::Status RunOneAttempt(const DownloadRequest& request, const std::string& part,
                           const std::string& folder, bool first, Attempt* a, CURLcode* code,
                           std::string* curl_error) {
  a->url = request.url;
  a->folder = folder;
  a->offset = std::max<int64_t>(0, FileSize(part));
  a->file_size = a->offset;
  a->start = a->last_log = absl::Now();
  a->fd = ::open(part.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (a->fd < 0) return absl::ErrnoToStatus(errno, absl::StrCat("cannot create ", part));
  if (first) {
    LOG(INFO) << "downloading " << request.url << " to " << request.destination
              << (a->offset > 0 ? absl::StrCat(" (resuming after ", Megabytes(a->offset), ")")
                                : std::string());
  }
  *code = internal::RunAttempt(request.headers, a, curl_error);
  ::close(a->fd);
  if (!a->local_error.ok()) {
    return absl::Status(a->local_error.code(), absl::StrCat(a->local_error.message(), " (", part,
                                                            ")", Hint(request.manual_hint)));
  }
  return absl::OkStatus();
}

// What a finished attempt means: a final Status (OK = the whole file is in `part`), or nullopt
// with `*error` set when another attempt may get further (`*error` is final if `*retry` false).
std::optional<absl::Status> Judge(const DownloadRequest& request, const std::string& part,
                                  const Attempt& a, CURLcode code, const std::string& curl_error,
                                  absl::Status* error, bool* retry) {
  *retry = false;
  if (code == CURLE_OK && Success(a.status)) return absl::OkStatus();
  if (code == CURLE_OK && a.status == 416 && a.offset > 0) {
    // Nothing left to send: the .part is whole if its size is the file's.
    if (a.range_total == a.offset) return absl::OkStatus();
    LOG(WARNING) << part << " holds " << a.offset << " bytes but " << request.url << " has "
                 << a.range_total << "; downloading it afresh";
    std::remove(part.c_str());
    *error = absl::UnavailableError(absl::StrCat(request.url, ": HTTP 416"));
    *retry = true;
  } else if (code == CURLE_OK) {
    const std::string what =
        absl::StrCat(request.url, ": HTTP ", a.status, ServerSays(a.error_body));
    if (a.status == 401 || a.status == 403) {
      return absl::PermissionDeniedError(
          absl::StrCat(what, Hint(request.permission_hint), Hint(request.manual_hint)));
    }
    if (a.status == 404 || a.status == 410) {
      return absl::NotFoundError(absl::StrCat(what, "; check the URL", Hint(request.manual_hint)));
    }
    *error = absl::UnavailableError(what);
    *retry = a.status == 408 || a.status == 429 || a.status >= 500;
  } else {
    *error =
        absl::UnavailableError(absl::StrCat("cannot download ", request.url, ": ", curl_error));
    *retry = a.written > 0 || internal::RetryableCurlError(code);
  }
  return std::nullopt;
}

// The error after the last allowed attempt, saying what is kept for the next run.
absl::Status GiveUp(const DownloadRequest& request, const std::string& part,
                    const absl::Status& last_error, int attempts) {
  const int64_t kept = std::max<int64_t>(0, FileSize(part));
  return absl::UnavailableError(
      absl::StrCat(last_error.message(), " (", attempts, " attempts)",
                   kept > 0 ? absl::StrCat("; the ", Megabytes(kept), " received are kept in ",
                                           part, " and the next run resumes from there")
                            : std::string(),
                   Hint(request.manual_hint)));
}

// Transfers request.url into `part` (resuming it), retrying as DownloadFile describes. OK once
// the server has sent the whole file.
absl::Status TransferWithRetries(const DownloadRequest& request, const std::string& part,
                                 const std::string& folder) {
  double delay = request.retry_delay_seconds;
  for (int attempt = 1;; ++attempt) {
    Attempt a;
    CURLcode code = CURLE_OK;
    std::string curl_error;
    absl::Status status =
        RunOneAttempt(request, part, folder, attempt == 1, &a, &code, &curl_error);
    if (!status.ok()) return status;
    bool retry = false;
    absl::Status last_error;
    if (std::optional<absl::Status> verdict =
            Judge(request, part, a, code, curl_error, &last_error, &retry)) {
      return *verdict;
    }
    if (!retry) {
      return absl::UnavailableError(absl::StrCat(last_error.message(), Hint(request.manual_hint)));
    }
    if (attempt >= request.max_attempts) return GiveUp(request, part, last_error, attempt);
    LOG(WARNING) << last_error.message() << "; retrying in " << delay << " s (attempt "
                 << attempt + 1 << " of " << request.max_attempts << ")";
    std::this_thread::sleep_for(std::chrono::duration<double>(delay));
    delay *= 2;
  }
}

// The check of a file that was there before the download: never touched, only judged.
absl::Status CheckExisting(const DownloadRequest& request) {
  if (request.expected_md5.empty()) return absl::OkStatus();
  const absl::Status status = CheckMd5(request.destination, request.expected_md5);
  if (status.ok()) return status;
  return absl::DataLossError(
      absl::StrCat(status.message(),
                   "; it was there before this download and is left alone: delete or "
                   "replace it",
                   Hint(request.manual_hint)));
}

}  // namespace

absl::Status DownloadFile(const DownloadRequest& request) {
  internal::InitCurlOnce();
  const std::string& destination = request.destination;
  if (PathExists(destination)) return CheckExisting(request);
  const size_t slash = destination.rfind('/');
  const std::string folder = slash == std::string::npos ? ""
                             : slash == 0               ? "/"
                                                        : destination.substr(0, slash);
  if (const absl::Status made = MakeDirs(folder); !made.ok()) {
    return absl::PermissionDeniedError(absl::StrCat(made.message(), Hint(request.manual_hint)));
  }
  const std::string part = destination + ".part";
  const absl::Status transferred =
      TransferWithRetries(request, part, folder.empty() ? "." : folder);
  if (!transferred.ok()) {
    if (FileSize(part) == 0) std::remove(part.c_str());  // nothing worth resuming
    return transferred;
  }
  if (!request.expected_md5.empty()) {
    const absl::Status status = CheckMd5(part, request.expected_md5);
    if (!status.ok()) {
      // Our own partial file: remove it, or every later run would fail the same way.
      std::remove(part.c_str());
      return absl::DataLossError(
          absl::StrCat(request.url, ": ", status.message(),
                       "; deleted the bad download (a mirror or proxy "
                       "may have served a different file); run again to download it afresh",
                       Hint(request.manual_hint)));
    }
  }
  // Synced before the rename: a file under its final name is whole even after a power cut.
  if (absl::Status renamed = SyncAndRename(part, destination); !renamed.ok()) return renamed;
  LOG(INFO) << "downloaded " << destination << " (" << Megabytes(FileSize(destination)) << ")";
  return absl::OkStatus();
}

}  // namespace pact::datasets
