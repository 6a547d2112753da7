// `train --nproc_per_node=N`: a built-in torchrun for one machine (or one node of several).
//
// Spawns N copies of this program (fork + exec of /proc/self/exe with the same arguments minus
// the launcher's flags), each with the torchrun environment (RANK, LOCAL_RANK, WORLD_SIZE,
// LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT, GROUP_RANK). The parent forwards SIGINT and
// SIGTERM once to every worker (workers get their own process group, so a terminal's Ctrl-C
// reaches them only through the parent and is not counted twice), waits for all, and fails if
// any worker fails. When one fails, the others normally fail by themselves within the
// collective timeout; whatever still runs `grace` later is killed.
#ifndef PACT_DIST_LAUNCHER_H_
#define PACT_DIST_LAUNCHER_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace pact::dist {

struct LaunchOptions {
  int nproc_per_node = 1;  // >= 1
  int nnodes = 1;          // machines; each runs the launcher with its own node_rank
  int node_rank = 0;       // in [0, nnodes)
  // "" = $MASTER_ADDR, else 127.0.0.1 (one node only).
  std::string master_addr;
  // 0 = $MASTER_PORT, else a free port when nnodes == 1, else 29500.
  int master_port = 0;
  // The worker program and its argv (argv[0] first).
  std::string executable = "/proc/self/exe";
  std::vector<std::string> args;
  // Where workers start; "" = the launcher's current folder.
  std::string working_directory;
  absl::Duration grace = absl::Seconds(30);
};

// Runs the workers to completion. Returns 0 when every worker exited 0, else 1 (each failure
// is logged with its rank and exit code or signal). InvalidArgument for bad options or when
// RANK/WORLD_SIZE are already set (the launcher sets them); Internal when a worker cannot be
// started.
absl::StatusOr<int> RunLocalWorkers(const LaunchOptions& options);

// `args` without the flags `names` (given with underscores), in any of the spellings gflags
// accepts: --name=v, -name=v, --name v, -name v, with dashes or underscores in the name.
std::vector<std::string> RemoveFlags(const std::vector<std::string>& args,
                                     const std::vector<std::string>& names);

// A TCP port that was free on 127.0.0.1 a moment ago (the kernel's pick), or an error.
absl::StatusOr<int> PickFreePort();

}  // namespace pact::dist

#endif  // PACT_DIST_LAUNCHER_H_
