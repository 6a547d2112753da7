// Data-parallel gradient averaging with bucketed, overlapped allreduce (what PyTorch's
// DistributedDataParallel does, which LibTorch's C++ frontend lacks).
//
// Parameters are packed, in reverse registration order (roughly the order backward produces
// their gradients), into flat buckets of at most `bucket_bytes`. A hook on each parameter
// (Tensor::register_hook) copies its gradient into its bucket during backward; when a bucket is
// full its allreduce starts at once, on the backend's threads, while backward goes on. Buckets
// always start in index order, so every rank issues the same collectives in the same order
// whatever order the hooks fire in. Finish() (after backward, before the optimizer step) starts
// what is left, waits, and writes gradient / world_size into every parameter's .grad.
//
// A parameter that got no gradient on this rank contributes zeros and keeps its .grad as it was
// (as in one process); with identical models on every rank that set is the same everywhere.
// PACT alphas are parameters like any other: their gradients are averaged too, so the
// optimizer keeps them identical on every rank.
#ifndef PACT_DIST_GRADIENT_REDUCER_H_
#define PACT_DIST_GRADIENT_REDUCER_H_

#include <torch/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "pact/dist/process_group.h"

namespace pact::dist {

// PyTorch DDP's default bucket_cap_mb.
inline constexpr int64_t kDefaultBucketBytes = int64_t{25} << 20;

class GradientReducer {
 public:
  // Hooks every parameter of `parameters` that requires grad (dense, on group->device()).
  // InvalidArgument for bucket_bytes < 1 or a parameter the backend cannot reduce.
  static absl::StatusOr<std::unique_ptr<GradientReducer>> Create(
      std::shared_ptr<ProcessGroup> group, const std::vector<torch::Tensor>& parameters,
      int64_t bucket_bytes = kDefaultBucketBytes);

  GradientReducer(const GradientReducer&) = delete;
  GradientReducer& operator=(const GradientReducer&) = delete;
  // Removes the hooks.
  ~GradientReducer();

  // After backward: starts the buckets not started yet, waits for all and writes the averaged
  // gradients. The group's error if a collective failed (a rank died or timed out).
  absl::Status Finish();

  int num_buckets() const { return static_cast<int>(buckets_.size()); }
  // Bytes of each bucket, in launch order.
  std::vector<int64_t> bucket_bytes() const;
  // Buckets whose allreduce started during the last backward (overlapped with it), as of the
  // last Finish().
  int started_during_backward() const { return started_during_backward_; }

 private:
  struct Slot {
    torch::Tensor parameter;
    int bucket = 0;
    int64_t offset = 0;  // in elements, within the bucket
    int64_t numel = 0;
    unsigned hook = 0;
    bool ready = false;  // got its gradient in this backward
  };
  struct Bucket {
    torch::Tensor flat;
    std::vector<int> slots;
    int pending = 0;  // slots still without a gradient in this backward
    std::unique_ptr<ProcessGroup::Work> work;
  };

  explicit GradientReducer(std::shared_ptr<ProcessGroup> group) : group_(std::move(group)) {}
  // Autograd hook: runs during backward on the engine's thread, one call per slot.
  void OnGradient(int slot, const torch::Tensor& gradient);
  // Starts buckets next_bucket_.. while each has all its gradients (or `all`).
  void StartReadyBuckets(bool all);
  void Reset();

  std::shared_ptr<ProcessGroup> group_;
  std::vector<Slot> slots_;
  std::vector<Bucket> buckets_;
  int next_bucket_ = 0;
  int started_early_ = 0;  // in the current backward
  int started_during_backward_ = 0;
  bool in_finish_ = false;
  absl::Status error_;  // first failure to start a collective from a hook
};

}  // namespace pact::dist

#endif  // PACT_DIST_GRADIENT_REDUCER_H_
