// Training checkpoints: model, optimizer, progress (a TrainingProgress message), RNG state and
// the resolved recipe in one LibTorch archive, written atomically (pact/core/file.h), so an
// interrupted write never replaces a good checkpoint. Also a Python-readable state_dict
// (torch.load gives a dict of tensors named like the module tree, e.g. "layer1.0.conv1.weight").
#ifndef PACT_TRAIN_CHECKPOINT_H_
#define PACT_TRAIN_CHECKPOINT_H_

#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "pact/train/run_state.pb.h"

namespace pact::train {

// The format SaveCheckpoint writes. Format 1 kept the progress as ten loose "meta.*" values;
// format 2 keeps it as one TrainingProgress message. LoadCheckpoint reads both.
inline constexpr int kCheckpointFormatVersion = 2;
inline constexpr int kOldestReadableCheckpointFormat = 1;

// A fresh run's progress (at epoch 0, no best yet), stamped with kCheckpointFormatVersion.
TrainingProgress NewTrainingProgress(const std::string& recipe_text);

absl::Status SaveCheckpoint(const std::string& path, torch::nn::Module& model,
                            torch::optim::Optimizer& optimizer, const TrainingProgress& progress);

// Restores into an already-built model and optimizer of the same recipe. NotFound when the file
// is missing, FailedPrecondition ("written by format N, this build reads 1 to M") for a format
// this build cannot read, DataLoss when it is unreadable or does not match the model.
absl::Status LoadCheckpoint(const std::string& path, torch::nn::Module& model,
                            torch::optim::Optimizer& optimizer, TrainingProgress* progress);

// Parameters and buffers as a pickled dict (what Python's torch.load reads as a state_dict).
absl::Status SaveStateDict(const std::string& path, torch::nn::Module& model);

}  // namespace pact::train

#endif  // PACT_TRAIN_CHECKPOINT_H_
