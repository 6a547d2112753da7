// One libcurl GET into a partial file, resuming with a Range request: the transfer step of
// DownloadFile (http_download.h), which decides about retries, MD5 checks and renaming.
#ifndef PACT_DATASETS_HTTP_TRANSFER_H_
#define PACT_DATASETS_HTTP_TRANSFER_H_

#include <curl/curl.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace pact::datasets::internal {

// Progress is logged this often, by transfers and extractions.
inline constexpr absl::Duration kProgressEvery = absl::Seconds(10);

// "12.3 MB".
std::string Megabytes(int64_t bytes);

// Calls curl_global_init once per process (it is not thread-safe itself).
void InitCurlOnce();

// One HTTP attempt's state, shared with libcurl's callbacks.
struct Attempt {
  int fd = -1;
  int64_t offset = 0;  // .part size when the request was sent (the Range start)
  std::string folder;  // for the free-space check
  std::string url;
  // The response being received (a redirect starts a new one).
  long status = 0;
  bool headers_done = false;
  int64_t content_length = -1;
  int64_t range_start = -1;  // from "Content-Range: bytes start-end/total"
  int64_t range_total = -1;  // from "Content-Range: bytes */total" (416)
  // Results.
  int64_t file_size = 0;  // bytes in the .part now
  int64_t written = 0;    // bytes written by this attempt
  std::string error_body;
  absl::Status local_error;  // a local failure that aborted the transfer (disk, write)
  absl::Time start;
  absl::Time last_log;
};

// Runs one HTTP GET of a->url into the open .part a->fd (holding a->offset bytes), sending
// `headers`. The body of a 2xx answer lands in the .part at the offset the server resumed from;
// an error page's start lands in a->error_body.
CURLcode RunAttempt(const std::vector<std::string>& headers, Attempt* a, std::string* curl_error);

// True for libcurl errors after which a retry may get further (dropped, stalled, reset).
bool RetryableCurlError(CURLcode code);

}  // namespace pact::datasets::internal

#endif  // PACT_DATASETS_HTTP_TRANSFER_H_
