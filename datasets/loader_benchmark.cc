// Images/s of two training input pipelines, as float batches:
//  - CIFAR-10: shuffle, 4-pixel pad + random crop + flip, normalization, batches of 128. Real
//    files when PACT_CIFAR10_ROOT names their folder, else 50000 in-memory random records
//    (same work per image).
//  - ImageNet: read + JPEG decode (TurboJPEG, DCT scaling) + random-resized-crop 224 + flip +
//    normalization, batches of 32, from 200 generated 500x375 JPEGs (ImageNet's typical size;
//    smooth content plus noise, quality 90, 4:2:0, about ImageNet's bytes per image) written to
//    a temporary folder (the page cache holds them: this measures CPU work, not the disk).
//
//   PACT_CIFAR10_ROOT=/path/cifar-10-batches-bin bazel run //datasets:loader_benchmark
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "benchmark/benchmark.h"
#include "datasets/cifar10.h"
#include "datasets/dataset.h"
#include "datasets/imagenet.h"
#include "datasets/jpeg.h"
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

// 200 JPEGs of 500x375 in 10 class folders under a fresh temporary folder.
std::shared_ptr<const Dataset> ImagenetTrainSet() {
  static const std::shared_ptr<const Dataset> dataset = [] {
    const char* tmp = std::getenv("TEST_TMPDIR");
    const std::filesystem::path root =
        std::filesystem::path(tmp != nullptr ? tmp : "/tmp") / "pact_imagenet_benchmark";
    std::filesystem::remove_all(root);
    constexpr int kWidth = 500, kHeight = 375, kImages = 200, kClasses = 10;
    std::mt19937_64 rng(1);
    std::vector<uint8_t> rgb(kWidth * kHeight * 3);
    int64_t bytes = 0;
    for (int i = 0; i < kImages; ++i) {
      const double fx = 5 + i % 17, fy = 3 + i % 11;
      for (int y = 0; y < kHeight; ++y) {
        for (int x = 0; x < kWidth; ++x) {
          const double noise = static_cast<double>(rng() % 41) - 20;
          uint8_t* p = &rgb[(y * kWidth + x) * 3];
          p[0] = static_cast<uint8_t>(std::clamp(128 + 90 * std::sin(x / fx) + noise, 0.0, 255.0));
          p[1] = static_cast<uint8_t>(std::clamp(128 + 90 * std::cos(y / fy) + noise, 0.0, 255.0));
          p[2] = static_cast<uint8_t>(std::clamp((x + y) * 0.3 + noise, 0.0, 255.0));
        }
      }
      auto jpeg = EncodeJpeg(rgb.data(), kWidth, kHeight, PixelFormat::kRgb, 90,
                             /*subsample_chroma=*/true);
      CHECK(jpeg.ok()) << jpeg.status();
      bytes += static_cast<int64_t>(jpeg->size());
      const std::filesystem::path folder =
          root / "train" / ("n0" + std::to_string(1000000 + i % kClasses));
      std::filesystem::create_directories(folder);
      std::ofstream(folder / (std::to_string(i) + ".JPEG"), std::ios::binary) << *jpeg;
    }
    std::fprintf(stderr, "imagenet fixture: %d JPEGs %dx%d, %.0f KB each on average, in %s\n",
                 kImages, kWidth, kHeight, bytes / 1024.0 / kImages, root.c_str());
    DatasetContext context;
    context.data_root = root.string();
    context.split = SPLIT_TRAIN;
    context.augment = true;
    ImagenetOptions options;
    options.set_download(false);
    auto loaded = LoadImagenet(context, options);
    CHECK(loaded.ok()) << loaded.status();
    std::fprintf(stderr, "%s\n", (*loaded)->Describe().c_str());
    return std::shared_ptr<const Dataset>(*loaded);
  }();
  return dataset;
}

void RunLoader(benchmark::State& state, std::shared_ptr<const Dataset> dataset,
               int64_t batch_size) {
  const int workers = static_cast<int>(state.range(0));
  LoaderOptions options = LoaderOptions::Train(batch_size, workers, /*seed=*/1);
  auto loader = DataLoader::Create(std::move(dataset), options);
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
  state.counters["img/s"] =
      benchmark::Counter(static_cast<double>(images), benchmark::Counter::kIsRate);
}

void BM_Cifar10Train(benchmark::State& state) { RunLoader(state, TrainSet(), 128); }
void BM_ImagenetTrain(benchmark::State& state) { RunLoader(state, ImagenetTrainSet(), 32); }
// Real time: with workers the calling thread mostly waits, so its CPU time says nothing.
BENCHMARK(BM_Cifar10Train)->ArgName("workers")->Arg(0)->Arg(1)->Arg(2)->UseRealTime()->MinTime(2.0);
BENCHMARK(BM_ImagenetTrain)->ArgName("workers")->Arg(1)->Arg(2)->UseRealTime()->MinTime(3.0);

}  // namespace
}  // namespace pact::datasets
