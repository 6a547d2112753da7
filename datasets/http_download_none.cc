// DownloadFile for builds without libcurl (the CMake build without it, or with
// -DPACT_DISABLE=curl): every download fails, saying what to fetch by hand.
#include "absl/strings/str_cat.h"
#include "datasets/http_download.h"

namespace pact::datasets {

absl::Status DownloadFile(const DownloadRequest& request) {
  return absl::UnimplementedError(absl::StrCat(
      "this build has no downloads (built without libcurl): fetch ", request.url, " to ",
      request.destination, " by hand",
      request.manual_hint.empty() ? "" : absl::StrCat(" (", request.manual_hint, ")")));
}

}  // namespace pact::datasets
