// Test helper: runs copies of the current test binary as the ranks of a data-parallel job.
//
// A multi-process test re-executes itself (/proc/self/exe) with kRoleVar naming what the copy
// should do, plus the torchrun variables for a fresh port on 127.0.0.1. The test's main()
// checks kRoleVar first (RoleFromEnvironment) and, when set, runs that role instead of the
// tests. Exec rather than a bare fork: the parent may already run LibTorch/OpenMP threads,
// which a forked child must not use.
#ifndef PACT_DIST_TEST_WORKERS_H_
#define PACT_DIST_TEST_WORKERS_H_

#include <sys/types.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace pact::dist::testing {

inline constexpr char kRoleVar[] = "PACT_DIST_TEST_ROLE";

// The role this process was started for, if any.
std::optional<std::string> RoleFromEnvironment();

class Workers {
 public:
  // Starts ranks `ranks` (default: all) of a `world`-process job, each playing `role`, with
  // `env` added to the environment; rank r's stdout and stderr go to <log_dir>/<role>.<r>.log.
  static absl::StatusOr<Workers> Start(const std::string& role, int world,
                                       const std::map<std::string, std::string>& env,
                                       const std::string& log_dir, std::vector<int> ranks = {});
  Workers(Workers&&) = default;
  Workers& operator=(Workers&&) = default;
  // Kills (SIGKILL) and reaps whatever still runs.
  ~Workers();

  pid_t pid(int rank) const { return pids_.at(rank); }
  int port() const { return port_; }
  // The wait status of `rank` once it exits, or DeadlineExceeded after `timeout`.
  absl::StatusOr<int> Wait(int rank, absl::Duration timeout);
  // Waits for every rank; OK when all exited 0, else an error with each failure and its log.
  absl::Status WaitAllOk(absl::Duration timeout);
  std::string Log(int rank) const;

 private:
  Workers() = default;
  std::string role_;
  std::string log_dir_;
  int port_ = 0;
  std::map<int, pid_t> pids_;
  std::map<int, int> status_;  // exited ranks
};

// Blocks until `path` exists (true) or `timeout` passes (false).
bool WaitForFile(const std::string& path, absl::Duration timeout);

}  // namespace pact::dist::testing

#endif  // PACT_DIST_TEST_WORKERS_H_
