// Data-parallel training of one model over a process group: what the trainer needs, in one
// object. Every rank builds the same model from the same seed; Create() then broadcasts rank
// 0's parameters and buffers so all start identical, and hooks a GradientReducer so the
// optimizer sees the gradient of the global batch on every rank.
//
// BatchNorm statistics are per rank during training (each rank normalizes its own batch, as
// in DDP without SyncBatchNorm); BroadcastBuffers() makes rank 0's running statistics
// everyone's before evaluation, which is what DDP's broadcast_buffers gives.
#ifndef PACT_DIST_DATA_PARALLEL_H_
#define PACT_DIST_DATA_PARALLEL_H_

#include <torch/nn/module.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "pact/dist/collectives.h"
#include "pact/dist/gradient_reducer.h"
#include "pact/dist/process_group.h"

namespace pact::dist {

class DataParallel {
 public:
  static absl::StatusOr<std::unique_ptr<DataParallel>> Create(
      std::shared_ptr<ProcessGroup> group, std::shared_ptr<torch::nn::Module> model,
      int64_t bucket_bytes = kDefaultBucketBytes);

  const GradientReducer& reducer() const { return *reducer_; }

  // After backward, before the optimizer step: every .grad becomes the mean over ranks.
  absl::Status AverageGradients() { return reducer_->Finish(); }
  // Rank 0's parameters and buffers on every rank (at start and after a resume).
  absl::Status BroadcastModel();
  // Rank 0's buffers (BatchNorm running statistics) on every rank.
  absl::Status BroadcastBuffers();

 private:
  DataParallel(std::shared_ptr<ProcessGroup> group, std::shared_ptr<torch::nn::Module> model)
      : group_(std::move(group)), model_(std::move(model)) {}

  std::shared_ptr<ProcessGroup> group_;
  std::shared_ptr<torch::nn::Module> model_;
  std::unique_ptr<GradientReducer> reducer_;
};

// The Collectives of `group`'s ranks: AttachModel wraps the model in a DataParallel with
// `bucket_bytes` allreduce buckets. InvalidArgument for a null group.
absl::StatusOr<std::unique_ptr<Collectives>> GroupCollectives(
    std::shared_ptr<ProcessGroup> group, int64_t bucket_bytes = kDefaultBucketBytes);

}  // namespace pact::dist

#endif  // PACT_DIST_DATA_PARALLEL_H_
