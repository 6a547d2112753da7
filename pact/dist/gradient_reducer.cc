#include "pact/dist/gradient_reducer.h"

#include <torch/torch.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "glog/logging.h"
#include "pact/core/status_macros.h"
#include "pact/core/torch_status.h"

namespace pact::dist {

absl::StatusOr<std::unique_ptr<GradientReducer>> GradientReducer::Create(
    std::shared_ptr<ProcessGroup> group, const std::vector<torch::Tensor>& parameters,
    int64_t bucket_bytes) {
  if (group == nullptr) return absl::InvalidArgumentError("gradient reducer: no process group");
  if (bucket_bytes < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("--dist_bucket_mb: the bucket size must be > 0 bytes, got ", bucket_bytes));
  }
  std::unique_ptr<GradientReducer> reducer(new GradientReducer(std::move(group)));
  const torch::Device device = reducer->group_->device();
  // Reverse order: the last layers' gradients are ready first, so their bucket starts first.
  for (auto it = parameters.rbegin(); it != parameters.rend(); ++it) {
    const torch::Tensor& p = *it;
    if (!p.requires_grad()) continue;
    if (p.is_sparse() || p.device() != device) {
      return absl::InvalidArgumentError(absl::StrCat(
          "data-parallel: every parameter must be dense and on ", device.str(), " for the ",
          BackendName(reducer->group_->backend()), " backend; got one on ", p.device().str()));
    }
    std::vector<Bucket>& buckets = reducer->buckets_;
    const int64_t element = static_cast<int64_t>(p.element_size());
    bool fresh = buckets.empty();
    if (!fresh) {
      // A bucket holds one dtype and at most bucket_bytes (unless one parameter is larger).
      const Slot& last = reducer->slots_[buckets.back().slots.back()];
      fresh = last.parameter.scalar_type() != p.scalar_type() ||
              (last.offset + last.numel + p.numel()) * element > bucket_bytes;
    }
    if (fresh) buckets.emplace_back();
    Slot slot;
    slot.parameter = p;
    slot.bucket = static_cast<int>(buckets.size()) - 1;
    slot.numel = p.numel();
    if (!buckets.back().slots.empty()) {
      const Slot& last = reducer->slots_[buckets.back().slots.back()];
      slot.offset = last.offset + last.numel;
    }
    buckets.back().slots.push_back(static_cast<int>(reducer->slots_.size()));
    reducer->slots_.push_back(std::move(slot));
  }
  GradientReducer* self = reducer.get();
  PACT_RETURN_IF_ERROR(TorchCall("data-parallel: allocating gradient buckets", [&] {
    for (Bucket& bucket : self->buckets_) {
      const Slot& last = self->slots_[bucket.slots.back()];
      bucket.flat =
          torch::zeros({last.offset + last.numel}, last.parameter.options().requires_grad(false));
    }
    for (size_t i = 0; i < self->slots_.size(); ++i) {
      const int index = static_cast<int>(i);
      // The hook sees the gradient before autograd accumulates it into .grad; Finish()
      // overwrites .grad with the average afterwards.
      self->slots_[i].hook = self->slots_[i].parameter.register_hook(
          [self, index](const torch::Tensor& gradient) { self->OnGradient(index, gradient); });
    }
  }));
  self->Reset();
  VLOG(1) << "data-parallel: " << self->slots_.size() << " parameters in " << self->buckets_.size()
          << " buckets of at most " << bucket_bytes << " bytes";
  return reducer;
}

GradientReducer::~GradientReducer() {
  for (Slot& slot : slots_) {
    // The hook captures `this`: it must not outlive us (the model may).
    slot.parameter.remove_hook(slot.hook);
  }
}

std::vector<int64_t> GradientReducer::bucket_bytes() const {
  std::vector<int64_t> bytes;
  for (const Bucket& bucket : buckets_) {
    bytes.push_back(bucket.flat.numel() * static_cast<int64_t>(bucket.flat.element_size()));
  }
  return bytes;
}

void GradientReducer::Reset() {
  for (Slot& slot : slots_) slot.ready = false;
  for (Bucket& bucket : buckets_) {
    bucket.pending = static_cast<int>(bucket.slots.size());
    bucket.work.reset();
  }
  next_bucket_ = 0;
}

void GradientReducer::OnGradient(int index, const torch::Tensor& gradient) {
  Slot& slot = slots_[index];
  Bucket& bucket = buckets_[slot.bucket];
  if (slot.ready || bucket.work != nullptr) {
    // A second gradient for one parameter in one backward (retain_graph / double backward) is
    // not supported: the bucket may already be in flight.
    if (error_.ok()) {
      error_ = absl::FailedPreconditionError(
          "data-parallel: a parameter received two gradients in one backward pass");
    }
    return;
  }
  torch::NoGradGuard no_grad;
  bucket.flat.narrow(0, slot.offset, slot.numel).view(gradient.sizes()).copy_(gradient);
  slot.ready = true;
  if (--bucket.pending == 0) StartReadyBuckets(/*all=*/false);
}

void GradientReducer::StartReadyBuckets(bool all) {
  while (next_bucket_ < num_buckets() && (all || buckets_[next_bucket_].pending == 0)) {
    Bucket& bucket = buckets_[next_bucket_];
    ++next_bucket_;
    if (!in_finish_) ++started_early_;
    absl::StatusOr<std::unique_ptr<ProcessGroup::Work>> work = group_->StartAllReduceSum(
        bucket.flat,
        absl::StrCat("allreduce of gradient bucket ", next_bucket_, "/", num_buckets()));
    if (!work.ok()) {
      if (error_.ok()) error_ = work.status();
      return;
    }
    bucket.work = *std::move(work);
  }
}

absl::Status GradientReducer::Finish() {
  absl::Status status = TorchCall("data-parallel: gradient averaging", [&]() -> absl::Status {
    torch::NoGradGuard no_grad;
    // Parameters that got no gradient contribute zeros (their bucket could not start early).
    for (int b = next_bucket_; b < num_buckets(); ++b) {
      for (int index : buckets_[b].slots) {
        const Slot& slot = slots_[index];
        if (!slot.ready) buckets_[b].flat.narrow(0, slot.offset, slot.numel).zero_();
      }
    }
    in_finish_ = true;
    StartReadyBuckets(/*all=*/true);
    in_finish_ = false;
    PACT_RETURN_IF_ERROR(error_);
    // Stops at the first failure: the group is broken then, and waiting for the other buckets
    // could add a timeout each (c10d's work objects keep their tensors alive).
    for (Bucket& bucket : buckets_) {
      if (bucket.work != nullptr) PACT_RETURN_IF_ERROR(bucket.work->Wait());
    }
    const double scale = 1.0 / group_->size();
    for (Bucket& bucket : buckets_) {
      bucket.flat.mul_(scale);
      for (int index : bucket.slots) {
        Slot& slot = slots_[index];
        if (!slot.ready) continue;
        const torch::Tensor average =
            bucket.flat.narrow(0, slot.offset, slot.numel).view(slot.parameter.sizes());
        torch::Tensor& grad = slot.parameter.mutable_grad();
        if (grad.defined()) {
          grad.copy_(average);
        } else {
          grad = average.clone();
        }
      }
    }
    return absl::OkStatus();
  });
  error_ = absl::OkStatus();
  Reset();
  started_during_backward_ = started_early_;
  started_early_ = 0;
  return status;
}

}  // namespace pact::dist
