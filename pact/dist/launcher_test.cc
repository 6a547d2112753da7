#include "pact/dist/launcher.h"

#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pact/core/test_util.h"
#include "pact/dist/test_workers.h"

namespace pact::dist {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::string Read(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

TEST(RemoveFlagsTest, EverySpelling) {
  const std::vector<std::string> args = {"train",
                                         "--nproc_per_node=2",
                                         "--recipe=r.pbtxt",
                                         "--nproc-per-node",
                                         "4",
                                         "-nnodes=1",
                                         "--epochs",
                                         "3",
                                         "--node_rank",
                                         "0",
                                         "--",
                                         "--nproc_per_node=9"};
  EXPECT_THAT(
      RemoveFlags(args, {"nproc_per_node", "nnodes", "node_rank"}),
      ElementsAre("train", "--recipe=r.pbtxt", "--epochs", "3", "--", "--nproc_per_node=9"));
}

TEST(LauncherTest, SetsTheTorchrunEnvironment) {
  const std::string dir = ::pact::testing::TestTempDir("env");
  LaunchOptions options;
  options.nproc_per_node = 3;
  options.executable = "/bin/sh";
  options.args = {"sh", "-c",
                  absl::StrCat("echo $RANK $LOCAL_RANK $WORLD_SIZE $LOCAL_WORLD_SIZE $MASTER_ADDR "
                               "$GROUP_RANK > ",
                               dir, "/$RANK; echo $MASTER_PORT > ", dir, "/port.$RANK")};
  PACT_ASSERT_OK_AND_ASSIGN(int code, RunLocalWorkers(options));
  EXPECT_EQ(code, 0);
  for (int rank = 0; rank < 3; ++rank) {
    EXPECT_EQ(Read(absl::StrCat(dir, "/", rank)),
              absl::StrCat(rank, " ", rank, " 3 3 127.0.0.1 0\n"));
  }
  EXPECT_EQ(Read(dir + "/port.0"), Read(dir + "/port.2"));
}

TEST(LauncherTest, NodeRankOffsetsTheRanks) {
  const std::string dir = ::pact::testing::TestTempDir("nodes");
  LaunchOptions options;
  options.nproc_per_node = 2;
  options.nnodes = 3;
  options.node_rank = 2;
  options.master_addr = "10.1.2.3";
  options.executable = "/bin/sh";
  options.args = {
      "sh", "-c",
      absl::StrCat("echo $RANK $WORLD_SIZE $MASTER_ADDR $MASTER_PORT > ", dir, "/$LOCAL_RANK")};
  PACT_ASSERT_OK_AND_ASSIGN(int code, RunLocalWorkers(options));
  EXPECT_EQ(code, 0);
  EXPECT_EQ(Read(dir + "/0"), "4 6 10.1.2.3 29500\n");
  EXPECT_EQ(Read(dir + "/1"), "5 6 10.1.2.3 29500\n");
}

TEST(LauncherTest, FailsWhenAWorkerFailsAndKillsStragglers) {
  LaunchOptions options;
  options.nproc_per_node = 2;
  options.executable = "/bin/sh";
  // Rank 1 fails at once; rank 0 would run for a minute.
  options.args = {"sh", "-c", "if [ $RANK = 1 ]; then exit 7; fi; exec sleep 60"};
  options.grace = absl::Seconds(1);
  const absl::Time start = absl::Now();
  PACT_ASSERT_OK_AND_ASSIGN(int code, RunLocalWorkers(options));
  EXPECT_EQ(code, 1);
  EXPECT_LT(absl::Now() - start, absl::Seconds(20));
}

TEST(LauncherTest, ForwardsSigtermOnce) {
  const std::string dir = ::pact::testing::TestTempDir("signal");
  LaunchOptions options;
  options.nproc_per_node = 2;
  options.executable = "/bin/sh";
  // Each worker counts the TERMs it gets and exits 0 a moment after the first.
  options.args = {"sh", "-c",
                  absl::StrCat("n=0; trap 'n=$((n+1))' TERM; touch ", dir,
                               "/ready.$RANK; while [ $n = 0 ]; do sleep 0.05; done; sleep 0.5; "
                               "echo $n > ",
                               dir, "/terms.$RANK")};
  std::thread signaller([&] {
    testing::WaitForFile(dir + "/ready.0", absl::Seconds(20));
    testing::WaitForFile(dir + "/ready.1", absl::Seconds(20));
    kill(getpid(), SIGTERM);
  });
  PACT_ASSERT_OK_AND_ASSIGN(int code, RunLocalWorkers(options));
  signaller.join();
  EXPECT_EQ(code, 0);
  EXPECT_EQ(Read(dir + "/terms.0"), "1\n");
  EXPECT_EQ(Read(dir + "/terms.1"), "1\n");
}

TEST(LauncherTest, RejectsBadOptions) {
  LaunchOptions options;
  options.args = {"x"};
  options.nproc_per_node = 0;
  EXPECT_FALSE(RunLocalWorkers(options).ok());
  options.nproc_per_node = 1;
  options.nnodes = 2;
  options.node_rank = 2;
  EXPECT_FALSE(RunLocalWorkers(options).ok());
  options.node_rank = 1;
  unsetenv("MASTER_ADDR");
  EXPECT_THAT(RunLocalWorkers(options).status().message(), HasSubstr("needs MASTER_ADDR"));
  setenv("WORLD_SIZE", "2", 1);
  LaunchOptions plain;
  plain.args = {"x"};
  EXPECT_THAT(RunLocalWorkers(plain).status().message(), HasSubstr("unset them"));
  unsetenv("WORLD_SIZE");
}

}  // namespace
}  // namespace pact::dist
