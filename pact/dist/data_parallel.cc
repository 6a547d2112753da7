#include "pact/dist/data_parallel.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "glog/logging.h"
#include "pact/core/status_macros.h"

namespace pact::dist {

absl::StatusOr<std::unique_ptr<DataParallel>> DataParallel::Create(
    std::shared_ptr<ProcessGroup> group, std::shared_ptr<torch::nn::Module> model,
    int64_t bucket_bytes) {
  if (group == nullptr || model == nullptr) {
    return absl::InvalidArgumentError("data-parallel: no process group or no model");
  }
  std::unique_ptr<DataParallel> dp(new DataParallel(std::move(group), std::move(model)));
  PACT_RETURN_IF_ERROR(dp->BroadcastModel());
  PACT_ASSIGN_OR_RETURN(
      dp->reducer_, GradientReducer::Create(dp->group_, dp->model_->parameters(), bucket_bytes));
  if (dp->group_->rank() == 0) {
    std::vector<int64_t> sizes = dp->reducer_->bucket_bytes();
    int64_t total = 0;
    for (int64_t s : sizes) total += s;
    LOG(INFO) << "data-parallel over " << dp->group_->size() << " processes ("
              << BackendName(dp->group_->backend()) << "): " << total << " gradient bytes in "
              << sizes.size() << " allreduce bucket(s) of at most " << bucket_bytes << " bytes";
  }
  return dp;
}

absl::Status DataParallel::BroadcastModel() {
  std::vector<torch::Tensor> tensors = model_->parameters();
  for (const torch::Tensor& buffer : model_->buffers()) tensors.push_back(buffer);
  return group_->Broadcast(tensors, 0, "broadcast of rank 0's parameters and buffers");
}

absl::Status DataParallel::BroadcastBuffers() {
  return group_->Broadcast(model_->buffers(), 0, "broadcast of rank 0's buffers");
}

namespace {

class GroupCollectivesImpl : public Collectives {
 public:
  GroupCollectivesImpl(std::shared_ptr<ProcessGroup> group, int64_t bucket_bytes)
      : group_(std::move(group)), bucket_bytes_(bucket_bytes) {}

  int rank() const override { return group_->rank(); }
  int size() const override { return group_->size(); }
  absl::Status AttachModel(std::shared_ptr<torch::nn::Module> model) override {
    PACT_ASSIGN_OR_RETURN(dp_, DataParallel::Create(group_, std::move(model), bucket_bytes_));
    return absl::OkStatus();
  }
  absl::Status AverageGradients() override {
    if (dp_ == nullptr) return absl::FailedPreconditionError("AverageGradients before AttachModel");
    return dp_->AverageGradients();
  }
  absl::Status BroadcastBuffers() override {
    if (dp_ == nullptr) return absl::FailedPreconditionError("BroadcastBuffers before AttachModel");
    return dp_->BroadcastBuffers();
  }
  absl::Status AllReduceSum(std::vector<double>* values, absl::string_view what) override {
    return group_->AllReduceSum(values, what);
  }
  absl::Status Barrier(absl::string_view what) override { return group_->Barrier(what); }

 private:
  std::shared_ptr<ProcessGroup> group_;
  const int64_t bucket_bytes_;
  std::unique_ptr<DataParallel> dp_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Collectives>> GroupCollectives(std::shared_ptr<ProcessGroup> group,
                                                              int64_t bucket_bytes) {
  if (group == nullptr) return absl::InvalidArgumentError("data-parallel: no process group");
  return std::make_unique<GroupCollectivesImpl>(std::move(group), bucket_bytes);
}

}  // namespace pact::dist
