// Dataset downloads: resumable HTTP(S) transfers with libcurl and MD5 verification. Archives
// are extracted by archive.h; Hugging Face Hub credentials and URLs come from hf_hub.h.
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
#ifndef PACT_DATASETS_HTTP_DOWNLOAD_H_
#define PACT_DATASETS_HTTP_DOWNLOAD_H_

#include <string>
#include <vector>

#include "absl/status/status.h"

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

}  // namespace pact::datasets

#endif  // PACT_DATASETS_HTTP_DOWNLOAD_H_
