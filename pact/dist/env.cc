#include "pact/dist/env.h"

#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "glog/logging.h"
#include "pact/core/status_macros.h"

namespace pact::dist {
namespace {

// `name` as an int in [lo, hi]; `fallback` when unset or empty.
absl::StatusOr<int> IntVar(const std::function<const char*(const char*)>& getenv, const char* name,
                           int fallback, int lo, int hi) {
  const char* value = getenv(name);
  if (value == nullptr || *value == '\0') return fallback;
  int parsed = 0;
  if (!absl::SimpleAtoi(value, &parsed) || parsed < lo || parsed > hi) {
    return absl::InvalidArgumentError(absl::StrCat("environment variable ", name, "='", value,
                                                   "': must be an integer in [", lo, ", ", hi,
                                                   "]"));
  }
  return parsed;
}

}  // namespace

absl::StatusOr<DistEnv> ReadDistEnv(const std::function<const char*(const char*)>& getenv_in) {
  const std::function<const char*(const char*)> getenv =
      getenv_in ? getenv_in : [](const char* name) -> const char* { return std::getenv(name); };
  const auto set = [&](const char* name) {
    const char* value = getenv(name);
    return value != nullptr && *value != '\0';
  };
  DistEnv env;
  if (!set("RANK") && !set("WORLD_SIZE")) return env;
  if (set("RANK") != set("WORLD_SIZE")) {
    return absl::InvalidArgumentError(
        "environment: RANK and WORLD_SIZE must be set together (as torchrun or "
        "--nproc_per_node set them), or neither for one process");
  }
  constexpr int kMaxWorld = 1 << 20;
  PACT_ASSIGN_OR_RETURN(env.world_size, IntVar(getenv, "WORLD_SIZE", 1, 1, kMaxWorld));
  PACT_ASSIGN_OR_RETURN(env.rank, IntVar(getenv, "RANK", 0, 0, env.world_size - 1));
  PACT_ASSIGN_OR_RETURN(env.local_world_size,
                        IntVar(getenv, "LOCAL_WORLD_SIZE", 1, 1, env.world_size));
  PACT_ASSIGN_OR_RETURN(env.local_rank, IntVar(getenv, "LOCAL_RANK", 0, 0, kMaxWorld));
  if (set("LOCAL_WORLD_SIZE") && env.local_rank >= env.local_world_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("environment: LOCAL_RANK=", env.local_rank,
                     " must be < LOCAL_WORLD_SIZE=", env.local_world_size));
  }
  PACT_ASSIGN_OR_RETURN(env.master_port,
                        IntVar(getenv, "MASTER_PORT", kDefaultMasterPort, 1, 65535));
  if (set("MASTER_ADDR")) env.master_addr = getenv("MASTER_ADDR");
  return env;
}

int ThreadsPerProcess(int requested, const DistEnv& env) {
  if (requested > 0) return requested;
  const int cores = static_cast<int>(std::thread::hardware_concurrency());
  return std::max(1, (cores == 0 ? 1 : cores) / std::max(1, env.local_world_size));
}

void SelectLocalCudaDevice(const DistEnv& env) {
  if (!env.distributed()) return;
  std::string device = std::to_string(env.local_rank);
  if (const char* visible = std::getenv("CUDA_VISIBLE_DEVICES"); visible != nullptr) {
    const std::vector<std::string> ids = absl::StrSplit(visible, ',', absl::SkipEmpty());
    if (ids.empty()) return;  // no GPU visible: the CUDA check reports it
    if (static_cast<size_t>(env.local_rank) >= ids.size()) {
      LOG(WARNING) << "LOCAL_RANK " << env.local_rank << " but only " << ids.size()
                   << " GPUs in CUDA_VISIBLE_DEVICES=" << visible << "; ranks share GPUs";
    }
    device = ids[env.local_rank % ids.size()];
  }
  setenv("CUDA_VISIBLE_DEVICES", device.c_str(), /*overwrite=*/1);
  VLOG(1) << "local rank " << env.local_rank << " uses CUDA device " << device;
}

}  // namespace pact::dist
