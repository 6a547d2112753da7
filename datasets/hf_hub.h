// Hugging Face Hub access for dataset downloads: the user's token, the endpoint, and the
// request for one file of a dataset repository (gated datasets need the token).
#ifndef PACT_DATASETS_HF_HUB_H_
#define PACT_DATASETS_HF_HUB_H_

#include <string>

#include "absl/strings/string_view.h"
#include "datasets/http_download.h"

namespace pact::datasets {

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

// A DownloadRequest for `file` (e.g. "data/val_images.tar.gz") at the main revision of dataset
// repository `repo` on `endpoint`, to `destination`, sending `token` if there is one. Its
// permission_hint says how to get access to a gated repository and which token was used (or
// where none was found); the caller adds expected_md5 and manual_hint.
DownloadRequest HfDatasetFileRequest(absl::string_view endpoint, absl::string_view repo,
                                     absl::string_view file, const HfToken& token,
                                     const std::string& destination);

}  // namespace pact::datasets

#endif  // PACT_DATASETS_HF_HUB_H_
