#include "datasets/file_io.h"

#include <string>

#include "absl/status/status.h"
#include "datasets/test_fixtures.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pact/core/test_util.h"

namespace pact::datasets {
namespace {

using ::pact::datasets::testing::GzipCompress;
using ::pact::datasets::testing::WriteFileOrFail;
using ::pact::testing::TestTempDir;
using ::testing::HasSubstr;

TEST(GunzipTest, RoundTrips) {
  std::string data;
  for (int i = 0; i < 100000; ++i) data.push_back(static_cast<char>((i * i) % 251));
  const absl::StatusOr<std::string> out = Gunzip(GzipCompress(data), "x.gz");
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(*out, data);
  EXPECT_EQ(Gunzip(GzipCompress(""), "empty.gz").value(), "");
}

TEST(GunzipTest, ConcatenatedMembersAreOneStream) {
  const absl::StatusOr<std::string> out =
      Gunzip(GzipCompress("hello ") + GzipCompress("world"), "two.gz");
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(*out, "hello world");
}

TEST(GunzipTest, CorruptIsDataLossNamingTheFile) {
  std::string gz = GzipCompress(std::string(10000, 'a') + "some text to compress");
  for (size_t i = 12; i < gz.size() - 8; ++i) gz[i] = static_cast<char>(gz[i] ^ 0x5a);
  const absl::Status status = Gunzip(gz, "bad.gz").status();
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(status.message(), HasSubstr("bad.gz: corrupt gzip data"));
}

TEST(GunzipTest, BadChecksumIsDataLoss) {
  std::string gz = GzipCompress("payload");
  gz[gz.size() - 6] ^= 1;  // the CRC32 trailer
  const absl::Status status = Gunzip(gz, "crc.gz").status();
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(status.message(), HasSubstr("crc.gz"));
}

TEST(GunzipTest, TruncatedIsDataLoss) {
  std::string data;
  for (int i = 0; i < 50000; ++i) data.push_back(static_cast<char>((i * 7) % 13));
  const std::string gz = GzipCompress(data);
  const absl::Status status = Gunzip(gz.substr(0, gz.size() / 2), "half.gz").status();
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(status.message(), HasSubstr("half.gz: truncated gzip data"));
}

TEST(ReadMaybeGzippedFileTest, DecompressesByMagicAndPassesRawThrough) {
  const std::string dir = TestTempDir("maybe_gz");
  WriteFileOrFail(dir + "/a.gz", GzipCompress("compressed"));
  WriteFileOrFail(dir + "/b", "raw bytes");
  EXPECT_EQ(ReadMaybeGzippedFile(dir + "/a.gz").value(), "compressed");
  EXPECT_EQ(ReadMaybeGzippedFile(dir + "/b").value(), "raw bytes");
}

}  // namespace
}  // namespace pact::datasets
