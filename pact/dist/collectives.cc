#include "pact/dist/collectives.h"

#include "absl/strings/str_cat.h"
#include "pact/core/status_macros.h"

namespace pact::dist {
namespace {

class Local : public Collectives {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  absl::Status AttachModel(std::shared_ptr<torch::nn::Module>) override { return absl::OkStatus(); }
  absl::Status AverageGradients() override { return absl::OkStatus(); }
  absl::Status BroadcastBuffers() override { return absl::OkStatus(); }
  absl::Status AllReduceSum(std::vector<double>*, absl::string_view) override {
    return absl::OkStatus();
  }
  absl::Status Barrier(absl::string_view) override { return absl::OkStatus(); }
};

}  // namespace

absl::StatusOr<bool> Collectives::AnyRank(bool local, absl::string_view what) {
  std::vector<double> flag = {local ? 1.0 : 0.0};
  PACT_RETURN_IF_ERROR(AllReduceSum(&flag, what));
  return flag[0] > 0.0;
}

absl::Status Collectives::CheckSameOnEveryRank(int64_t value, absl::string_view what) {
  std::vector<double> sums = {static_cast<double>(value), 1.0};
  PACT_RETURN_IF_ERROR(AllReduceSum(&sums, absl::StrCat("allreduce of ", what)));
  if (sums[0] != sums[1] * static_cast<double>(value)) {
    return absl::FailedPreconditionError(absl::StrCat(what, " is ", value, " on rank ", rank(),
                                                      " but not on every one of the ", size(),
                                                      " ranks"));
  }
  return absl::OkStatus();
}

std::unique_ptr<Collectives> LocalCollectives() { return std::make_unique<Local>(); }

}  // namespace pact::dist
