// A multi-threaded data loader: batches of normalized images and labels from a Dataset, in a
// deterministic order.
//
// Determinism: the order of an epoch is EpochPermutation(size, seed, epoch) (sampling.h) and
// example i of the epoch is augmented with a generator seeded by ExampleSeed(seed, epoch, i),
// so the batches depend only on (dataset, options except workers/prefetch, epoch): identical
// for 0, 1 or 8 workers, and a resumed run sees the same data as an uninterrupted one.
//
// Threads: with workers = 0 batches are produced on the caller's thread inside Next(). With
// workers > 0 a pool of threads fills up to `prefetch_batches` batches ahead of the consumer,
// each worker building whole batches and writing every image straight into the batch tensor;
// Next() hands them out in order. StartEpoch() abandons whatever is in flight (workers drop
// stale batches after at most one example), and the destructor joins the pool.
#ifndef PACT_DATASETS_LOADER_H_
#define PACT_DATASETS_LOADER_H_

#include <ATen/core/Tensor.h>  // torch::Tensor is at::Tensor; this header is far lighter

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "datasets/dataset.h"

namespace pact::datasets {

struct LoaderOptions {
  int64_t batch_size = 128;  // >= 1
  bool shuffle = true;       // false: dataset order (evaluation)
  // true: the last partial batch of an epoch is skipped (training: every step has
  // batch_size examples, so BatchNorm statistics and the LR schedule see uniform steps);
  // false: it is returned short (evaluation sees every example).
  bool drop_last = true;
  int workers = 2;           // >= 0; 0 = produce batches on the calling thread
  uint64_t seed = 0;         // the run's seed: order and augmentation derive from it
  int prefetch_batches = 4;  // >= 1; batches ready or in flight ahead of Next (workers > 0)
  // Data-parallel sharding, as PyTorch's DistributedSampler: the epoch's order (the same on
  // every rank) is split into num_shards interleaved slices (positions shard_index,
  // shard_index + num_shards, ...) and this loader serves only its own. pad_shards repeats the
  // head of the order so every shard has ceil(size / num_shards) examples and every rank takes
  // the same number of steps (training); without it each example is served exactly once over
  // all shards (evaluation sums stay exact).
  int num_shards = 1;   // >= 1
  int shard_index = 0;  // in [0, num_shards)
  bool pad_shards = true;

  // Training defaults: shuffle, drop_last.
  static LoaderOptions Train(int64_t batch_size, int workers, uint64_t seed);
  // Evaluation defaults: dataset order, keep the last partial batch.
  static LoaderOptions Eval(int64_t batch_size, int workers);
};

// Examples shard `index` of `num_shards` gets from a dataset of `size` (see LoaderOptions).
int64_t ShardSize(int64_t size, int num_shards, int index, bool pad);
// The positions of `order` shard `index` serves, in order (see LoaderOptions).
std::vector<int64_t> ShardOrder(const std::vector<int64_t>& order, int num_shards, int index,
                                bool pad);

struct Batch {
  at::Tensor images;  // [N, C, H, W] float32, contiguous, CPU
  at::Tensor labels;  // [N] int64
};

class DataLoader {
 public:
  // InvalidArgument for a null dataset or options out of range, or when drop_last leaves an
  // epoch with no batch (batch_size > dataset size).
  static absl::StatusOr<std::unique_ptr<DataLoader>> Create(std::shared_ptr<const Dataset> dataset,
                                                            const LoaderOptions& options);

  DataLoader(const DataLoader&) = delete;
  DataLoader& operator=(const DataLoader&) = delete;
  // Stops and joins the workers, abandoning any epoch in progress.
  ~DataLoader();

  // Starts epoch `epoch` (>= 0) at batch `first_batch` (in [0, num_batches()]), abandoning the
  // current epoch if it is unfinished. Batches are a pure function of (seed, epoch, index), so
  // a mid-epoch resume starts where its checkpoint stopped without producing the skipped ones.
  void StartEpoch(int64_t epoch, int64_t first_batch = 0);

  // The next batch of the current epoch; false when the epoch is exhausted. StartEpoch must
  // have been called first.
  bool Next(Batch* batch);

  // Batches per epoch under drop_last.
  int64_t num_batches() const { return num_batches_; }
  // Examples per epoch (this shard's, minus the dropped remainder under drop_last).
  int64_t num_examples() const;
  const Dataset& dataset() const { return *dataset_; }
  const LoaderOptions& options() const { return options_; }

 private:
  // What one epoch needs; shared with workers, immutable once published.
  struct Epoch {
    int64_t generation = 0;  // bumps on every StartEpoch; stale work is dropped
    int64_t epoch = 0;
    std::vector<int64_t> order;  // dataset index of each example position of this shard
  };

  DataLoader(std::shared_ptr<const Dataset> dataset, const LoaderOptions& options);

  // Builds batch `b` of `epoch`. Returns false (and leaves `batch` unspecified) if the epoch
  // was abandoned meanwhile.
  bool Produce(const Epoch& epoch, int64_t b, Batch* batch) const;
  void WorkerLoop();

  const std::shared_ptr<const Dataset> dataset_;
  const LoaderOptions options_;
  const std::vector<int64_t> shape_;  // {C, H, W}
  const int64_t image_floats_;
  const int64_t shard_size_;  // examples of this shard per epoch, before drop_last
  const int64_t num_batches_;

  // The generation Produce checks between examples, to abandon stale batches early.
  std::atomic<int64_t> live_generation_{0};

  mutable absl::Mutex mu_;
  std::shared_ptr<const Epoch> epoch_ ABSL_GUARDED_BY(mu_);  // null before StartEpoch
  int64_t next_to_produce_ ABSL_GUARDED_BY(mu_) = 0;         // first batch no worker has claimed
  int64_t next_to_deliver_ ABSL_GUARDED_BY(mu_) = 0;         // batch Next returns next
  std::map<int64_t, Batch> ready_ ABSL_GUARDED_BY(mu_);      // finished, not yet delivered
  bool shutdown_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> workers_;
};

}  // namespace pact::datasets

#endif  // PACT_DATASETS_LOADER_H_
