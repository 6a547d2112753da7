// Downloads against a local HTTP server that the test starts on 127.0.0.1 (never the
// internet).
#include "datasets/http_download.h"

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "datasets/http_test_server.h"
#include "datasets/md5.h"
#include "datasets/test_fixtures.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pact/core/file.h"
#include "pact/core/test_util.h"

namespace pact::datasets {
namespace {

using ::pact::datasets::testing::HttpTestServer;
using ::pact::datasets::testing::WriteFileOrFail;
using ::pact::testing::TestTempDir;
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
      TestTempDir(::testing::UnitTest::GetInstance()->current_test_info()->name());
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

}  // namespace
}  // namespace pact::datasets
