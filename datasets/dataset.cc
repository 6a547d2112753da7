#include "datasets/dataset.h"

namespace pact::datasets {

DatasetContext MakeDatasetContext(const DatasetSpec& spec) {
  DatasetContext context;
  context.data_root = spec.data_root();
  context.split = spec.split();
  context.augment = spec.augment();
  if (spec.has_normalize()) {
    context.mean.assign(spec.normalize().mean().begin(), spec.normalize().mean().end());
    context.std.assign(spec.normalize().std().begin(), spec.normalize().std().end());
  }
  return context;
}

DatasetRegistry& GetDatasetRegistry() {
  // Built on first use (static registration may run before any other initializer here) and
  // never destroyed, so registrations stay valid through static destruction.
  static auto* registry = new DatasetRegistry("dataset", "//datasets:all_datasets");
  return *registry;
}

}  // namespace pact::datasets
