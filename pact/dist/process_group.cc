#include "pact/dist/process_group.h"

#include <torch/torch.h>

#include <chrono>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/csrc/distributed/c10d/Work.hpp>
#include <utility>
#include <vector>
#ifdef USE_C10D_NCCL
#include <torch/cuda.h>

#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "glog/logging.h"
#include "pact/core/status_macros.h"
#include "pact/core/torch_status.h"

#ifndef USE_C10D_GLOO
#error "pact/dist needs -DUSE_C10D_GLOO (ProcessGroupGloo.hpp is empty without it)"
#endif

namespace pact::dist {
namespace {

// The c10d calls we use, over ProcessGroupGloo/ProcessGroupNCCL. A template rather than
// c10d::ProcessGroup because LibTorch 2.x moved the backends under c10d::Backend; the member
// functions used here have the same signatures in both.
class Collectives {
 public:
  virtual ~Collectives() = default;
  virtual c10::intrusive_ptr<c10d::Work> AllReduce(std::vector<at::Tensor>& tensors) = 0;
  virtual c10::intrusive_ptr<c10d::Work> Broadcast(std::vector<at::Tensor>& tensors, int root) = 0;
  virtual c10::intrusive_ptr<c10d::Work> Barrier() = 0;
  // Drops the backend without destroying it (see the header: a broken group is leaked).
  virtual void Leak() = 0;
};

template <typename Group>
class CollectivesOf final : public Collectives {
 public:
  explicit CollectivesOf(c10::intrusive_ptr<Group> group) : group_(std::move(group)) {}
  c10::intrusive_ptr<c10d::Work> AllReduce(std::vector<at::Tensor>& tensors) override {
    return group_->allreduce(tensors);
  }
  c10::intrusive_ptr<c10d::Work> Broadcast(std::vector<at::Tensor>& tensors, int root) override {
    c10d::BroadcastOptions options;
    options.rootRank = root;
    return group_->broadcast(tensors, options);
  }
  c10::intrusive_ptr<c10d::Work> Barrier() override { return group_->barrier(); }
  void Leak() override { group_.release(); }

 private:
  c10::intrusive_ptr<Group> group_;
};

bool LooksLikeTimeout(absl::string_view message) {
  return absl::StrContains(absl::AsciiStrToLower(message), "timed out") ||
         absl::StrContains(absl::AsciiStrToLower(message), "timeout");
}

std::string Seconds(absl::Duration d) { return absl::StrCat(absl::ToDoubleSeconds(d), " s"); }

class ProcessGroupImpl;

class WorkImpl : public ProcessGroup::Work {
 public:
  WorkImpl(ProcessGroupImpl* group, c10::intrusive_ptr<c10d::Work> work,
           std::vector<at::Tensor> tensors, std::string what)
      : group_(group),
        work_(std::move(work)),
        tensors_(std::move(tensors)),
        what_(std::move(what)) {}
  absl::Status Wait() override;

 private:
  ProcessGroupImpl* group_;
  c10::intrusive_ptr<c10d::Work> work_;
  std::vector<at::Tensor> tensors_;  // kept alive while in flight
  std::string what_;
};

class ProcessGroupImpl : public ProcessGroup {
 public:
  ProcessGroupImpl(const DistEnv& env, const GroupOptions& options, torch::Device device)
      : env_(env), options_(options), device_(device) {}
  ~ProcessGroupImpl() override {
    if (broken_ && collectives_ != nullptr) {
      collectives_->Leak();
      store_.release();
    }
  }

  absl::Status Init();

  int rank() const override { return env_.rank; }
  int size() const override { return env_.world_size; }
  Backend backend() const override { return options_.backend; }
  absl::Duration timeout() const override { return options_.timeout; }
  torch::Device device() const override { return device_; }

  absl::StatusOr<std::unique_ptr<Work>> StartAllReduceSum(torch::Tensor tensor,
                                                          absl::string_view what) override {
    PACT_RETURN_IF_ERROR(CheckUsable(what));
    std::vector<at::Tensor> tensors = {std::move(tensor)};
    c10::intrusive_ptr<c10d::Work> work;
    PACT_RETURN_IF_ERROR(Run(what, [&] { work = collectives_->AllReduce(tensors); }));
    return std::unique_ptr<Work>(
        new WorkImpl(this, std::move(work), std::move(tensors), std::string(what)));
  }

  absl::Status AllReduceSum(std::vector<double>* values, absl::string_view what) override {
    if (values->empty()) return absl::OkStatus();
    torch::Tensor tensor;
    PACT_RETURN_IF_ERROR(
        Run(what, [&] { tensor = torch::tensor(*values, torch::kFloat64).to(device_); }));
    PACT_ASSIGN_OR_RETURN(std::unique_ptr<Work> work, StartAllReduceSum(tensor, what));
    PACT_RETURN_IF_ERROR(work->Wait());
    return Run(what, [&] {
      const torch::Tensor sums = tensor.cpu();
      for (size_t i = 0; i < values->size(); ++i) (*values)[i] = sums[i].item<double>();
    });
  }

  absl::Status Broadcast(const std::vector<torch::Tensor>& tensors, int root,
                         absl::string_view what) override {
    PACT_RETURN_IF_ERROR(CheckUsable(what));
    // One flat buffer per dtype: a handful of collectives instead of one per tensor.
    std::map<c10::ScalarType, std::vector<torch::Tensor>> by_dtype;
    for (const torch::Tensor& t : tensors) {
      if (t.defined() && t.numel() > 0) by_dtype[t.scalar_type()].push_back(t);
    }
    for (auto& [dtype, group] : by_dtype) {
      std::vector<at::Tensor> flat(1);
      PACT_RETURN_IF_ERROR(Run(what, [&] {
        torch::NoGradGuard no_grad;
        std::vector<torch::Tensor> pieces;
        for (const torch::Tensor& t : group) pieces.push_back(t.detach().reshape({-1}).to(device_));
        flat[0] = torch::cat(pieces);
      }));
      c10::intrusive_ptr<c10d::Work> work;
      PACT_RETURN_IF_ERROR(Run(what, [&] {
        work = collectives_->Broadcast(flat, root);
        work->wait();
      }));
      PACT_RETURN_IF_ERROR(Run(what, [&] {
        torch::NoGradGuard no_grad;
        int64_t offset = 0;
        for (torch::Tensor& t : group) {
          t.copy_(flat[0].narrow(0, offset, t.numel()).view(t.sizes()));
          offset += t.numel();
        }
      }));
    }
    return absl::OkStatus();
  }

  absl::Status Barrier(absl::string_view what) override {
    PACT_RETURN_IF_ERROR(CheckUsable(what));
    return Run(what, [&] { collectives_->Barrier()->wait(); });
  }

  // Runs `fn` (c10d/torch calls); a throw breaks the group and becomes a clear Status.
  template <typename Fn>
  absl::Status Run(absl::string_view what, Fn&& fn) {
    absl::Status status = TorchCall(what, std::forward<Fn>(fn));
    if (status.ok()) return status;
    broken_ = true;
    const std::string message(status.message());
    return absl::Status(LooksLikeTimeout(message) ? absl::StatusCode::kDeadlineExceeded
                                                  : absl::StatusCode::kUnavailable,
                        absl::StrCat("data-parallel ", message, " (rank ", env_.rank, " of ",
                                     env_.world_size, ", ", BackendName(options_.backend),
                                     "); another rank has probably exited "
                                     "or stopped responding (--dist_timeout_s ",
                                     Seconds(options_.timeout), "): see its log"));
  }

 private:
  absl::Status CheckUsable(absl::string_view what) const {
    if (!broken_) return absl::OkStatus();
    return absl::FailedPreconditionError(absl::StrCat(
        "data-parallel ", what, ": an earlier collective failed; the process group is broken"));
  }

  const DistEnv env_;
  const GroupOptions options_;
  const torch::Device device_;
  c10::intrusive_ptr<c10d::Store> store_;
  std::unique_ptr<Collectives> collectives_;
  bool broken_ = false;
};

absl::Status WorkImpl::Wait() {
  if (work_ == nullptr) return absl::OkStatus();
  absl::Status status = group_->Run(what_, [&] { work_->wait(); });
  work_.reset();
  return status;
}

bool IsLoopback(const std::string& host) {
  return absl::StartsWith(host, "127.") || host == "localhost" || host == "::1";
}

absl::Status ProcessGroupImpl::Init() {
  const auto timeout = std::chrono::milliseconds(absl::ToInt64Milliseconds(options_.timeout));
  const std::string where = absl::StrCat(env_.master_addr, ":", env_.master_port);
  absl::Status status = TorchCall("rendezvous", [&] {
    c10d::TCPStoreOptions store_options;
    store_options.port = static_cast<uint16_t>(env_.master_port);
    store_options.isServer = env_.rank == 0;
    store_options.numWorkers = env_.world_size;
    // The backend's own rendezvous below waits for every rank (with a clearer failure).
    store_options.waitWorkers = false;
    store_options.timeout = timeout;
    auto tcp_store = c10::make_intrusive<c10d::TCPStore>(env_.master_addr, store_options);
    store_ = c10::make_intrusive<c10d::PrefixStore>("pact", tcp_store);
    if (options_.backend == Backend::kGloo) {
      auto gloo_options = c10d::ProcessGroupGloo::Options::create(timeout);
      // Bind where peers can reach us: GLOO_SOCKET_IFNAME if given (as in PyTorch), loopback
      // for a one-machine job, else the address this host's name resolves to.
      const char* ifname = std::getenv("GLOO_SOCKET_IFNAME");
      if (ifname != nullptr && *ifname != '\0') {
        for (absl::string_view name : absl::StrSplit(ifname, ',', absl::SkipEmpty())) {
          gloo_options->devices.push_back(
              c10d::ProcessGroupGloo::createDeviceForInterface(std::string(name)));
        }
      } else if (IsLoopback(env_.master_addr)) {
        gloo_options->devices.push_back(
            c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
      } else {
        gloo_options->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
      }
      collectives_ = std::make_unique<CollectivesOf<c10d::ProcessGroupGloo>>(
          c10::make_intrusive<c10d::ProcessGroupGloo>(store_, env_.rank, env_.world_size,
                                                      gloo_options));
    } else {
#ifdef USE_C10D_NCCL
      // Without blocking wait, a NCCL timeout only aborts in the watchdog; with it, wait()
      // throws after the timeout like Gloo does. (1.x reads the first name, 2.x the second.)
      setenv("NCCL_BLOCKING_WAIT", "1", /*overwrite=*/0);
      setenv("TORCH_NCCL_BLOCKING_WAIT", "1", /*overwrite=*/0);
      auto nccl_options = c10d::ProcessGroupNCCL::Options::create();
      nccl_options->timeout = timeout;
      collectives_ = std::make_unique<CollectivesOf<c10d::ProcessGroupNCCL>>(
          c10::make_intrusive<c10d::ProcessGroupNCCL>(store_, env_.rank, env_.world_size,
                                                      nccl_options));
#else
      TORCH_CHECK(false, "this LibTorch has no NCCL");
#endif
    }
  });
  if (status.ok()) return status;
  return absl::Status(
      LooksLikeTimeout(status.message()) ? absl::StatusCode::kDeadlineExceeded
                                         : absl::StatusCode::kUnavailable,
      absl::StrCat("rendezvous of ", env_.world_size, " processes at MASTER_ADDR:MASTER_PORT ",
                   where, " as rank ", env_.rank, " (", BackendName(options_.backend), ", timeout ",
                   Seconds(options_.timeout), ") failed: ", status.message(),
                   "; check that every rank was started with the same MASTER_ADDR, MASTER_PORT "
                   "and WORLD_SIZE, that rank 0 runs and its port is free and reachable"));
}

}  // namespace

absl::string_view BackendName(Backend backend) {
  return backend == Backend::kNccl ? "nccl" : "gloo";
}

bool NcclAvailable() {
#ifdef USE_C10D_NCCL
  return true;
#else
  return false;
#endif
}

absl::StatusOr<Backend> ChooseBackend(absl::string_view requested, bool cuda) {
  if (requested.empty()) return cuda && NcclAvailable() ? Backend::kNccl : Backend::kGloo;
  if (requested == "gloo") return Backend::kGloo;
  if (requested == "nccl") {
    if (!NcclAvailable()) {
      return absl::InvalidArgumentError(
          "--dist_backend=nccl: this LibTorch was built without NCCL (Debian's is CPU-only); "
          "use gloo, or build with PACT_LIBTORCH pointing at a CUDA LibTorch");
    }
    if (!cuda) {
      return absl::InvalidArgumentError(
          "--dist_backend=nccl needs train.device DEVICE_CUDA (--device cuda); use gloo on CPU");
    }
    return Backend::kNccl;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("--dist_backend='", requested, "': must be gloo, nccl or empty (by device)"));
}

absl::StatusOr<std::shared_ptr<ProcessGroup>> ProcessGroup::Connect(const DistEnv& env,
                                                                    const GroupOptions& options) {
  if (!env.distributed()) {
    return absl::InvalidArgumentError("process group: WORLD_SIZE must be > 1");
  }
  if (options.timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--dist_timeout_s: must be > 0, got ", Seconds(options.timeout)));
  }
  torch::Device device = torch::kCPU;
  if (options.backend == Backend::kNccl) {
#ifdef USE_C10D_NCCL
    if (!torch::cuda::is_available()) {
      return absl::FailedPreconditionError(
          "the nccl backend needs a CUDA GPU; this process has none");
    }
#endif
    device = torch::Device(torch::kCUDA, 0);  // SelectLocalCudaDevice made ours device 0
  }
  auto group = std::make_shared<ProcessGroupImpl>(env, options, device);
  PACT_RETURN_IF_ERROR(group->Init());
  LOG(INFO) << "joined the " << BackendName(options.backend) << " process group as rank "
            << env.rank << " of " << env.world_size << " (local rank " << env.local_rank << ") via "
            << env.master_addr << ":" << env.master_port;
  return std::shared_ptr<ProcessGroup>(std::move(group));
}

}  // namespace pact::dist
