// The torchrun contract: what a data-parallel worker process learns from its environment.
//
//   RANK              this process, 0..WORLD_SIZE-1 (rank 0 hosts the TCPStore and writes outputs)
//   WORLD_SIZE        processes in the job, over every machine
//   LOCAL_RANK        this process on its machine (picks the GPU with CUDA)
//   LOCAL_WORLD_SIZE  processes on this machine (splits the cores; optional, default 1)
//   MASTER_ADDR       host of rank 0's TCPStore (default 127.0.0.1)
//   MASTER_PORT       its port (default 29500)
//
// No RANK and no WORLD_SIZE means one ordinary process.
#ifndef PACT_DIST_ENV_H_
#define PACT_DIST_ENV_H_

#include <functional>
#include <string>

#include "absl/status/statusor.h"

namespace pact::dist {

inline constexpr int kDefaultMasterPort = 29500;

struct DistEnv {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  int local_world_size = 1;
  std::string master_addr = "127.0.0.1";
  int master_port = kDefaultMasterPort;

  // More than one process: the trainer rendezvouses and averages gradients.
  bool distributed() const { return world_size > 1; }
};

// Reads the variables above through `getenv` (std::getenv by default; tests pass a map).
// InvalidArgument names the variable, its value and what is allowed, e.g. RANK outside
// [0, WORLD_SIZE) or only one of RANK/WORLD_SIZE set.
absl::StatusOr<DistEnv> ReadDistEnv(
    const std::function<const char*(const char*)>& getenv = nullptr);

// Intra-op threads for one process: `requested` if > 0, else this machine's cores split
// evenly among its local_world_size processes (at least 1), so N workers do not oversubscribe.
int ThreadsPerProcess(int requested, const DistEnv& env);

// With CUDA, makes local rank i see only its own GPU (the i-th of CUDA_VISIBLE_DEVICES, or
// GPU i when unset), so every process's "cuda:0" is a different GPU. Must run before CUDA is
// initialized; a no-op for one process.
void SelectLocalCudaDevice(const DistEnv& env);

}  // namespace pact::dist

#endif  // PACT_DIST_ENV_H_
