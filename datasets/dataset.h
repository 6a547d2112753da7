// The dataset interface and its registry.
//
// A Dataset is one split, indexable, producing normalized float images [C, H, W] and int64
// labels. Augmentation randomness comes from the generator the loader passes in, seeded per
// (seed, epoch, index), so a batch is the same whatever the number of workers.
#ifndef PACT_DATASETS_DATASET_H_
#define PACT_DATASETS_DATASET_H_

#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "datasets/dataset_spec.pb.h"
#include "pact/core/registry.h"

namespace pact::datasets {

class Dataset {
 public:
  virtual ~Dataset() = default;
  virtual int64_t size() const = 0;
  virtual int64_t num_classes() const = 0;
  // {C, H, W} of what Get writes.
  virtual std::vector<int64_t> image_shape() const = 0;
  // Writes example `index` (augmented with `rng` when the split is augmented) as normalized
  // float CHW into `image` (C*H*W floats) and returns its label. Thread-safe.
  virtual int64_t Get(int64_t index, std::mt19937_64& rng, float* image) const = 0;
  // A short description for logs ("cifar10 train: 50000 images from <root>").
  virtual std::string Describe() const = 0;
};

// What every dataset factory gets besides its own options (the DatasetSpec's common fields).
struct DatasetContext {
  std::string data_root;  // empty = the dataset's default
  Split split = SPLIT_TRAIN;
  bool augment = false;
  std::vector<float> mean;  // empty = the dataset's standard statistics
  std::vector<float> std;
};

DatasetContext MakeDatasetContext(const DatasetSpec& spec);

using DatasetRegistry =
    ComponentRegistry<DatasetSpec, std::shared_ptr<const Dataset>, DatasetContext>;
DatasetRegistry& GetDatasetRegistry();

// PACT_REGISTER_DATASET(name, OptionsType, factory[, validator]); see registry.h.
#define PACT_REGISTER_DATASET(name, OptionsType, ...) \
  PACT_REGISTER_COMPONENT(::pact::datasets::GetDatasetRegistry(), name, OptionsType, __VA_ARGS__)

}  // namespace pact::datasets

#endif  // PACT_DATASETS_DATASET_H_
