// Images/s of the CIFAR-10 training input pipeline: shuffle, 4-pixel pad + random crop +
// flip, normalization, batches of 128 as float tensors. Real files when PACT_CIFAR10_ROOT
// names their folder, else 50000 in-memory random records (same work per image).
//
//   PACT_CIFAR10_ROOT=/path/cifar-10-batches-bin bazel run //datasets:loader_benchmark
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>

#include "benchmark/benchmark.h"
#include "datasets/cifar10.h"
#include "datasets/dataset.h"
#include "datasets/loader.h"
#include "glog/logging.h"

namespace pact::datasets {
namespace {

std::shared_ptr<const Dataset> TrainSet() {
  static const std::shared_ptr<const Dataset> dataset = [] {
    DatasetContext context;
    context.split = SPLIT_TRAIN;
    context.augment = true;
    absl::StatusOr<std::shared_ptr<const InMemoryImageDataset>> loaded;
    if (const char* root = std::getenv("PACT_CIFAR10_ROOT")) {
      context.data_root = root;
      loaded = LoadCifar10(context);
    } else {
      std::string records(50000 * kCifar10RecordBytes, '\0');
      std::mt19937_64 rng(1);
      for (size_t i = 0; i < records.size(); ++i) {
        records[i] = static_cast<char>(i % kCifar10RecordBytes == 0 ? rng() % 10 : rng() % 256);
      }
      loaded = Cifar10FromRecords(records, "in-memory fixture", context);
    }
    CHECK(loaded.ok()) << loaded.status();
    std::fprintf(stderr, "%s\n", (*loaded)->Describe().c_str());
    return std::shared_ptr<const Dataset>(*loaded);
  }();
  return dataset;
}

void BM_Cifar10Train(benchmark::State& state) {
  const int workers = static_cast<int>(state.range(0));
  LoaderOptions options = LoaderOptions::Train(/*batch_size=*/128, workers, /*seed=*/1);
  auto loader = DataLoader::Create(TrainSet(), options);
  CHECK(loader.ok()) << loader.status();
  int64_t epoch = 0;
  (*loader)->StartEpoch(epoch);
  Batch batch;
  int64_t images = 0;
  for (auto _ : state) {
    if (!(*loader)->Next(&batch)) {
      (*loader)->StartEpoch(++epoch);
      CHECK((*loader)->Next(&batch));
    }
    images += batch.images.size(0);
    benchmark::DoNotOptimize(batch.images.data_ptr());
  }
  state.SetItemsProcessed(images);
  state.counters["img/s"] = benchmark::Counter(static_cast<double>(images),
                                               benchmark::Counter::kIsRate);
}
// Real time: with workers the calling thread mostly waits, so its CPU time says nothing.
BENCHMARK(BM_Cifar10Train)->ArgName("workers")->Arg(0)->Arg(1)->Arg(2)->UseRealTime()
    ->MinTime(2.0);

}  // namespace
}  // namespace pact::datasets
