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
  if (dp->is_writer()) {
    std::vector<int64_t> sizes = dp->reducer_->bucket_bytes();
    int64_t total = 0;
    for (int64_t s : sizes) total += s;
    LOG(INFO) << "data-parallel over " << dp->size() << " processes ("
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

absl::StatusOr<bool> DataParallel::AnyRank(bool local, absl::string_view what) {
  std::vector<double> flag = {local ? 1.0 : 0.0};
  PACT_RETURN_IF_ERROR(group_->AllReduceSum(&flag, what));
  return flag[0] > 0.0;
}

}  // namespace pact::dist
