#include "datasets/loader.h"

#include <ATen/ops/empty.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <numeric>
#include <random>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "datasets/dataset.h"
#include "datasets/sampling.h"
#include "glog/logging.h"

namespace pact::datasets {
namespace {

constexpr int kMaxWorkers = 256;

int64_t ImageFloats(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (const int64_t d : shape) n *= d;
  return n;
}

}  // namespace

int64_t ShardSize(int64_t size, int num_shards, int index, bool pad) {
  if (pad) return (size + num_shards - 1) / num_shards;
  return size / num_shards + (index < size % num_shards ? 1 : 0);
}

std::vector<int64_t> ShardOrder(const std::vector<int64_t>& order, int num_shards, int index,
                                bool pad) {
  const int64_t size = static_cast<int64_t>(order.size());
  const int64_t n = ShardSize(size, num_shards, index, pad);
  std::vector<int64_t> shard;
  shard.reserve(n);
  // Position k of the padded order is order[k % size] (DistributedSampler wraps the same way).
  for (int64_t i = 0; i < n; ++i) shard.push_back(order[(index + i * num_shards) % size]);
  return shard;
}

LoaderOptions LoaderOptions::Train(int64_t batch_size, int workers, uint64_t seed) {
  LoaderOptions options;
  options.batch_size = batch_size;
  options.shuffle = true;
  options.drop_last = true;
  options.workers = workers;
  options.seed = seed;
  return options;
}

LoaderOptions LoaderOptions::Eval(int64_t batch_size, int workers) {
  LoaderOptions options;
  options.batch_size = batch_size;
  options.shuffle = false;
  options.drop_last = false;
  options.workers = workers;
  return options;
}

absl::StatusOr<std::unique_ptr<DataLoader>> DataLoader::Create(
    std::shared_ptr<const Dataset> dataset, const LoaderOptions& options) {
  if (dataset == nullptr) return absl::InvalidArgumentError("data loader: no dataset");
  if (options.batch_size < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("batch_size: must be >= 1, got ", options.batch_size));
  }
  if (options.workers < 0 || options.workers > kMaxWorkers) {
    return absl::InvalidArgumentError(
        absl::StrCat("workers: must be in [0, ", kMaxWorkers, "], got ", options.workers));
  }
  if (options.prefetch_batches < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("prefetch_batches: must be >= 1, got ", options.prefetch_batches));
  }
  if (options.num_shards < 1 || options.shard_index < 0 ||
      options.shard_index >= options.num_shards) {
    return absl::InvalidArgumentError(
        absl::StrCat("sharding: need num_shards >= 1 and 0 <= shard_index < num_shards, got ",
                     options.num_shards, " and ", options.shard_index));
  }
  const std::vector<int64_t> shape = dataset->image_shape();
  if (shape.size() != 3 || *std::min_element(shape.begin(), shape.end()) < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        dataset->Describe(), ": image_shape must be {C, H, W} with positive sizes, got {",
        absl::StrJoin(shape, ", "), "}"));
  }
  if (dataset->size() < 1) {
    return absl::InvalidArgumentError(absl::StrCat(dataset->Describe(), ": dataset is empty"));
  }
  const int64_t shard_size =
      ShardSize(dataset->size(), options.num_shards, options.shard_index, options.pad_shards);
  if (options.drop_last && shard_size < options.batch_size) {
    return absl::InvalidArgumentError(absl::StrCat(
        "batch_size: ", options.batch_size, " is larger than the dataset (", dataset->size(),
        " examples", options.num_shards > 1 ? absl::StrCat(", ", shard_size, " per shard") : "",
        "), so with drop_last an epoch would have no batch"));
  }
  return std::unique_ptr<DataLoader>(new DataLoader(std::move(dataset), options));
}

DataLoader::DataLoader(std::shared_ptr<const Dataset> dataset, const LoaderOptions& options)
    : dataset_(std::move(dataset)),
      options_(options),
      shape_(dataset_->image_shape()),
      image_floats_(ImageFloats(shape_)),
      shard_size_(
          ShardSize(dataset_->size(), options.num_shards, options.shard_index, options.pad_shards)),
      num_batches_(options.drop_last
                       ? shard_size_ / options.batch_size
                       : (shard_size_ + options.batch_size - 1) / options.batch_size) {
  workers_.reserve(options_.workers);
  for (int i = 0; i < options_.workers; ++i) workers_.emplace_back([this] { WorkerLoop(); });
}

DataLoader::~DataLoader() {
  {
    absl::MutexLock lock(&mu_);
    shutdown_ = true;
    live_generation_.store(-1, std::memory_order_relaxed);  // abandon batches in progress
  }
  for (std::thread& worker : workers_) worker.join();
}

int64_t DataLoader::num_examples() const {
  return options_.drop_last ? num_batches_ * options_.batch_size : shard_size_;
}

void DataLoader::StartEpoch(int64_t epoch, int64_t first_batch) {
  CHECK_GE(epoch, 0);
  CHECK(first_batch >= 0 && first_batch <= num_batches_)
      << "first batch " << first_batch << " of an epoch of " << num_batches_;
  auto next = std::make_shared<Epoch>();
  next->epoch = epoch;
  if (options_.shuffle) {
    next->order = EpochPermutation(dataset_->size(), options_.seed, epoch);
  } else {
    next->order.resize(dataset_->size());
    std::iota(next->order.begin(), next->order.end(), int64_t{0});
  }
  if (options_.num_shards > 1) {
    next->order =
        ShardOrder(next->order, options_.num_shards, options_.shard_index, options_.pad_shards);
  }
  std::map<int64_t, Batch> stale;  // freed after unlocking
  absl::MutexLock lock(&mu_);
  next->generation = epoch_ == nullptr ? 1 : epoch_->generation + 1;
  epoch_ = std::move(next);
  next_to_produce_ = first_batch;
  next_to_deliver_ = first_batch;
  stale.swap(ready_);
  live_generation_.store(epoch_->generation, std::memory_order_relaxed);
}

bool DataLoader::Next(Batch* batch) {
  if (workers_.empty()) {
    std::shared_ptr<const Epoch> epoch;
    int64_t b;
    {
      absl::MutexLock lock(&mu_);
      CHECK(epoch_ != nullptr) << "DataLoader::Next called before StartEpoch";
      if (next_to_deliver_ >= num_batches_) return false;
      epoch = epoch_;
      b = next_to_deliver_++;
    }
    // Only a concurrent StartEpoch (not supported on the consumer side) could abandon it.
    CHECK(Produce(*epoch, b, batch));
    return true;
  }
  absl::MutexLock lock(&mu_);
  CHECK(epoch_ != nullptr) << "DataLoader::Next called before StartEpoch";
  if (next_to_deliver_ >= num_batches_) return false;
  const auto ready = [this]() {
    mu_.AssertHeld();
    return ready_.count(next_to_deliver_) > 0;
  };
  mu_.Await(absl::Condition(&ready));
  auto it = ready_.find(next_to_deliver_);
  *batch = std::move(it->second);
  ready_.erase(it);
  ++next_to_deliver_;  // frees a prefetch slot; waiting workers re-check on unlock
  return true;
}

bool DataLoader::Produce(const Epoch& epoch, int64_t b, Batch* batch) const {
  const int64_t begin = b * options_.batch_size;
  const int64_t n = std::min(options_.batch_size, static_cast<int64_t>(epoch.order.size()) - begin);
  DCHECK_GT(n, 0);
  // at::empty throws only when out of memory; in a worker that terminates the process, which
  // is what it would do anyway.
  at::Tensor images = at::empty({n, shape_[0], shape_[1], shape_[2]}, at::kFloat);
  at::Tensor labels = at::empty({n}, at::kLong);
  float* image = images.data_ptr<float>();
  int64_t* label = labels.data_ptr<int64_t>();
  std::mt19937_64 rng;  // reseeded per example: the result cannot depend on who made it
  for (int64_t i = 0; i < n; ++i) {
    if (live_generation_.load(std::memory_order_relaxed) != epoch.generation) return false;
    const int64_t index = epoch.order[begin + i];
    rng.seed(ExampleSeed(options_.seed, epoch.epoch, index));
    label[i] = dataset_->Get(index, rng, image + i * image_floats_);
  }
  batch->images = std::move(images);
  batch->labels = std::move(labels);
  return true;
}

void DataLoader::WorkerLoop() {
  while (true) {
    std::shared_ptr<const Epoch> epoch;
    int64_t b;
    {
      absl::MutexLock lock(&mu_);
      const auto has_work = [this]() {
        mu_.AssertHeld();
        return shutdown_ || (epoch_ != nullptr && next_to_produce_ < num_batches_ &&
                             next_to_produce_ - next_to_deliver_ < options_.prefetch_batches);
      };
      mu_.Await(absl::Condition(&has_work));
      if (shutdown_) return;
      epoch = epoch_;
      b = next_to_produce_++;
    }
    Batch batch;
    if (!Produce(*epoch, b, &batch)) continue;  // abandoned by StartEpoch or shutdown
    absl::MutexLock lock(&mu_);
    // A newer StartEpoch replaced epoch_: this batch belongs to an abandoned epoch.
    if (epoch_ == epoch) ready_.emplace(b, std::move(batch));
  }
}

}  // namespace pact::datasets
