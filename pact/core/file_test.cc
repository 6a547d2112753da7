#include "pact/core/file.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pact/core/test_util.h"

namespace pact {
namespace {

using ::pact::testing::TestTempDir;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// The names in `dir`, sorted.
std::vector<std::string> Listing(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    names.push_back(entry.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

std::string ReadOrEmpty(const std::string& path) {
  absl::StatusOr<std::string> contents = ReadFile(path);
  return contents.ok() ? *contents : "";
}

TEST(JoinPathTest, OneSlashBetweenPieces) {
  EXPECT_EQ(JoinPath("a", "b"), "a/b");
  EXPECT_EQ(JoinPath("a/", "b"), "a/b");
  EXPECT_EQ(JoinPath("", "b"), "b");
  EXPECT_EQ(JoinPath("/", "b"), "/b");
  EXPECT_EQ(JoinPath("a/b", "c/d.txt"), "a/b/c/d.txt");
}

TEST(PathTest, ExistsAndIsDirectory) {
  const std::string dir = TestTempDir("exists");
  const std::string file = JoinPath(dir, "f");
  EXPECT_TRUE(PathExists(dir));
  EXPECT_TRUE(IsDirectory(dir));
  EXPECT_FALSE(PathExists(file));
  PACT_ASSERT_OK(WriteFileAtomically(file, "x"));
  EXPECT_TRUE(PathExists(file));
  EXPECT_FALSE(IsDirectory(file));
  EXPECT_FALSE(IsDirectory(JoinPath(dir, "missing")));
}

TEST(ReadFileTest, ReadsWholeFilesAndNamesThePathOnErrors) {
  const std::string dir = TestTempDir("read");
  std::string binary(200000, '\0');  // several read(2) calls' worth
  for (size_t i = 0; i < binary.size(); ++i) binary[i] = static_cast<char>(i * 13);
  PACT_ASSERT_OK(WriteFileAtomically(JoinPath(dir, "f"), binary));
  EXPECT_EQ(ReadOrEmpty(JoinPath(dir, "f")), binary);
  PACT_ASSERT_OK(WriteFileAtomically(JoinPath(dir, "empty"), ""));
  PACT_ASSERT_OK_AND_ASSIGN(const std::string empty, ReadFile(JoinPath(dir, "empty")));
  EXPECT_EQ(empty, "");

  const absl::Status missing = ReadFile(JoinPath(dir, "missing")).status();
  EXPECT_EQ(missing.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(missing.message()), HasSubstr(JoinPath(dir, "missing")));

  const absl::Status folder = ReadFile(dir).status();
  EXPECT_EQ(folder.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(folder.message()), HasSubstr(dir));
  EXPECT_THAT(std::string(folder.message()), HasSubstr("is a folder"));
}

TEST(ReadFileTest, UnreadableIsPermissionDenied) {
  if (::geteuid() == 0) GTEST_SKIP() << "root reads every file";
  const std::string path = JoinPath(TestTempDir("unreadable"), "secret");
  PACT_ASSERT_OK(WriteFileAtomically(path, "x"));
  ASSERT_EQ(::chmod(path.c_str(), 0), 0);
  const absl::Status status = ReadFile(path).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(std::string(status.message()), HasSubstr(path));
}

TEST(MakeDirsTest, CreatesParentsAndAcceptsExistingFolders) {
  const std::string dir = TestTempDir("mkdirs");
  const std::string deep = JoinPath(dir, "a/b/c");
  PACT_ASSERT_OK(MakeDirs(deep));
  EXPECT_TRUE(IsDirectory(deep));
  PACT_EXPECT_OK(MakeDirs(deep));
  PACT_EXPECT_OK(MakeDirs(deep + "/"));
  PACT_EXPECT_OK(MakeDirs(""));
}

TEST(MakeDirsTest, AFileInTheWayIsAnErrorNamingTheFolder) {
  const std::string dir = TestTempDir("mkdirs_file");
  PACT_ASSERT_OK(WriteFileAtomically(JoinPath(dir, "f"), "x"));
  const std::string wanted = JoinPath(dir, "f/sub");
  const absl::Status status = MakeDirs(wanted);
  EXPECT_FALSE(status.ok());
  EXPECT_THAT(std::string(status.message()), HasSubstr(wanted));
  EXPECT_FALSE(MakeDirs(JoinPath(dir, "f")).ok());
}

TEST(WriteFileAtomicallyTest, WritesAndReplacesLeavingNoTemporary) {
  const std::string dir = TestTempDir("atomic");
  const std::string path = JoinPath(dir, "out.txt");
  PACT_ASSERT_OK(WriteFileAtomically(path, "first, longer"));
  EXPECT_EQ(ReadOrEmpty(path), "first, longer");
  PACT_ASSERT_OK(WriteFileAtomically(path, "second"));
  EXPECT_EQ(ReadOrEmpty(path), "second");
  EXPECT_THAT(Listing(dir), ElementsAre("out.txt"));
}

TEST(WriteFileAtomicallyTest, MissingFolderIsAnErrorNamingThePath) {
  const std::string path = JoinPath(TestTempDir("atomic_nofolder"), "none/x.txt");
  const absl::Status status = WriteFileAtomically(path, "x");
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(status.message()), HasSubstr(path));
}

TEST(WriteFileAtomicallyTest, UnwritableFolderLeavesTheOldFile) {
  if (::geteuid() == 0) GTEST_SKIP() << "root writes every folder";
  const std::string dir = TestTempDir("atomic_readonly");
  const std::string path = JoinPath(dir, "out.txt");
  PACT_ASSERT_OK(WriteFileAtomically(path, "old"));
  ASSERT_EQ(::chmod(dir.c_str(), 0555), 0);
  const absl::Status status = WriteFileAtomically(path, "new");
  ::chmod(dir.c_str(), 0755);
  EXPECT_EQ(status.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(ReadOrEmpty(path), "old");
  EXPECT_THAT(Listing(dir), ElementsAre("out.txt"));
}

TEST(WriteFileAtomicallyWithTest, WriterFillsTheTemporaryThenItIsRenamed) {
  const std::string dir = TestTempDir("atomic_with");
  const std::string path = JoinPath(dir, "image.png");
  std::string seen;
  PACT_ASSERT_OK(WriteFileAtomicallyWith(path, [&seen](const std::string& tmp) {
    seen = tmp;
    return AppendToFile(tmp, "png bytes");
  }));
  EXPECT_NE(seen, path);
  EXPECT_EQ(seen.substr(0, dir.size()), dir);  // same folder: rename never crosses devices
  EXPECT_EQ(ReadOrEmpty(path), "png bytes");
  EXPECT_THAT(Listing(dir), ElementsAre("image.png"));
}

TEST(WriteFileAtomicallyWithTest, FailingWriterLeavesTheOldFileAndNoTemporary) {
  const std::string dir = TestTempDir("atomic_with_fail");
  const std::string path = JoinPath(dir, "ckpt.pt");
  PACT_ASSERT_OK(WriteFileAtomically(path, "old"));
  const absl::Status status = WriteFileAtomicallyWith(path, [](const std::string& tmp) {
    EXPECT_TRUE(AppendToFile(tmp, "half written").ok());
    return absl::DataLossError("disk full");
  });
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(ReadOrEmpty(path), "old");
  EXPECT_THAT(Listing(dir), ElementsAre("ckpt.pt"));
}

TEST(WriteFileAtomicallyWithTest, WriterThatCreatesNothingIsAnError) {
  const std::string dir = TestTempDir("atomic_with_nothing");
  const absl::Status status = WriteFileAtomicallyWith(
      JoinPath(dir, "x"), [](const std::string&) { return absl::OkStatus(); });
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(Listing(dir).empty());
}

TEST(WriteFileAtomicallyWithTest, WithoutSyncStillRenamesAndCleansUp) {
  const std::string dir = TestTempDir("atomic_nosync");
  const std::string path = JoinPath(dir, "x");
  AtomicWriteOptions options;
  options.sync = false;
  PACT_ASSERT_OK(WriteFileAtomicallyWith(
      path, [](const std::string& tmp) { return AppendToFile(tmp, "new"); }, options));
  EXPECT_EQ(ReadOrEmpty(path), "new");
  EXPECT_FALSE(WriteFileAtomicallyWith(
                   path,
                   [](const std::string& tmp) {
                     EXPECT_TRUE(AppendToFile(tmp, "half").ok());
                     return absl::InternalError("no");
                   },
                   options)
                   .ok());
  EXPECT_EQ(ReadOrEmpty(path), "new");
  EXPECT_THAT(Listing(dir), ElementsAre("x"));
  PACT_EXPECT_OK(SyncFileSystem(dir));
}

TEST(SyncAndRenameTest, RenamesOverTheTargetAndKeepsTheSourceOnFailure) {
  const std::string dir = TestTempDir("sync_rename");
  PACT_ASSERT_OK(WriteFileAtomically(JoinPath(dir, "a.part"), "new"));
  PACT_ASSERT_OK(WriteFileAtomically(JoinPath(dir, "a"), "old"));
  PACT_ASSERT_OK(SyncAndRename(JoinPath(dir, "a.part"), JoinPath(dir, "a")));
  EXPECT_EQ(ReadOrEmpty(JoinPath(dir, "a")), "new");
  EXPECT_THAT(Listing(dir), ElementsAre("a"));

  PACT_ASSERT_OK(WriteFileAtomically(JoinPath(dir, "b.part"), "b"));
  EXPECT_FALSE(SyncAndRename(JoinPath(dir, "b.part"), JoinPath(dir, "none/b")).ok());
  EXPECT_EQ(ReadOrEmpty(JoinPath(dir, "b.part")), "b");
}

TEST(AppendToFileTest, CreatesThenAppendsNeverTruncating) {
  const std::string dir = TestTempDir("append");
  const std::string path = JoinPath(dir, "metrics.jsonl");
  PACT_ASSERT_OK(AppendToFile(path, "one\n"));
  PACT_ASSERT_OK(AppendToFile(path, "two\n"));
  PACT_ASSERT_OK(AppendToFile(path, ""));
  EXPECT_EQ(ReadOrEmpty(path), "one\ntwo\n");
  EXPECT_FALSE(AppendToFile(JoinPath(dir, "none/x"), "x").ok());
}

TEST(GetEnvTest, EmptyWhenUnset) {
  ASSERT_EQ(::setenv("PACT_FILE_TEST_VAR", "value", 1), 0);
  EXPECT_EQ(GetEnv("PACT_FILE_TEST_VAR"), "value");
  ASSERT_EQ(::unsetenv("PACT_FILE_TEST_VAR"), 0);
  EXPECT_EQ(GetEnv("PACT_FILE_TEST_VAR"), "");
}

TEST(TestTempDirTest, FreshEmptyAndUniquePerCall) {
  const std::string a = TestTempDir("same");
  const std::string b = TestTempDir("same");
  EXPECT_NE(a, b);
  EXPECT_TRUE(IsDirectory(a));
  EXPECT_TRUE(Listing(a).empty());
  const std::string tmp = GetEnv("TEST_TMPDIR");
  if (!tmp.empty()) {
    EXPECT_EQ(a.substr(0, tmp.size()), tmp);
  }
}

}  // namespace
}  // namespace pact
