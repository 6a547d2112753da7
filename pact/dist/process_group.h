// A c10d process group (TCPStore rendezvous + ProcessGroupGloo, or ProcessGroupNCCL with a
// CUDA LibTorch) behind an absl::Status API. No networking of our own: c10d does it all.
//
// Rendezvous: rank 0 hosts a TCPStore at MASTER_ADDR:MASTER_PORT, every rank connects to it,
// and the backend exchanges its addresses through it. `timeout` bounds the rendezvous and
// every collective: a rank that dies makes its peers fail at once (connection closed), and a
// rank that hangs makes them fail after `timeout`, each with a message naming the operation,
// instead of blocking forever. After a failure the group is broken: later calls fail fast, and
// the c10d objects are leaked on destruction so the process can exit without joining
// backend threads that still wait on the dead peer.
#ifndef PACT_DIST_PROCESS_GROUP_H_
#define PACT_DIST_PROCESS_GROUP_H_

#include <torch/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "pact/dist/env.h"

namespace pact::dist {

enum class Backend { kGloo, kNccl };

absl::string_view BackendName(Backend backend);

// Whether this LibTorch build has ProcessGroupNCCL (a CUDA LibTorch; never Debian's).
bool NcclAvailable();

// `requested` is "gloo", "nccl" or "" (by device: nccl for CUDA when available, else gloo).
// InvalidArgument for other names, or nccl without CUDA or without NCCL in this build.
absl::StatusOr<Backend> ChooseBackend(absl::string_view requested, bool cuda);

struct GroupOptions {
  Backend backend = Backend::kGloo;
  // Bounds the rendezvous and every collective (Gloo context and TCPStore timeouts).
  absl::Duration timeout = absl::Seconds(300);
};

class ProcessGroup {
 public:
  // A collective in flight.
  class Work {
   public:
    virtual ~Work() = default;
    // Blocks until done; the group's error (and the group breaks) if it failed.
    virtual absl::Status Wait() = 0;
  };

  // Joins the group `env` describes (env.distributed() must be true). Unavailable or
  // DeadlineExceeded, with the address and what to check, when the rendezvous fails.
  static absl::StatusOr<std::shared_ptr<ProcessGroup>> Connect(const DistEnv& env,
                                                               const GroupOptions& options);
  virtual ~ProcessGroup() = default;

  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual Backend backend() const = 0;
  virtual absl::Duration timeout() const = 0;
  // Where collective tensors must live: CPU for gloo, the current CUDA device for nccl.
  virtual torch::Device device() const = 0;

  // Starts an in-place sum over ranks of `tensor` (dense, contiguous, on device()). `what`
  // names it in errors ("gradient bucket 2/3").
  virtual absl::StatusOr<std::unique_ptr<Work>> StartAllReduceSum(torch::Tensor tensor,
                                                                  absl::string_view what) = 0;
  // Sums `values` over ranks in place (float64; for metrics, counts and flags).
  virtual absl::Status AllReduceSum(std::vector<double>* values, absl::string_view what) = 0;
  // Overwrites every rank's `tensors` with rank `root`'s, in place (same shapes and dtypes on
  // every rank; any device). One collective per dtype.
  virtual absl::Status Broadcast(const std::vector<torch::Tensor>& tensors, int root,
                                 absl::string_view what) = 0;
  virtual absl::Status Barrier(absl::string_view what) = 0;
};

}  // namespace pact::dist

#endif  // PACT_DIST_PROCESS_GROUP_H_
