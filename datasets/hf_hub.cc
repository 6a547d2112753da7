#include "datasets/hf_hub.h"

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "datasets/http_download.h"
#include "pact/core/file.h"

namespace pact::datasets {

HfToken FindHfToken() {
  HfToken result;
  for (const char* name : {"HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"}) {
    const std::string value(absl::StripAsciiWhitespace(GetEnv(name)));
    if (!value.empty()) return {value, name};
  }
  std::vector<std::string> files;
  if (!GetEnv("HF_TOKEN_PATH").empty()) files.push_back(GetEnv("HF_TOKEN_PATH"));
  if (!GetEnv("HF_HOME").empty()) files.push_back(JoinPath(GetEnv("HF_HOME"), "token"));
  if (!GetEnv("XDG_CACHE_HOME").empty()) {
    files.push_back(JoinPath(GetEnv("XDG_CACHE_HOME"), "huggingface/token"));
  }
  if (!GetEnv("HOME").empty()) {
    files.push_back(JoinPath(GetEnv("HOME"), ".cache/huggingface/token"));
  }
  for (const std::string& file : files) {
    absl::StatusOr<std::string> contents = ReadFile(file);
    if (!contents.ok()) continue;
    const std::string token(absl::StripAsciiWhitespace(*contents));
    if (!token.empty()) return {token, file};
  }
  result.source =
      absl::StrCat("env HF_TOKEN", files.empty() ? "" : " and ", absl::StrJoin(files, ", "));
  return result;
}

std::string HfEndpoint() {
  std::string endpoint = GetEnv("HF_ENDPOINT");
  while (!endpoint.empty() && endpoint.back() == '/') endpoint.pop_back();
  return endpoint.empty() ? "https://huggingface.co" : endpoint;
}

DownloadRequest HfDatasetFileRequest(absl::string_view endpoint, absl::string_view repo,
                                     absl::string_view file, const HfToken& token,
                                     const std::string& destination) {
  DownloadRequest request;
  request.url = absl::StrCat(endpoint, "/datasets/", repo, "/resolve/main/", file);
  request.destination = destination;
  // libcurl does not forward it to the CDN host that Hub files redirect to.
  if (!token.token.empty()) {
    request.headers.push_back(absl::StrCat("Authorization: Bearer ", token.token));
  }
  request.permission_hint = absl::StrCat(
      repo,
      " is gated: log in to https://huggingface.co, accept its terms at "
      "https://huggingface.co/datasets/",
      repo,
      ", then run `huggingface-cli "
      "login` or set HF_TOKEN to a token of that account (",
      token.token.empty()
          ? absl::StrCat("no token found; looked in ", token.source)
          : absl::StrCat("the token from ", token.source, " was refused or has no access"),
      ")");
  return request;
}

}  // namespace pact::datasets
