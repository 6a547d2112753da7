// //tools:train --nproc_per_node=2 as a user runs it: two Gloo workers on 127.0.0.1 train and
// rank 0 writes the outputs; Ctrl-C reaches each worker once and they stop together at the
// same step, checkpoint and resume; a worker that is killed or hangs ends the job with an error
// within --dist_timeout_s.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pact/core/test_util.h"
#include "pact/dist/test_workers.h"

extern char** environ;

namespace pact::dist {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// `epochs` epochs of 64 steps (2048 synthetic 28x28 images, global batch 32) of the Fashion
// quick-start net with 4-bit PACT/DoReFa; a progress line after every step.
std::string WriteRecipe(const std::string& dir, int epochs) {
  const std::string path = dir + "/recipe.pbtxt";
  std::ofstream(path) << R"pb(
        name: "launch"
        seed: 2
        model { fashion_convnet {} }
        train_data {
          split: SPLIT_TRAIN
          workers: 1
          synthetic { num_examples: 2048 channels: 1 height: 28 width: 28 num_classes: 10 }
        }
        eval_data {
          split: SPLIT_TEST
          workers: 1
          synthetic { num_examples: 100 channels: 1 height: 28 width: 28 num_classes: 10 }
        }
        optimizer { sgd { lr: 0.02 momentum: 0.9 weight_decay: 1e-4 } }
        quantization {
          activation { pact { bits: 4 } }
          weight { dorefa { bits: 4 } }
        }
        train { batch_size: 32 eval_batch_size: 50 threads: 1 log_every_steps: 1 epochs:)pb"
                      << epochs << " }\n";
  return path;
}

class Train {
 public:
  // Starts //tools:train with `args`; stdout and stderr go to <dir>/train.log.
  Train(const std::string& dir, std::vector<std::string> args) : log_(dir + "/train.log") {
    std::string binary = std::string(std::getenv("TEST_SRCDIR")) + "/pact_qat/tools/train";
    args.insert(args.begin(), binary);
    std::vector<char*> argv;
    for (std::string& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log_.c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
    EXPECT_EQ(posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), environ), 0);
    posix_spawn_file_actions_destroy(&actions);
  }
  ~Train() {
    if (status_ < 0) {
      for (pid_t worker : Workers()) kill(worker, SIGKILL);
      kill(pid_, SIGKILL);
      waitpid(pid_, &status_, 0);
    }
  }

  pid_t pid() const { return pid_; }
  std::string Log() const { return ReadFile(log_); }

  bool WaitForLog(const std::string& text, absl::Duration timeout) const {
    const absl::Time deadline = absl::Now() + timeout;
    while (Log().find(text) == std::string::npos) {
      if (absl::Now() > deadline || status_ >= 0) return false;
      absl::SleepFor(absl::Milliseconds(20));
    }
    return true;
  }

  // The launcher's exit code, or -1 if it still runs after `timeout`.
  int Wait(absl::Duration timeout) {
    const absl::Time deadline = absl::Now() + timeout;
    while (status_ < 0) {
      if (waitpid(pid_, &status_, WNOHANG) == pid_) break;
      status_ = -1;
      if (absl::Now() > deadline) return -1;
      absl::SleepFor(absl::Milliseconds(20));
    }
    return WIFEXITED(status_) ? WEXITSTATUS(status_) : 128 + WTERMSIG(status_);
  }

  // The launcher's worker processes.
  std::vector<pid_t> Workers() const {
    std::vector<pid_t> pids;
    const std::string children =
        ReadFile(absl::StrCat("/proc/", pid_, "/task/", pid_, "/children"));
    for (absl::string_view field : absl::StrSplit(children, ' ', absl::SkipEmpty())) {
      pid_t pid = 0;
      if (absl::SimpleAtoi(field, &pid)) pids.push_back(pid);
    }
    return pids;
  }

  // The worker with RANK=`rank` in its environment.
  pid_t Worker(int rank) const {
    for (pid_t pid : Workers()) {
      const std::string environment = ReadFile(absl::StrCat("/proc/", pid, "/environ"));
      for (absl::string_view var : absl::StrSplit(environment, '\0')) {
        if (var == absl::StrCat("RANK=", rank)) return pid;
      }
    }
    return -1;
  }

 private:
  std::string log_;
  pid_t pid_ = -1;
  int status_ = -1;
};

TEST(TrainLaunchTest, TwoWorkersTrainAndStopTogetherOnCtrlC) {
  const std::string dir = ::pact::testing::TestTempDir("launch");
  const std::string recipe = WriteRecipe(dir, 2);
  const std::string out = dir + "/out";
  {
    Train train(dir, {"--recipe=" + recipe, "--output_dir=" + out, "--nproc_per_node=2"});
    ASSERT_TRUE(train.WaitForLog("step 3/64", absl::Seconds(40))) << train.Log();
    ASSERT_EQ(kill(train.pid(), SIGINT), 0);
    EXPECT_EQ(train.Wait(absl::Seconds(40)), 0) << train.Log();
    const std::string log = train.Log();
    EXPECT_THAT(log, HasSubstr("launching 2 worker processes"));
    EXPECT_THAT(log, HasSubstr("data-parallel over 2 processes (gloo)"));
    EXPECT_THAT(log, HasSubstr("stopped at epoch 0 step"));
    // One SIGINT each: a second one would have stopped a worker at once (killed by SIGINT).
    EXPECT_THAT(log, Not(HasSubstr("signal")));
  }
  ASSERT_TRUE(std::filesystem::exists(out + "/checkpoints/last.pt"));
  Train resumed(
      dir, {"--recipe=" + recipe, "--output_dir=" + out, "--nproc_per_node=2", "--resume=" + out});
  EXPECT_EQ(resumed.Wait(absl::Seconds(50)), 0) << resumed.Log();
  EXPECT_THAT(resumed.Log(), HasSubstr("resumed from"));
  const std::vector<std::string> rows =
      absl::StrSplit(ReadFile(out + "/metrics.csv"), '\n', absl::SkipEmpty());
  EXPECT_EQ(rows.size(), 3u);  // header + one row per epoch, written by rank 0 alone
}

TEST(TrainLaunchTest, KilledWorkerEndsTheJobWithAnError) {
  const std::string dir = ::pact::testing::TestTempDir("killed");
  Train train(dir, {"--recipe=" + WriteRecipe(dir, 1000), "--output_dir=" + dir + "/out",
                    "--nproc_per_node=2", "--dist_timeout_s=20"});
  ASSERT_TRUE(train.WaitForLog("step 3/64", absl::Seconds(40))) << train.Log();
  const pid_t rank1 = train.Worker(1);
  ASSERT_GT(rank1, 0);
  ASSERT_EQ(kill(rank1, SIGKILL), 0);
  const absl::Time killed = absl::Now();
  EXPECT_EQ(train.Wait(absl::Seconds(30)), 1) << train.Log();
  EXPECT_LT(absl::Now() - killed, absl::Seconds(15));  // noticed at once, not after 20 s
  const std::string log = train.Log();
  EXPECT_THAT(log, HasSubstr("rank 1 (pid"));
  EXPECT_THAT(log, HasSubstr("was killed by signal 9"));
  EXPECT_THAT(log, HasSubstr("another rank has probably exited or stopped responding"));
}

TEST(TrainLaunchTest, HungWorkerEndsTheJobAfterTheTimeout) {
  const std::string dir = ::pact::testing::TestTempDir("hung");
  Train train(dir, {"--recipe=" + WriteRecipe(dir, 1000), "--output_dir=" + dir + "/out",
                    "--nproc_per_node=2", "--dist_timeout_s=4"});
  ASSERT_TRUE(train.WaitForLog("step 3/64", absl::Seconds(40))) << train.Log();
  const pid_t rank1 = train.Worker(1);
  ASSERT_GT(rank1, 0);
  ASSERT_EQ(kill(rank1, SIGSTOP), 0);
  const absl::Time stopped = absl::Now();
  // Rank 0 times out after 4 s; the launcher then kills the hung rank after the timeout again.
  EXPECT_EQ(train.Wait(absl::Seconds(40)), 1) << train.Log();
  EXPECT_LT(absl::Now() - stopped, absl::Seconds(25));
  const std::string log = train.Log();
  EXPECT_THAT(log, HasSubstr("rank 0 (pid"));
  EXPECT_THAT(log, HasSubstr("Timed out"));
  EXPECT_THAT(log, HasSubstr("killing it"));
}

}  // namespace
}  // namespace pact::dist
