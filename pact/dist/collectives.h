// What a training loop needs from the other processes of its job, as one interface: one
// process is the trivial group (LocalCollectives), whose operations are the identity, so the
// trainer holds a Collectives always and never branches on "distributed or not" (as c10d's
// FakeProcessGroup and leveldb's Env::Default() spare their callers a null check).
// GroupCollectives (data_parallel.h) is the c10d implementation.
#ifndef PACT_DIST_COLLECTIVES_H_
#define PACT_DIST_COLLECTIVES_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace torch::nn {
class Module;
}  // namespace torch::nn

namespace pact::dist {

class Collectives {
 public:
  virtual ~Collectives() = default;

  virtual int rank() const = 0;
  virtual int size() const = 0;
  // Rank 0 alone writes checkpoints, metrics and logs.
  bool is_writer() const { return rank() == 0; }

  // Called once the model is built: every rank continues from rank 0's parameters and buffers,
  // and AverageGradients averages this model's gradients from then on.
  virtual absl::Status AttachModel(std::shared_ptr<torch::nn::Module> model) = 0;
  // After backward, before the optimizer step: every .grad becomes the mean over ranks.
  virtual absl::Status AverageGradients() = 0;
  // Rank 0's buffers (BatchNorm running statistics) on every rank, before evaluation.
  virtual absl::Status BroadcastBuffers() = 0;
  // Sums `values` over ranks in place; `what` names the operation in errors.
  virtual absl::Status AllReduceSum(std::vector<double>* values, absl::string_view what) = 0;
  virtual absl::Status Barrier(absl::string_view what) = 0;

  // True everywhere if `local` is true on any rank (one stop decision for all).
  absl::StatusOr<bool> AnyRank(bool local, absl::string_view what);
  // FailedPrecondition naming `what` unless every rank passes the same `value` (e.g. the step
  // every rank resumed at: a rank that read a stale copy must not train on silently).
  absl::Status CheckSameOnEveryRank(int64_t value, absl::string_view what);
};

// Rank 0 of a group of one.
std::unique_ptr<Collectives> LocalCollectives();

}  // namespace pact::dist

#endif  // PACT_DIST_COLLECTIVES_H_
