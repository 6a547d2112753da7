// Fashion-MNIST (Xiao, Rasul and Vollgraf 2017): 60000 training and 10000 test images of
// clothing, 1x28x28 grayscale, 10 classes, in MNIST's IDX format.
//
// Files under data_root (default /usr/share/datasets/fashion-mnist, where Debian's
// dataset-fashion-mnist package puts them): {train,t10k}-images-idx3-ubyte and
// {train,t10k}-labels-idx1-ubyte, each gzip-compressed (.gz, preferred) or raw.
//
// Augmentation (`augment`, off by default in recipes): a random 28x28 crop with 2 pixels of
// zero padding and a horizontal flip with p = 0.5, the CIFAR recipe scaled to 28 pixels. Flips
// keep the class (garments are roughly left-right symmetric); the small padding keeps most of
// the item in view.
#ifndef PACT_DATASETS_FASHION_MNIST_H_
#define PACT_DATASETS_FASHION_MNIST_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "datasets/dataset.h"
#include "datasets/image_dataset.h"
#include "datasets/transforms.h"

namespace pact::datasets {

inline constexpr char kFashionMnistDefaultRoot[] = "/usr/share/datasets/fashion-mnist";
inline constexpr int kFashionMnistPadding = 2;
inline constexpr uint32_t kIdxImagesMagic = 2051;  // 0x00000803: unsigned byte, 3 dimensions
inline constexpr uint32_t kIdxLabelsMagic = 2049;  // 0x00000801: unsigned byte, 1 dimension

// Mean and std of x/255 over the 60000 training images, recomputed from the Debian package's
// files (0.28604, 0.35302).
ChannelNormalization FashionMnistNormalization();

// Decoded IDX image file: count images of rows x cols bytes.
struct IdxImages {
  int64_t count = 0;
  int64_t rows = 0;
  int64_t cols = 0;
  std::vector<uint8_t> pixels;
};

// Parses a decompressed IDX3 image file. DataLoss naming `name` for a bad magic number, a
// short header, or a size that disagrees with the header (expected vs actual bytes).
absl::StatusOr<IdxImages> ParseIdxImages(absl::string_view data, absl::string_view name);

// Parses a decompressed IDX1 label file; DataLoss as above, and for a label >= num_classes.
absl::StatusOr<std::vector<uint8_t>> ParseIdxLabels(absl::string_view data, absl::string_view name,
                                                    int64_t num_classes);

// Loads the split of `context` from context.data_root (or kFashionMnistDefaultRoot).
// NotFound when a file is missing (saying where to get it), DataLoss for corrupt gzip or IDX
// data, 28x28 mismatch, or image/label count mismatch; InvalidArgument for bad split or
// normalization.
absl::StatusOr<std::shared_ptr<const InMemoryImageDataset>> LoadFashionMnist(
    const DatasetContext& context);

}  // namespace pact::datasets

#endif  // PACT_DATASETS_FASHION_MNIST_H_
