// c10d over real processes on 127.0.0.1: collectives, and the failure modes a job must survive
// (a rank that dies, hangs or never starts) ending every rank with a clear error in time.
#include "pact/dist/process_group.h"

#include <signal.h>
#include <sys/wait.h>
#include <torch/torch.h>

#include <cstdlib>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pact/core/test_util.h"
#include "pact/dist/env.h"
#include "pact/dist/test_workers.h"

namespace pact::dist {
namespace {

using ::testing::HasSubstr;
using testing::WaitForFile;
using testing::Workers;

double TimeoutSeconds() {
  double seconds = 30;
  if (const char* value = std::getenv("PACT_TEST_TIMEOUT_S"))
    (void)absl::SimpleAtod(value, &seconds);
  return seconds;
}

absl::StatusOr<std::shared_ptr<ProcessGroup>> ConnectFromEnvironment() {
  absl::StatusOr<DistEnv> env = ReadDistEnv();
  if (!env.ok()) return env.status();
  GroupOptions options;
  options.timeout = absl::Seconds(TimeoutSeconds());
  return ProcessGroup::Connect(*env, options);
}

// Role "collectives": every collective once, checked on every rank.
int RunCollectives() {
  auto group = ConnectFromEnvironment();
  if (!group.ok()) {
    std::cerr << group.status() << "\n";
    return 1;
  }
  ProcessGroup& g = **group;
  std::vector<double> values = {g.rank() + 1.0, 0.5};
  absl::Status status = g.AllReduceSum(&values, "sum");
  if (!status.ok() || values[0] != 3.0 || values[1] != 1.0) {
    std::cerr << "AllReduceSum: " << status << " " << values[0] << " " << values[1] << "\n";
    return 1;
  }
  // Mixed dtypes, one on rank 0 differs from the others: everyone ends with rank 0's.
  torch::manual_seed(100 + g.rank());
  std::vector<torch::Tensor> tensors = {torch::randn({3, 4}),
                                        torch::full({5}, g.rank(), torch::kLong),
                                        torch::randn({2}).requires_grad_()};
  torch::manual_seed(100);
  const torch::Tensor expected = torch::randn({3, 4});
  status = g.Broadcast(tensors, 0, "broadcast");
  if (!status.ok() || !torch::equal(tensors[0], expected) ||
      tensors[1].sum().item<int64_t>() != 0) {
    std::cerr << "Broadcast: " << status << "\n";
    return 1;
  }
  torch::Tensor flat = torch::full({1000}, static_cast<float>(g.rank()));
  auto work = g.StartAllReduceSum(flat, "async");
  if (!work.ok() || !(*work)->Wait().ok() || flat[999].item<float>() != 1.0f) {
    std::cerr << "StartAllReduceSum failed\n";
    return 1;
  }
  status = g.Barrier("barrier");
  if (!status.ok()) {
    std::cerr << status << "\n";
    return 1;
  }
  return 0;
}

// Role "loop": allreduces every 20 ms for up to a minute; touches <dir>/ready.<rank> after the
// first. Exits 3 with the error on stderr when a collective fails.
int RunLoop() {
  auto group = ConnectFromEnvironment();
  if (!group.ok()) {
    std::cerr << "error: " << group.status() << std::endl;
    return 3;
  }
  const std::string dir = std::getenv("PACT_TEST_DIR");
  for (int i = 0; i < 3000; ++i) {
    std::vector<double> values = {1.0};
    const absl::Status status = (*group)->AllReduceSum(&values, "allreduce of the loop");
    if (!status.ok()) {
      std::cerr << "error: " << status << std::endl;
      return 3;
    }
    if (i == 0) std::ofstream(absl::StrCat(dir, "/ready.", (*group)->rank())) << "ok";
    absl::SleepFor(absl::Milliseconds(20));
  }
  return 0;
}

TEST(ProcessGroupTest, CollectivesOverTwoProcesses) {
  const std::string dir = ::pact::testing::TestTempDir("collectives");
  PACT_ASSERT_OK_AND_ASSIGN(Workers workers, Workers::Start("collectives", 2, {}, dir));
  PACT_EXPECT_OK(workers.WaitAllOk(absl::Seconds(50)));
}

// Starts two "loop" ranks with a `timeout_s` collective timeout and waits until both run.
Workers StartLoop(const std::string& dir, int timeout_s) {
  auto workers = Workers::Start(
      "loop", 2, {{"PACT_TEST_DIR", dir}, {"PACT_TEST_TIMEOUT_S", std::to_string(timeout_s)}}, dir);
  EXPECT_TRUE(workers.ok()) << workers.status();
  EXPECT_TRUE(WaitForFile(dir + "/ready.0", absl::Seconds(30)));
  EXPECT_TRUE(WaitForFile(dir + "/ready.1", absl::Seconds(30)));
  return *std::move(workers);
}

TEST(ProcessGroupTest, DeadRankEndsTheOtherAtOnce) {
  const std::string dir = ::pact::testing::TestTempDir("dead");
  Workers workers = StartLoop(dir, 20);
  ASSERT_EQ(kill(workers.pid(1), SIGKILL), 0);
  const absl::Time killed = absl::Now();
  PACT_ASSERT_OK_AND_ASSIGN(int status, workers.Wait(0, absl::Seconds(25)));
  // A closed connection is noticed at once, long before the 20 s timeout.
  EXPECT_LT(absl::Now() - killed, absl::Seconds(10));
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 3) << workers.Log(0);
  EXPECT_THAT(workers.Log(0), HasSubstr("another rank has probably exited"));
}

TEST(ProcessGroupTest, HungRankEndsTheOtherWithinTheTimeout) {
  const std::string dir = ::pact::testing::TestTempDir("hung");
  Workers workers = StartLoop(dir, 3);
  ASSERT_EQ(kill(workers.pid(1), SIGSTOP), 0);
  const absl::Time stopped = absl::Now();
  PACT_ASSERT_OK_AND_ASSIGN(int status, workers.Wait(0, absl::Seconds(20)));
  const absl::Duration took = absl::Now() - stopped;
  EXPECT_GE(took, absl::Seconds(2));   // it waited for the peer...
  EXPECT_LT(took, absl::Seconds(10));  // ...about the 3 s timeout, not forever
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 3) << workers.Log(0);
  EXPECT_THAT(workers.Log(0), HasSubstr("DEADLINE_EXCEEDED"));
  EXPECT_THAT(workers.Log(0), HasSubstr("--dist_timeout_s 3 s"));
}

TEST(ProcessGroupTest, MissingRankFailsTheRendezvousWithinTheTimeout) {
  const std::string dir = ::pact::testing::TestTempDir("missing");
  PACT_ASSERT_OK_AND_ASSIGN(
      Workers workers,
      Workers::Start("loop", 2, {{"PACT_TEST_DIR", dir}, {"PACT_TEST_TIMEOUT_S", "2"}}, dir, {0}));
  PACT_ASSERT_OK_AND_ASSIGN(int status, workers.Wait(0, absl::Seconds(20)));
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 3) << workers.Log(0);
  EXPECT_THAT(workers.Log(0), HasSubstr("rendezvous of 2 processes at MASTER_ADDR:MASTER_PORT"));
}

TEST(ProcessGroupTest, ChooseBackend) {
  PACT_ASSERT_OK_AND_ASSIGN(Backend cpu, ChooseBackend("", /*cuda=*/false));
  EXPECT_EQ(cpu, Backend::kGloo);
  PACT_ASSERT_OK_AND_ASSIGN(Backend gloo, ChooseBackend("gloo", /*cuda=*/true));
  EXPECT_EQ(gloo, Backend::kGloo);
  PACT_ASSERT_OK_AND_ASSIGN(Backend cuda, ChooseBackend("", /*cuda=*/true));
  EXPECT_EQ(cuda, NcclAvailable() ? Backend::kNccl : Backend::kGloo);
  EXPECT_FALSE(ChooseBackend("nccl", /*cuda=*/false).ok());
  EXPECT_THAT(ChooseBackend("mpi", false).status().message(), HasSubstr("must be gloo, nccl"));
}

TEST(ProcessGroupTest, ConnectNeedsMoreThanOneProcess) {
  EXPECT_FALSE(ProcessGroup::Connect(DistEnv{}, GroupOptions{}).ok());
}

}  // namespace
}  // namespace pact::dist

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  if (auto role = pact::dist::testing::RoleFromEnvironment()) {
    if (*role == "collectives") return pact::dist::RunCollectives();
    if (*role == "loop") return pact::dist::RunLoop();
    std::cerr << "unknown role " << *role << "\n";
    return 2;
  }
  return RUN_ALL_TESTS();
}
