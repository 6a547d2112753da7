// The stand-ins a build without libcurl or libarchive links (http_download_none.cc,
// archive_none.cc): each refusal says what to do by hand.
#include "datasets/archive.h"
#include "datasets/http_download.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pact::datasets {
namespace {

using ::testing::HasSubstr;

TEST(WithoutLibrariesTest, DownloadsSayWhatToFetchByHand) {
  DownloadRequest request;
  request.url = "https://example.org/cifar-10-binary.tar.gz";
  request.destination = "data/cifar10/cifar-10-binary.tar.gz";
  request.manual_hint = "then extract it there";
  const absl::Status status = DownloadFile(request);
  EXPECT_EQ(status.code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("built without libcurl): fetch https://example.org/cifar-10-binary.tar.gz "
                        "to data/cifar10/cifar-10-binary.tar.gz by hand (then extract it there)"));
}

TEST(WithoutLibrariesTest, ArchivesSayWhatToExtractByHand) {
  const absl::Status status = ExtractArchive("a.tar.gz", "out").status();
  EXPECT_EQ(status.code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("built without libarchive): extract a.tar.gz into out by hand"));
}

}  // namespace
}  // namespace pact::datasets
