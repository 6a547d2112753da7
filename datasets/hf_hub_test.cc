// Hub credentials, endpoint and file requests.
#include "datasets/hf_hub.h"

#include <string>

#include "datasets/test_fixtures.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pact/core/file.h"
#include "pact/core/test_util.h"

namespace pact::datasets {
namespace {

using ::pact::datasets::testing::ScopedEnv;
using ::pact::datasets::testing::WriteFileOrFail;
using ::pact::testing::TestTempDir;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(HfTokenTest, EnvironmentFirstThenTokenFiles) {
  const std::string dir = TestTempDir("hf_token");
  ScopedEnv env;
  for (const char* name :
       {"HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_TOKEN_PATH", "HF_HOME", "XDG_CACHE_HOME"}) {
    env.Unset(name);
  }
  env.Set("HOME", dir);
  HfToken none = FindHfToken();
  EXPECT_EQ(none.token, "");
  EXPECT_THAT(none.source, HasSubstr(dir + "/.cache/huggingface/token"));

  PACT_ASSERT_OK(MakeDirs(dir + "/.cache/huggingface"));
  WriteFileOrFail(dir + "/.cache/huggingface/token", "hf_from_cli_login\n");
  EXPECT_EQ(FindHfToken().token, "hf_from_cli_login");
  EXPECT_EQ(FindHfToken().source, dir + "/.cache/huggingface/token");

  WriteFileOrFail(dir + "/token", "hf_from_hf_home");
  env.Set("HF_HOME", dir);
  EXPECT_EQ(FindHfToken().token, "hf_from_hf_home");

  env.Set("HF_TOKEN", "hf_from_env");
  EXPECT_EQ(FindHfToken().token, "hf_from_env");
  EXPECT_EQ(FindHfToken().source, "HF_TOKEN");
}

TEST(HfTokenTest, EndpointDefaultAndOverride) {
  ScopedEnv env;
  env.Unset("HF_ENDPOINT");
  EXPECT_EQ(HfEndpoint(), "https://huggingface.co");
  env.Set("HF_ENDPOINT", "https://hf-mirror.example/");
  EXPECT_EQ(HfEndpoint(), "https://hf-mirror.example");
}

TEST(HfDatasetFileRequestTest, UrlTokenAndAccessHint) {
  const HfToken token{"hf_secret", "HF_TOKEN"};
  const DownloadRequest request =
      HfDatasetFileRequest("https://hf.example", "org/data", "data/x.tar.gz", token, "/d/x");
  EXPECT_EQ(request.url, "https://hf.example/datasets/org/data/resolve/main/data/x.tar.gz");
  EXPECT_EQ(request.destination, "/d/x");
  EXPECT_THAT(request.headers, ElementsAre("Authorization: Bearer hf_secret"));
  EXPECT_THAT(request.permission_hint, HasSubstr("org/data is gated"));
  EXPECT_THAT(request.permission_hint, HasSubstr("the token from HF_TOKEN was refused"));

  const DownloadRequest anonymous = HfDatasetFileRequest(
      "https://hf.example", "org/data", "f", HfToken{"", "env HF_TOKEN and ~/t"}, "/d/f");
  EXPECT_TRUE(anonymous.headers.empty());
  EXPECT_THAT(anonymous.permission_hint, HasSubstr("no token found; looked in env HF_TOKEN"));
}

}  // namespace
}  // namespace pact::datasets
