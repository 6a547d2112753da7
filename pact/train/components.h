// Assembles what a recipe names from the registries: quantizers -> layer builder -> model,
// optimizer (alphas excluded from weight decay), LR schedule, datasets. Knows no concrete
// component: adding one never touches this file.
#ifndef PACT_TRAIN_COMPONENTS_H_
#define PACT_TRAIN_COMPONENTS_H_

#include <memory>
#include <string>
#include <vector>

#include <torch/types.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "datasets/dataset.h"
#include "models/model.h"
#include "pact/optim/optimizer.h"
#include "pact/proto/recipe.pb.h"
#include "pact/quant/layers.h"

namespace pact::train {

struct Components {
  std::shared_ptr<const quant::LayerBuilder> layers;
  std::shared_ptr<models::Model> model;
  // Every PACT alpha with its module path ("layer1.0.act1"), in module-tree order.
  std::vector<std::string> alpha_names;
  std::vector<torch::Tensor> alphas;
  std::shared_ptr<optim::Optimizer> optimizer;
  // Null when the recipe has no lr_schedule (constant learning rate).
  std::shared_ptr<const optim::LrSchedule> schedule;
  torch::Device device = torch::kCPU;
};

// Builds the model (seeded by recipe.seed), optimizer and schedule on the recipe's device.
absl::StatusOr<Components> BuildComponents(const Recipe& recipe);

// Builds (loads) one dataset split.
absl::StatusOr<std::shared_ptr<const datasets::Dataset>> BuildDataset(
    const datasets::DatasetSpec& spec);

// FailedPrecondition-free check that a dataset's images and classes fit the model.
absl::Status CheckDatasetFitsModel(const datasets::Dataset& dataset, models::Model& model,
                                   absl::string_view which);

// The PACT paper's L2 regularizer on clipping levels, lambda/2 * sum(alpha^2), so that
// d/d_alpha = lambda * alpha (the convention weight decay uses). Undefined when there is
// nothing to add (no alphas or lambda 0).
torch::Tensor AlphaPenalty(const std::vector<torch::Tensor>& alphas, double lambda);

// Intra-op threads for a recipe's train.threads (0 = all cores).
int ResolveThreads(int requested);

}  // namespace pact::train

#endif  // PACT_TRAIN_COMPONENTS_H_
