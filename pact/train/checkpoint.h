// Training checkpoints: model, optimizer, progress, RNG state and the resolved recipe in one
// LibTorch archive, written atomically (temporary file + rename), so an interrupted write never
// replaces a good checkpoint. Also a Python-readable state_dict (torch.load gives a dict of
// tensors named like the module tree, e.g. "layer1.0.conv1.weight").
#ifndef PACT_TRAIN_CHECKPOINT_H_
#define PACT_TRAIN_CHECKPOINT_H_

#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>

#include <cstdint>
#include <string>

#include "absl/status/status.h"

namespace pact::train {

struct TrainingProgress {
  int64_t epoch = 0;          // the epoch in progress (0-based)
  int64_t step_in_epoch = 0;  // batches of `epoch` already trained (0 = at its start)
  int64_t global_step = 0;
  double best_top1 = -1.0;  // best eval top-1 so far (-1 = none yet)
  int64_t best_epoch = -1;
  // Running sums of the unfinished epoch, so a mid-epoch resume reports the same metrics.
  double partial_loss_sum = 0.0;
  int64_t partial_correct = 0;
  int64_t partial_seen = 0;
  double partial_seconds = 0.0;
  std::string recipe_text;  // the resolved recipe the run was started with
};

absl::Status SaveCheckpoint(const std::string& path, torch::nn::Module& model,
                            torch::optim::Optimizer& optimizer, const TrainingProgress& progress);

// Restores into an already-built model and optimizer of the same recipe. DataLoss when the file
// is unreadable or does not match the model.
absl::Status LoadCheckpoint(const std::string& path, torch::nn::Module& model,
                            torch::optim::Optimizer& optimizer, TrainingProgress* progress);

// Parameters and buffers as a pickled dict (what Python's torch.load reads as a state_dict).
absl::Status SaveStateDict(const std::string& path, torch::nn::Module& model);

}  // namespace pact::train

#endif  // PACT_TRAIN_CHECKPOINT_H_
