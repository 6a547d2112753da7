// Downloads against a local HTTP server that the test starts on 127.0.0.1 (never the
// internet), archive extraction, and Hub credentials.
#include "datasets/download.h"

#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "datasets/file_io.h"
#include "datasets/http_test_server.h"
#include "datasets/md5.h"
#include "datasets/test_fixtures.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pact::datasets {
namespace {

using ::pact::datasets::testing::ArchiveEntry;
using ::pact::datasets::testing::HttpTestServer;
using ::pact::datasets::testing::MakeTarGz;
using ::pact::datasets::testing::MakeTempDir;
using ::pact::datasets::testing::ScopedEnv;
using ::pact::datasets::testing::WriteFileOrFail;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

std::string Payload(size_t size) {
  std::string data(size, '\0');
  for (size_t i = 0; i < size; ++i) data[i] = static_cast<char>((i * 131 + (i >> 8)) & 0xff);
  return data;
}

std::string ReadOrEmpty(const std::string& path) {
  absl::StatusOr<std::string> contents = ReadFile(path);
  return contents.ok() ? *contents : std::string();
}

class DownloadTest : public ::testing::Test {
 protected:
  DownloadRequest Request(const std::string& path, const std::string& name = "file.bin") {
    DownloadRequest request;
    request.url = server_.Url(path);
    request.destination = dir_ + "/" + name;
    request.expected_md5 = Md5Hex(payload_);
    request.manual_hint = "MANUAL-HINT";
    request.permission_hint = "LOGIN-HINT";
    request.retry_delay_seconds = 0;
    return request;
  }

  HttpTestServer::Resource Ok() {
    HttpTestServer::Resource r;
    r.body = payload_;
    return r;
  }

  HttpTestServer server_;
  const std::string dir_ =
      MakeTempDir(::testing::UnitTest::GetInstance()->current_test_info()->name());
  const std::string payload_ = Payload(100000);
};

TEST_F(DownloadTest, DownloadsVerifiesAndRenames) {
  server_.Serve("/f", Ok());
  const DownloadRequest request = Request("/f");
  ASSERT_TRUE(DownloadFile(request).ok());
  EXPECT_EQ(ReadOrEmpty(request.destination), payload_);
  EXPECT_FALSE(PathExists(request.destination + ".part"));
  ASSERT_EQ(server_.requests().size(), 1u);
  EXPECT_EQ(server_.requests()[0].headers.count("range"), 0u);
}

TEST_F(DownloadTest, ResumesAnExistingPartWithARangeRequest) {
  server_.Serve("/f", Ok());
  const DownloadRequest request = Request("/f");
  WriteFileOrFail(request.destination + ".part", payload_.substr(0, 1000));
  ASSERT_TRUE(DownloadFile(request).ok());
  EXPECT_EQ(ReadOrEmpty(request.destination), payload_);
  ASSERT_EQ(server_.requests().size(), 1u);
  EXPECT_EQ(server_.requests()[0].headers["range"], "bytes=1000-");
}

TEST_F(DownloadTest, StartsOverWhenTheServerIgnoresRanges) {
  HttpTestServer::Resource r = Ok();
  r.ranges = false;
  server_.Serve("/f", r);
  const DownloadRequest request = Request("/f");
  WriteFileOrFail(request.destination + ".part", "stale bytes of another attempt");
  ASSERT_TRUE(DownloadFile(request).ok());
  EXPECT_EQ(ReadOrEmpty(request.destination), payload_);
}

TEST_F(DownloadTest, ConnectionDroppedMidTransferIsResumedInTheSameCall) {
  HttpTestServer::Resource r = Ok();
  r.drops = 1;
  r.drop_after = 30000;
  server_.Serve("/f", r);
  DownloadRequest request = Request("/f");
  request.max_attempts = 3;
  ASSERT_TRUE(DownloadFile(request).ok());
  EXPECT_EQ(ReadOrEmpty(request.destination), payload_);
  const auto requests = server_.requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[0].headers.count("range"), 0u);
  EXPECT_EQ(requests.at(1).headers.at("range"), "bytes=30000-");
}

TEST_F(DownloadTest, ConnectionDroppedKeepsThePartForTheNextRun) {
  HttpTestServer::Resource r = Ok();
  r.drops = 1;
  r.drop_after = 40000;
  server_.Serve("/f", r);
  DownloadRequest request = Request("/f");
  request.max_attempts = 1;
  const absl::Status status = DownloadFile(request);
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(status.message(), HasSubstr(request.url));
  EXPECT_THAT(status.message(), HasSubstr("kept in " + request.destination + ".part"));
  EXPECT_THAT(status.message(), HasSubstr("MANUAL-HINT"));
  EXPECT_EQ(ReadOrEmpty(request.destination + ".part"), payload_.substr(0, 40000));
  EXPECT_FALSE(PathExists(request.destination));
  // The next run resumes where the first stopped.
  ASSERT_TRUE(DownloadFile(request).ok());
  EXPECT_EQ(ReadOrEmpty(request.destination), payload_);
  EXPECT_EQ(server_.requests().at(1).headers.at("range"), "bytes=40000-");
}

TEST_F(DownloadTest, Md5MismatchDeletesTheDownloadAndIsDataLoss) {
  HttpTestServer::Resource r;
  r.body = "not the file you are looking for";
  server_.Serve("/f", r);
  const DownloadRequest request = Request("/f");
  const absl::Status status = DownloadFile(request);
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(status.message(), HasSubstr("expected " + Md5Hex(payload_)));
  EXPECT_THAT(status.message(), HasSubstr(Md5Hex(r.body)));
  EXPECT_THAT(status.message(), HasSubstr("deleted the bad download"));
  EXPECT_FALSE(PathExists(request.destination));
  EXPECT_FALSE(PathExists(request.destination + ".part"));
}

TEST_F(DownloadTest, NotFoundNamesTheUrlAndTheManualWay) {
  const DownloadRequest request = Request("/missing");
  const absl::Status status = DownloadFile(request);
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(status.message(), HasSubstr(request.url + ": HTTP 404"));
  EXPECT_THAT(status.message(), HasSubstr("MANUAL-HINT"));
  EXPECT_FALSE(PathExists(request.destination));
  EXPECT_FALSE(PathExists(request.destination + ".part"));  // nothing to resume: no litter
}

TEST_F(DownloadTest, UnauthorizedAndForbiddenArePermissionDenied) {
  for (const int code : {401, 403}) {
    HttpTestServer::Resource r;
    r.status = code;
    r.body = R"({"error":"Access to dataset is restricted"})";
    server_.Serve("/gated", r);
    const DownloadRequest request = Request("/gated", "gated.bin");
    const absl::Status status = DownloadFile(request);
    EXPECT_EQ(status.code(), absl::StatusCode::kPermissionDenied) << code;
    EXPECT_THAT(status.message(), HasSubstr(absl::StrCat("HTTP ", code)));
    EXPECT_THAT(status.message(), HasSubstr("Access to dataset is restricted"));
    EXPECT_THAT(status.message(), HasSubstr("LOGIN-HINT"));
    EXPECT_FALSE(PathExists(request.destination));
  }
}

TEST_F(DownloadTest, ServerErrorsAreRetriedThenUnavailable) {
  HttpTestServer::Resource r;
  r.status = 503;
  server_.Serve("/f", r);
  DownloadRequest request = Request("/f");
  request.max_attempts = 2;
  const absl::Status status = DownloadFile(request);
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(status.message(), HasSubstr("HTTP 503"));
  EXPECT_THAT(status.message(), HasSubstr("(2 attempts)"));
  EXPECT_EQ(server_.requests().size(), 2u);
}

TEST_F(DownloadTest, UnreachableServerFailsFastWithoutRetries) {
  std::string url;
  {
    HttpTestServer closed;  // its port is closed once it is destroyed
    url = closed.Url("/f");
  }
  DownloadRequest request = Request("/f");
  request.url = url;
  request.max_attempts = 5;
  request.retry_delay_seconds = 100;  // a retry would time the test out
  const absl::Status status = DownloadFile(request);
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(status.message(), HasSubstr("cannot download " + url));
  EXPECT_THAT(status.message(), HasSubstr("MANUAL-HINT"));
  EXPECT_FALSE(PathExists(request.destination));
}

TEST_F(DownloadTest, AnExistingDestinationIsCheckedButNeverTouched) {
  server_.Serve("/f", Ok());
  const DownloadRequest request = Request("/f");
  WriteFileOrFail(request.destination, "the user's own file");
  const absl::Status status = DownloadFile(request);
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(status.message(), HasSubstr("left alone"));
  EXPECT_EQ(ReadOrEmpty(request.destination), "the user's own file");
  EXPECT_THAT(server_.requests(), IsEmpty());
}

TEST_F(DownloadTest, ACompletePartIsAcceptedOnRangeNotSatisfiable) {
  server_.Serve("/f", Ok());
  const DownloadRequest request = Request("/f");
  WriteFileOrFail(request.destination + ".part", payload_);
  ASSERT_TRUE(DownloadFile(request).ok());
  EXPECT_EQ(ReadOrEmpty(request.destination), payload_);
}

TEST_F(DownloadTest, FollowsRedirectsAndSendsHeaders) {
  HttpTestServer::Resource redirect;
  redirect.redirect = "/cdn/f";
  redirect.bearer_token = "secret";
  server_.Serve("/resolve/f", redirect);
  server_.Serve("/cdn/f", Ok());
  DownloadRequest request = Request("/resolve/f");
  request.headers = {"Authorization: Bearer secret"};
  ASSERT_TRUE(DownloadFile(request).ok());
  EXPECT_EQ(ReadOrEmpty(request.destination), payload_);
  EXPECT_EQ(server_.RequestsFor("/cdn/f").size(), 1u);
}

TEST(ExtractArchiveTest, ExtractsFilesAndFolders) {
  const std::string dir = MakeTempDir("extract");
  WriteFileOrFail(dir + "/a.tar.gz",
                  MakeTarGz({ArchiveEntry::Folder("top/"), ArchiveEntry::File("top/one.txt", "one"),
                             ArchiveEntry::File("top/sub/two.bin", std::string(70000, 'x')),
                             ArchiveEntry::File("top/empty", ""),
                             ArchiveEntry::Symlink("top/link", "one.txt")}));
  auto stats = ExtractArchive(dir + "/a.tar.gz", dir + "/out");
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->files, 3);
  EXPECT_EQ(stats->bytes, 3 + 70000);
  EXPECT_EQ(ReadOrEmpty(dir + "/out/top/one.txt"), "one");
  EXPECT_EQ(ReadOrEmpty(dir + "/out/top/sub/two.bin"), std::string(70000, 'x'));
  EXPECT_TRUE(PathExists(dir + "/out/top/empty"));
  EXPECT_FALSE(PathExists(dir + "/out/top/link"));  // symlinks are skipped
}

TEST(ExtractArchiveTest, NeverOverwritesExistingFiles) {
  const std::string dir = MakeTempDir("extract_existing");
  WriteFileOrFail(dir + "/a.tar.gz", MakeTarGz({ArchiveEntry::File("x.txt", "archive"),
                                                ArchiveEntry::File("y.txt", "archive")}));
  WriteFileOrFail(dir + "/x.txt", "mine");
  auto stats = ExtractArchive(dir + "/a.tar.gz", dir);
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->files, 1);
  EXPECT_EQ(stats->skipped_existing, 1);
  EXPECT_EQ(ReadOrEmpty(dir + "/x.txt"), "mine");
  EXPECT_EQ(ReadOrEmpty(dir + "/y.txt"), "archive");
}

TEST(ExtractArchiveTest, RejectsPathsOutsideTheDestination) {
  const std::string dir = MakeTempDir("extract_unsafe");
  WriteFileOrFail(dir + "/a.tar.gz", MakeTarGz({ArchiveEntry::File("ok.txt", "ok"),
                                                ArchiveEntry::File("../evil.txt", "evil")}));
  const absl::Status status = ExtractArchive(dir + "/a.tar.gz", dir + "/out").status();
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(status.message(), HasSubstr("'../evil.txt' would be written outside"));
  EXPECT_FALSE(PathExists(dir + "/evil.txt"));
}

TEST(ExtractArchiveTest, MapperRenamesAndSkips) {
  const std::string dir = MakeTempDir("extract_mapper");
  WriteFileOrFail(dir + "/a.tar.gz", MakeTarGz({ArchiveEntry::File("keep_1.txt", "1"),
                                                ArchiveEntry::File("drop.txt", "2")}));
  auto stats = ExtractArchive(dir + "/a.tar.gz", dir + "/out",
                              [](absl::string_view entry) -> absl::StatusOr<std::string> {
                                if (entry == "drop.txt") return std::string();
                                return absl::StrCat("renamed/", entry);
                              });
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->files, 1);
  EXPECT_EQ(ReadOrEmpty(dir + "/out/renamed/keep_1.txt"), "1");
  EXPECT_FALSE(PathExists(dir + "/out/drop.txt"));
  // A mapper error aborts the extraction with that error.
  const absl::Status status =
      ExtractArchive(dir + "/a.tar.gz", dir + "/out2", [](absl::string_view) {
        return absl::StatusOr<std::string>(absl::DataLossError("bad name"));
      }).status();
  EXPECT_EQ(status, absl::DataLossError("bad name"));
}

TEST(ExtractArchiveTest, TruncatedArchiveIsDataLossAndLeavesNoPartialFile) {
  const std::string dir = MakeTempDir("extract_truncated");
  std::string big;
  for (int64_t i = 0; i < 300000; ++i) big.push_back(static_cast<char>((i * 7919) % 251));
  const std::string archive =
      MakeTarGz({ArchiveEntry::File("first.txt", "first"), ArchiveEntry::File("big.bin", big)});
  WriteFileOrFail(dir + "/a.tar.gz", archive.substr(0, archive.size() / 2));
  const absl::Status status = ExtractArchive(dir + "/a.tar.gz", dir + "/out").status();
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(status.message(), HasSubstr(dir + "/a.tar.gz"));
  EXPECT_FALSE(PathExists(dir + "/out/big.bin"));
  EXPECT_FALSE(PathExists(dir + "/out/big.bin.pact-extracting"));
}

TEST(ExtractArchiveTest, MissingOrNonArchiveFiles) {
  const std::string dir = MakeTempDir("extract_bad");
  EXPECT_EQ(ExtractArchive(dir + "/none.tar.gz", dir).status().code(), absl::StatusCode::kNotFound);
  WriteFileOrFail(dir + "/junk.tar.gz", "\x1f\x8b this is not gzip");
  EXPECT_EQ(ExtractArchive(dir + "/junk.tar.gz", dir).status().code(), absl::StatusCode::kDataLoss);
}

TEST(HfTokenTest, EnvironmentFirstThenTokenFiles) {
  const std::string dir = MakeTempDir("hf_token");
  ScopedEnv env;
  for (const char* name :
       {"HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_TOKEN_PATH", "HF_HOME", "XDG_CACHE_HOME"}) {
    env.Unset(name);
  }
  env.Set("HOME", dir);
  HfToken none = FindHfToken();
  EXPECT_EQ(none.token, "");
  EXPECT_THAT(none.source, HasSubstr(dir + "/.cache/huggingface/token"));

  ASSERT_EQ(system(("mkdir -p " + dir + "/.cache/huggingface").c_str()), 0);
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

}  // namespace
}  // namespace pact::datasets
