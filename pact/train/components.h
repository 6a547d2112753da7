// Assembles what a recipe names from the registries: quantizers -> layer builder -> model,
// optimizer (alphas excluded from weight decay), LR schedule, datasets. Knows no concrete
// component: adding one never touches this file.
#ifndef PACT_TRAIN_COMPONENTS_H_
#define PACT_TRAIN_COMPONENTS_H_

#include <torch/types.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "datasets/dataset.h"
#include "models/model.h"
#include "pact/core/text_proto.h"
#include "pact/optim/optimizer.h"
#include "pact/proto/recipe.pb.h"
#include "pact/quant/layers.h"

namespace pact::train {

struct Components {
  std::shared_ptr<const quant::LayerBuilder> layers;
  std::shared_ptr<models::Model> model;
  // Every learned clipping level (ActivationModule::clip_level, PACT's alpha) with its module
  // path ("layer1.0.act1"), in module-tree order.
  std::vector<std::string> alpha_names;
  std::vector<torch::Tensor> alphas;
  std::shared_ptr<optim::Optimizer> optimizer;
  // Null when the recipe has no lr_schedule (constant learning rate).
  std::shared_ptr<const optim::LrSchedule> schedule;
  torch::Device device = torch::kCPU;
  // When set, TrainStep calls it between backward and the optimizer step; data-parallel
  // training (pact/dist) averages the gradients over processes there.
  std::function<absl::Status()> after_backward;
};

// Builds the model (seeded by recipe.seed; every layer's quantizers resolved from the recipe's
// quantization, per-layer rules included), optimizer and schedule on the recipe's device.
// `locations` (ValidatedRecipe::locations) lets errors about per-layer rules point at them.
absl::StatusOr<Components> BuildComponents(const Recipe& recipe,
                                           const FieldLocations* locations = nullptr);

// Builds (loads) one dataset split.
absl::StatusOr<std::shared_ptr<const datasets::Dataset>> BuildDataset(
    const datasets::DatasetSpec& spec);

// InvalidArgument, naming `which` and the fix, unless a dataset's images and classes fit the
// model.
absl::Status CheckDatasetFitsModel(const datasets::Dataset& dataset, models::Model& model,
                                   absl::string_view which);

// lambda_alpha with its documented default: the built optimizer's weight decay when the recipe
// leaves it unset (so any optimizer that reports its weight_decay gets it).
double LambdaAlpha(const QuantizationSpec& quantization, const optim::Optimizer& optimizer);

// The PACT paper's L2 regularizer on clipping levels, lambda/2 * sum(alpha^2), so that
// d/d_alpha = lambda * alpha (the convention weight decay uses). Undefined when there is
// nothing to add (no alphas or lambda 0).
torch::Tensor AlphaPenalty(const std::vector<torch::Tensor>& alphas, double lambda);

// Quantizers may initialize their state from their first training batch (LSQ's step, PACT's
// alpha_init_percentile), and each data-parallel rank sees its own shard of it. This makes every
// rank hold the mean over ranks of every parameter and buffer the quantizer modules own
// (ActivationModule, WeightQuantModule: scalars), through `all_reduce_sum` (a sum over the
// `world_size` ranks, in double). Values that already agree stay bit for bit as they are (n
// equal floats sum and divide exactly in double). Call it on every rank after the first step.
absl::Status AverageQuantizerState(
    torch::nn::Module& model, int world_size,
    const std::function<absl::Status(std::vector<double>*)>& all_reduce_sum);

// Intra-op threads for a recipe's train.threads (0 = all cores).
int ResolveThreads(int requested);

// An image batch as the model should receive it: on `device`, and on CPU 4-D batches in
// channels-last (NHWC) memory, oneDNN's native convolution layout. With the default NCHW every
// convolution reorders its input and output to a blocked layout and back; channels-last avoids
// those reorders (the ResNet-20 step time it saves is in README.md, Benchmarks). Values and
// shapes are unchanged (only the strides differ).
torch::Tensor ModelInput(const torch::Tensor& images, torch::Device device);

// What one training step reports.
struct StepResult {
  double loss_sum = 0.0;  // cross-entropy (without the alpha penalty) summed over the batch
  int64_t correct = 0;    // top-1 hits in the batch
};

// One training step exactly as the Trainer runs it: forward, cross-entropy (mean) +
// AlphaPenalty(c.alphas, lambda_alpha), zero_grad, backward, c.after_backward (if set; its
// error is returned), optimizer step. Inputs are moved to c.device. A non-finite
// cross-entropy returns DataLoss ("loss became nan") before anything is updated. LibTorch
// errors are thrown (wrap the call in TorchCall).
absl::StatusOr<StepResult> TrainStep(Components& c, double lambda_alpha,
                                     const torch::Tensor& images, const torch::Tensor& labels);

// Evaluation sums over batches (the model must be in eval mode, under a NoGradGuard).
struct EvalSums {
  double loss_sum = 0.0;
  int64_t top1 = 0;
  int64_t top5 = 0;
  int64_t seen = 0;
};
// Adds one evaluation batch (summed cross-entropy, top-1, top-5 hits) to `sums`.
void EvalStep(models::Model& model, torch::Device device, const torch::Tensor& images,
              const torch::Tensor& labels, EvalSums& sums);

}  // namespace pact::train

#endif  // PACT_TRAIN_COMPONENTS_H_
