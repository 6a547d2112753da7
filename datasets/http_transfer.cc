#include "datasets/http_transfer.h"

#include <curl/curl.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "glog/logging.h"

namespace pact::datasets::internal {
namespace {

constexpr size_t kErrorBodyBytes = 2048;

bool Success(long status) { return status >= 200 && status < 300; }

// Called when the final headers of a response are in: positions the .part for the body.
bool OnHeadersDone(Attempt* a) {
  if (!Success(a->status)) return true;
  int64_t keep = 0;  // bytes of the .part the body continues
  if (a->status == 206) {
    if (a->range_start < 0 || a->range_start > a->offset) {
      a->local_error = absl::UnavailableError(
          absl::StrCat(a->url, ": the server answered a request for bytes ", a->offset,
                       "- with a range starting at ", a->range_start));
      return false;
    }
    keep = a->range_start;
  } else if (a->offset > 0) {
    LOG(WARNING) << a->url << ": the server ignores Range requests; downloading from the start";
  }
  if (::ftruncate(a->fd, keep) != 0 || ::lseek(a->fd, keep, SEEK_SET) < 0) {
    a->local_error = absl::ErrnoToStatus(errno, "cannot write the partial download");
    return false;
  }
  a->file_size = keep;
  struct statvfs fs;
  if (a->content_length > 0 && ::statvfs(a->folder.c_str(), &fs) == 0) {
    const int64_t available = static_cast<int64_t>(fs.f_bavail) * fs.f_frsize;
    if (available < a->content_length) {
      a->local_error = absl::ResourceExhaustedError(
          absl::StrCat(a->url, " needs ", Megabytes(a->content_length), " more but ", a->folder,
                       " has ", Megabytes(available), " free"));
      return false;
    }
  }
  return true;
}

size_t HeaderCallback(char* data, size_t size, size_t count, void* user) {
  auto* a = static_cast<Attempt*>(user);
  const size_t total = size * count;
  absl::string_view line(data, total);
  if (absl::StartsWith(line, "HTTP/")) {  // a new response (after a redirect or 100-continue)
    a->status = 0;
    a->headers_done = false;
    a->content_length = a->range_start = a->range_total = -1;
    const std::vector<absl::string_view> parts = absl::StrSplit(line, ' ');
    int status = 0;
    if (parts.size() >= 2 && absl::SimpleAtoi(parts[1], &status)) a->status = status;
    return total;
  }
  line = absl::StripAsciiWhitespace(line);
  if (line.empty()) {
    a->headers_done = true;
    return OnHeadersDone(a) ? total : 0;
  }
  const size_t colon = line.find(':');
  if (colon == absl::string_view::npos) return total;
  const absl::string_view name = line.substr(0, colon);
  const absl::string_view value = absl::StripAsciiWhitespace(line.substr(colon + 1));
  if (absl::EqualsIgnoreCase(name, "Content-Length")) {
    int64_t n;
    if (absl::SimpleAtoi(value, &n)) a->content_length = n;
  } else if (absl::EqualsIgnoreCase(name, "Content-Range")) {
    absl::string_view spec = value;
    if (absl::ConsumePrefix(&spec, "bytes ")) {
      const std::pair<absl::string_view, absl::string_view> range_total =
          absl::StrSplit(spec, absl::MaxSplits('/', 1));
      const absl::string_view start = range_total.first.substr(0, range_total.first.find('-'));
      int64_t n;
      if (absl::SimpleAtoi(start, &n)) a->range_start = n;
      if (absl::SimpleAtoi(range_total.second, &n)) a->range_total = n;
    }
  }
  return total;
}

size_t WriteCallback(char* data, size_t size, size_t count, void* user) {
  auto* a = static_cast<Attempt*>(user);
  const size_t total = size * count;
  if (!Success(a->status) || !a->headers_done) {
    // An error page: keep its start for the message.
    a->error_body.append(
        data, std::min(total, kErrorBodyBytes - std::min(kErrorBodyBytes, a->error_body.size())));
    return total;
  }
  size_t done = 0;
  while (done < total) {
    const ssize_t n = ::write(a->fd, data + done, total - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      a->local_error = absl::ErrnoToStatus(errno, "cannot write the download");
      return 0;  // aborts the transfer
    }
    done += static_cast<size_t>(n);
  }
  a->written += static_cast<int64_t>(total);
  a->file_size += static_cast<int64_t>(total);
  return total;
}

int ProgressCallback(void* user, curl_off_t total, curl_off_t now, curl_off_t, curl_off_t) {
  auto* a = static_cast<Attempt*>(user);
  const absl::Time t = absl::Now();
  if (t - a->last_log < kProgressEvery || !Success(a->status)) return 0;
  a->last_log = t;
  const double seconds = absl::ToDoubleSeconds(t - a->start);
  LOG(INFO) << a->url << ": " << Megabytes(a->file_size)
            << (total > 0 ? absl::StrCat(" of ", Megabytes(a->offset + total)) : std::string())
            << " (" << Megabytes(static_cast<int64_t>(now / std::max(seconds, 1e-3))) << "/s)";
  return 0;
}

struct CurlDeleter {
  void operator()(CURL* curl) const { curl_easy_cleanup(curl); }
};
struct SlistDeleter {
  void operator()(curl_slist* list) const { curl_slist_free_all(list); }
};

}  // namespace

std::string Megabytes(int64_t bytes) { return absl::StrFormat("%.1f MB", bytes / 1e6); }

void InitCurlOnce() {
  static std::once_flag once;
  // Not thread-safe itself, so exactly once, before any handle exists.
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

CURLcode RunAttempt(const std::vector<std::string>& headers, Attempt* a, std::string* curl_error) {
  std::unique_ptr<CURL, CurlDeleter> curl(curl_easy_init());
  if (curl == nullptr) {
    *curl_error = "curl_easy_init failed";
    return CURLE_FAILED_INIT;
  }
  std::unique_ptr<curl_slist, SlistDeleter> header_list;
  for (const std::string& header : headers) {
    header_list.reset(curl_slist_append(header_list.release(), header.c_str()));
  }
  char error_buffer[CURL_ERROR_SIZE] = {};
  const std::string range = absl::StrCat(a->offset, "-");
  CURL* c = curl.get();
  curl_easy_setopt(c, CURLOPT_URL, a->url.c_str());
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(c, CURLOPT_MAXREDIRS, 10L);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);  // loader threads may be running
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 30L);
  // A transfer slower than 1 KB/s for a minute is a stall: abort it and resume.
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1024L);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 60L);
  curl_easy_setopt(c, CURLOPT_USERAGENT, "pact-qat-datasets (libcurl)");
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, error_buffer);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, &HeaderCallback);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, a);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, &WriteCallback);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, a);
  curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, &ProgressCallback);
  curl_easy_setopt(c, CURLOPT_XFERINFODATA, a);
  curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
  if (header_list != nullptr) curl_easy_setopt(c, CURLOPT_HTTPHEADER, header_list.get());
  // CURLOPT_RANGE rather than RESUME_FROM: a server that ignores ranges answers 200, which we
  // handle by starting over, where RESUME_FROM would fail the transfer.
  if (a->offset > 0) curl_easy_setopt(c, CURLOPT_RANGE, range.c_str());
  const CURLcode code = curl_easy_perform(c);
  long status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  if (status != 0) a->status = status;
  *curl_error = error_buffer[0] != '\0' ? error_buffer : curl_easy_strerror(code);
  return code;
}

bool RetryableCurlError(CURLcode code) {
  switch (code) {
    case CURLE_PARTIAL_FILE:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_GOT_NOTHING:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
      return true;
    default:
      return false;
  }
}

}  // namespace pact::datasets::internal
