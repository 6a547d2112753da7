#include "datasets/file_io.h"

#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include "absl/status/status.h"
#include "datasets/test_fixtures.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pact::datasets {
namespace {

using ::pact::datasets::testing::GzipCompress;
using ::pact::datasets::testing::MakeTempDir;
using ::pact::datasets::testing::WriteFileOrFail;
using ::testing::HasSubstr;

TEST(ReadFileTest, ReadsWholeFile) {
  const std::string dir = MakeTempDir("read_whole");
  std::string data(200000, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 13);
  WriteFileOrFail(dir + "/f", data);
  const absl::StatusOr<std::string> read = ReadFile(dir + "/f");
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, data);
  WriteFileOrFail(dir + "/empty", "");
  EXPECT_EQ(ReadFile(dir + "/empty").value(), "");
}

TEST(ReadFileTest, MissingIsNotFoundNamingThePath) {
  const std::string path = MakeTempDir("read_missing") + "/nope.bin";
  const absl::Status status = ReadFile(path).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(status.message(), HasSubstr(path));
}

TEST(ReadFileTest, FolderIsFailedPrecondition) {
  const std::string dir = MakeTempDir("read_folder");
  const absl::Status status = ReadFile(dir).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(status.message(), HasSubstr(dir));
  EXPECT_THAT(status.message(), HasSubstr("is a folder"));
}

TEST(ReadFileTest, UnreadableIsPermissionDenied) {
  if (::geteuid() == 0) GTEST_SKIP() << "root reads files whatever their mode";
  const std::string path = MakeTempDir("read_unreadable") + "/secret";
  WriteFileOrFail(path, "x");
  ASSERT_EQ(::chmod(path.c_str(), 0), 0);
  const absl::Status status = ReadFile(path).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(status.message(), HasSubstr(path));
}

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
  const std::string dir = MakeTempDir("maybe_gz");
  WriteFileOrFail(dir + "/a.gz", GzipCompress("compressed"));
  WriteFileOrFail(dir + "/b", "raw bytes");
  EXPECT_EQ(ReadMaybeGzippedFile(dir + "/a.gz").value(), "compressed");
  EXPECT_EQ(ReadMaybeGzippedFile(dir + "/b").value(), "raw bytes");
}

TEST(JoinPathTest, OneSlash) {
  EXPECT_EQ(JoinPath("a", "b"), "a/b");
  EXPECT_EQ(JoinPath("a/", "b"), "a/b");
  EXPECT_EQ(JoinPath("", "b"), "b");
}

}  // namespace
}  // namespace pact::datasets
