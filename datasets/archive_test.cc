// Archive extraction from generated .tar.gz files.
#include "datasets/archive.h"

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "datasets/test_fixtures.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pact/core/file.h"
#include "pact/core/test_util.h"

namespace pact::datasets {
namespace {

using ::pact::datasets::testing::ArchiveEntry;
using ::pact::datasets::testing::MakeTarGz;
using ::pact::datasets::testing::WriteFileOrFail;
using ::pact::testing::TestTempDir;
using ::testing::HasSubstr;

std::string ReadOrEmpty(const std::string& path) {
  absl::StatusOr<std::string> contents = ReadFile(path);
  return contents.ok() ? *contents : std::string();
}

TEST(ExtractArchiveTest, ExtractsFilesAndFolders) {
  const std::string dir = TestTempDir("extract");
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
  const std::string dir = TestTempDir("extract_existing");
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
  const std::string dir = TestTempDir("extract_unsafe");
  WriteFileOrFail(dir + "/a.tar.gz", MakeTarGz({ArchiveEntry::File("ok.txt", "ok"),
                                                ArchiveEntry::File("../evil.txt", "evil")}));
  const absl::Status status = ExtractArchive(dir + "/a.tar.gz", dir + "/out").status();
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(status.message(), HasSubstr("'../evil.txt' would be written outside"));
  EXPECT_FALSE(PathExists(dir + "/evil.txt"));
}

TEST(ExtractArchiveTest, MapperRenamesAndSkips) {
  const std::string dir = TestTempDir("extract_mapper");
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
  const std::string dir = TestTempDir("extract_truncated");
  std::string big;
  for (int64_t i = 0; i < 300000; ++i) big.push_back(static_cast<char>((i * 7919) % 251));
  const std::string archive =
      MakeTarGz({ArchiveEntry::File("first.txt", "first"), ArchiveEntry::File("big.bin", big)});
  WriteFileOrFail(dir + "/a.tar.gz", archive.substr(0, archive.size() / 2));
  const absl::Status status = ExtractArchive(dir + "/a.tar.gz", dir + "/out").status();
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(status.message(), HasSubstr(dir + "/a.tar.gz"));
  EXPECT_FALSE(PathExists(dir + "/out/big.bin"));
  // Nor a temporary: whatever is left is a whole file of the archive.
  std::vector<std::string> left;
  if (IsDirectory(dir + "/out")) {
    for (const auto& entry : std::filesystem::recursive_directory_iterator(dir + "/out")) {
      left.push_back(entry.path().filename().string());
    }
  }
  std::sort(left.begin(), left.end());
  for (const std::string& name : left) EXPECT_EQ(name, "first.txt");
}

TEST(ExtractArchiveTest, MissingOrNonArchiveFiles) {
  const std::string dir = TestTempDir("extract_bad");
  EXPECT_EQ(ExtractArchive(dir + "/none.tar.gz", dir).status().code(), absl::StatusCode::kNotFound);
  WriteFileOrFail(dir + "/junk.tar.gz", "\x1f\x8b this is not gzip");
  EXPECT_EQ(ExtractArchive(dir + "/junk.tar.gz", dir).status().code(), absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace pact::datasets
