#include "pact/train/run_outputs.h"

#include <string>

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "pact/core/file.h"
#include "pact/core/test_util.h"

namespace pact::train {
namespace {

// A folder with a run in it: checkpoints/last.pt and a metrics row.
std::string FolderWithARun(const std::string& name) {
  const std::string dir = testing::TestTempDir(name);
  EXPECT_TRUE(MakeDirs(JoinPath(dir, "checkpoints")).ok());
  EXPECT_TRUE(WriteFileAtomically(CheckpointPath(dir, "last"), "checkpoint bytes").ok());
  return dir;
}

TEST(CheckRunFolderTest, EmptyOrMissingFolderIsFine) {
  const std::string dir = testing::TestTempDir("fresh");
  PACT_EXPECT_OK(CheckRunFolder(dir, "", false));
  PACT_EXPECT_OK(CheckRunFolder(JoinPath(dir, "not/there"), "", false));
}

TEST(CheckRunFolderTest, RefusesToClobberARunAndNamesBothWaysOut) {
  const std::string dir = FolderWithARun("clobber");
  const absl::Status status = CheckRunFolder(dir, "", false);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(status.message(), "--resume=" + dir)) << status;
  EXPECT_TRUE(absl::StrContains(status.message(), "--overwrite")) << status;
  // Nothing changed.
  PACT_ASSERT_OK_AND_ASSIGN(std::string bytes, ReadFile(CheckpointPath(dir, "last")));
  EXPECT_EQ(bytes, "checkpoint bytes");
}

TEST(CheckRunFolderTest, ResumingThatFolderOrOverwritingIsFine) {
  const std::string dir = FolderWithARun("resume_same");
  PACT_EXPECT_OK(CheckRunFolder(dir, dir, false));
  PACT_EXPECT_OK(CheckRunFolder(dir, dir + "/", false));
  PACT_EXPECT_OK(CheckRunFolder(dir, CheckpointPath(dir, "best"), false));
  PACT_EXPECT_OK(CheckRunFolder(dir, "", true));
}

TEST(CheckRunFolderTest, ResumingAnotherRunIntoThisOneRefuses) {
  const std::string dir = FolderWithARun("resume_into");
  const std::string other = FolderWithARun("resume_from");
  EXPECT_EQ(CheckRunFolder(dir, other, false).code(), absl::StatusCode::kFailedPrecondition);
}

TEST(CheckRunFolderTest, ResumeWithOverwriteIsContradictory) {
  const std::string dir = FolderWithARun("both");
  EXPECT_EQ(CheckRunFolder(dir, dir, true).code(), absl::StatusCode::kInvalidArgument);
}

TEST(RunOutputsTest, OverwriteRemovesTheOldCheckpoints) {
  const std::string dir = FolderWithARun("overwrite");
  PACT_ASSERT_OK(WriteFileAtomically(CheckpointPath(dir, "best_state_dict"), "x"));
  RunOutputs::Options options;
  options.output_dir = dir;
  options.recipe_text = "name: \"x\"\n";
  options.overwrite = true;
  PACT_ASSERT_OK_AND_ASSIGN(auto outputs, RunOutputs::OpenFolder(options));
  EXPECT_FALSE(PathExists(CheckpointPath(dir, "last")));
  EXPECT_FALSE(PathExists(CheckpointPath(dir, "best_state_dict")));
  EXPECT_TRUE(PathExists(JoinPath(dir, "recipe.pbtxt")));
  EXPECT_TRUE(PathExists(JoinPath(dir, "metrics.csv")));
}

}  // namespace
}  // namespace pact::train
